"""One module per panel; each renders from the pure `console.model.Dashboard`."""
