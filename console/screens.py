"""Modal screens: confirmation of an action, and the help screen listing every key."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

HELP = """\
[b]cardgame-console[/b]: live view of Redis (every second) and PostgreSQL (on lookup)

[b]anywhere[/b]
  1-5       Pods, Queues, Channels, Tail, Players
  m         maintenance on (manual) / off, after a confirmation
  ? or F1   this help            q  quit         Esc  leave an input box

[b]Pods[/b]      ↑↓ select a pod     d  drain it (graceful, asks first)
[b]Tail[/b]      p  pause/resume     /  filter: pod=pod-1 player=<id> text
            c  clear
[b]Players[/b]   type an id or a name, Enter
            x  dequeue (through the match servers; the session is told)
            k  disconnect (the player's pod closes the socket)
            r  reload from PostgreSQL

Status line: redis [green]ok[/green] / [yellow]stale[/yellow] (no fresh poll for 3 s: old \
numbers on screen) / [red]down[/red] (reconnecting by itself); the same for PostgreSQL.
Pods: a heartbeat older than 3 intervals is [yellow]stale[/yellow]; \
an expired one [red]dead[/red].
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: 78; height: auto; max-height: 22; border: round $accent;
                          padding: 0 1; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        yield Static(HELP, id="help-text")


class ConfirmScreen(ModalScreen[bool]):
    """Asks before an action that changes the live system; y/Enter confirms, n/Esc cancels."""

    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n,escape", "answer(False)", "no")]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 60; height: auto; border: thick $warning;
                               padding: 1 2; background: $surface; }
    ConfirmScreen Horizontal { height: auto; align: center middle; margin-top: 1; }
    ConfirmScreen Button { margin: 0 2; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, id="confirm-question")
            with Horizontal():
                yield Button("Yes (y)", variant="warning", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
