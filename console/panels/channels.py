"""Channels: every Pub/Sub channel and request stream of the design, subscribers and rates."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from console.model import ChannelRow, Dashboard, fmt_rate

COLUMNS = ("channel", "kind", "subs", "rate", "detail")


def row_cells(row: ChannelRow) -> tuple[Text | str, ...]:
    subs: Text | str = "-"
    if row.subscribers is not None:
        # Nobody listening on a pod's channel or on battle:request is what breaks things.
        subs = Text(str(row.subscribers), "bold red" if row.subscribers == 0 else "green")
    return (row.spec.label, row.spec.kind, subs, fmt_rate(row.rate), row.detail)


class ChannelsPanel(DataTable[Text | str]):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for name in COLUMNS:
            self.add_column(name, key=name)

    def show(self, board: Dashboard, now: float) -> None:
        rows = board.channels(now)
        with self.app.batch_update():
            present = {str(k.value) for k in self.rows}
            wanted = [r.spec.name for r in rows]
            for gone in present - set(wanted):
                self.remove_row(gone)
            for row in rows:
                cells = row_cells(row)
                if row.spec.name in present:
                    for name, cell in zip(COLUMNS, cells, strict=True):
                        self.update_cell(row.spec.name, name, cell)
                else:
                    self.add_row(*cells, key=row.spec.name)
            if [str(k.value) for k in self.rows] != wanted:  # a pod came or went: redo order
                self.clear()
                for row in rows:
                    self.add_row(*row_cells(row), key=row.spec.name)
