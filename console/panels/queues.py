"""Queues: per mode, size, oldest wait, waiting-time distribution and a rating histogram
(sampled; the one to watch for a ranked mode); matches per second over the last minutes."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from console.model import (
    RATING_LABELS,
    WAIT_LABELS,
    Dashboard,
    QueueView,
    bar,
    fmt_age,
    fmt_rate,
    sparkline,
)


def _histogram(title: str, labels: tuple[str, ...], counts: tuple[int, ...], style: str) -> Group:
    table = Table.grid(padding=(0, 1))
    table.add_column(width=9, justify="right")
    table.add_column(width=5, justify="right")
    table.add_column(width=16)
    most = max(counts, default=0)
    for label, count in zip(labels, counts, strict=True):
        table.add_row(label, str(count), Text(bar(count, most, 16), style))
    return Group(Text(title, "bold"), table)


def render_queue(view: QueueView) -> Group:
    head = Text()
    head.append(f"{view.mode}", "bold cyan")
    if view.ranked:
        head.append(" (ranked)", "cyan")
    head.append(
        f"  size {view.size}  in pairing {view.inflight}  oldest wait {fmt_age(view.oldest_wait)}"
    )
    grid = Table.grid(padding=(0, 2))
    grid.add_row(
        _histogram("wait", WAIT_LABELS, view.wait_buckets, "green"),
        _histogram(
            f"rating (sample of {view.rating_sample})",
            RATING_LABELS,
            view.rating_buckets,
            "magenta" if view.ranked else "blue",
        ),
    )
    return Group(head, grid, Text(""))


def render(board: Dashboard, width: int = 72) -> Group:
    parts: list[Text | Group] = [render_queue(v) for v in board.queues()]
    if not parts:
        parts.append(Text("no data yet", "dim"))
    line = Text("matches/s ")
    line.append(sparkline(board.matches_history.values, max(10, width - 22)), "cyan")
    line.append(f" {fmt_rate(board.matches_rate)}")
    parts.append(line)
    return Group(*parts)


class QueuesPanel(VerticalScroll):
    def compose(self) -> ComposeResult:
        yield Static(id="queues-body")

    def show(self, board: Dashboard) -> None:
        self.query_one("#queues-body", Static).update(render(board, self.size.width or 78))
