"""Pods: every pod's game and match server, heartbeat age and stats; stale or dead marked."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from console.model import Dashboard, PodRow, RoleView, fmt_age, fmt_rate, natural_key, sparkline

STYLES = {"ok": "green", "draining": "yellow", "stale": "bold yellow", "dead": "bold red"}
COLUMNS = ("pod", "status", "game♥", "match♥", "conn", "battles", "done", "matches", "reqs")


def _beat(view: RoleView) -> Text:
    if view.status == "dead":
        return Text("dead" if view.age is None else f"✗{fmt_age(view.age)}", STYLES["dead"])
    return Text(fmt_age(view.age), STYLES[view.status])


def _stat(view: RoleView, name: str) -> str:
    value = view.stats.get(name)
    return "-" if value is None else str(value)


def row_cells(row: PodRow) -> tuple[Text | str, ...]:
    status = row.status
    return (
        Text(row.pod, "bold"),
        Text(status, STYLES[status]),
        _beat(row.game),
        _beat(row.match),
        _stat(row.game, "connected"),
        _stat(row.game, "battles_running"),
        _stat(row.game, "battles_completed"),
        _stat(row.match, "matches_formed"),
        _stat(row.match, "requests"),
    )


class PodsPanel(Vertical):
    DEFAULT_CSS = """
    PodsPanel DataTable { height: 1fr; }
    PodsPanel #pods-summary { height: auto; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        table: DataTable[Text | str] = DataTable(
            id="pods-table", cursor_type="row", zebra_stripes=True
        )
        for name in COLUMNS:
            table.add_column(name, key=name)
        yield table
        yield Static(id="pods-summary")

    @property
    def table(self) -> DataTable[Text | str]:
        return self.query_one("#pods-table", DataTable)

    def selected_pod(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    def show(self, board: Dashboard) -> None:
        rows = board.pods()
        table = self.table
        with self.app.batch_update():
            present = {str(k.value) for k in table.rows}
            wanted = [r.pod for r in rows]
            for gone in present - set(wanted):
                table.remove_row(gone)
            for row in rows:
                cells = row_cells(row)
                if row.pod in present:
                    for name, cell in zip(COLUMNS, cells, strict=True):
                        table.update_cell(row.pod, name, cell)
                else:
                    table.add_row(*cells, key=row.pod)
            if [str(k.value) for k in table.rows] != wanted:
                table.sort("pod", key=lambda cell: natural_key(str(cell)))
            self.query_one("#pods-summary", Static).update(summary(board, rows))


def summary(board: Dashboard, rows: list[PodRow]) -> Text:
    counts = {s: sum(1 for r in rows if r.status == s) for s in STYLES}
    text = Text()
    text.append(f"{len(rows)} pods  ")
    for state, n in counts.items():
        if n:
            text.append(f"{n} {state}  ", STYLES[state])
    text.append("\nmatches ")
    text.append(sparkline(board.matches_history.values, 40), "cyan")
    text.append(f" {fmt_rate(board.matches_rate)}")
    text.append(
        f"\nbattles {fmt_rate(board.battles_rate)}  queue requests {fmt_rate(board.requests_rate)}"
    )
    return text
