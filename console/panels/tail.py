"""The live tail: every message published in the namespace (one PSUBSCRIBE), filterable by
player, pod or text, and pausable. The last lines are kept so a new filter applies to them."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, RichLog, Static

from console.model import TailFilter, TailLine, short_channel, summarize
from servers.common.keys import Keys

KEEP = 500


def render_line(keys: Keys, line: TailLine) -> Text:
    text = Text()
    text.append(time.strftime("%H:%M:%S", time.localtime(line.at)), "dim")
    text.append(f" {short_channel(keys, line.channel)} ", "cyan")
    text.append(summarize(line.data))
    return text


class TailPanel(Vertical):
    DEFAULT_CSS = """
    TailPanel #tail-head { height: 1; padding: 0 1; }
    TailPanel #tail-filter { display: none; }
    TailPanel #tail-filter.editing { display: block; }
    TailPanel RichLog { height: 1fr; }
    """

    def __init__(self, keys: Keys, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keys = keys
        self.lines: deque[TailLine] = deque(maxlen=KEEP)
        self.filter = TailFilter()
        self.paused = False
        self.connected = False
        self.error = ""
        self.hidden_while_paused = 0

    def compose(self) -> ComposeResult:
        yield Static(id="tail-head")
        yield Input(
            placeholder="filter: pod=pod-1 player=123 text  (Enter applies, Esc closes)",
            id="tail-filter",
        )
        yield RichLog(id="tail-log", max_lines=KEEP, wrap=False, markup=False)

    def on_mount(self) -> None:
        self.update_head()

    @property
    def log_widget(self) -> RichLog:
        return self.query_one("#tail-log", RichLog)

    def update_head(self) -> None:
        head = Text()
        if self.connected:
            head.append("● live", "green")
        else:
            head.append(f"○ {self.error or 'connecting'}", "red")
        if self.paused:
            head.append(f"  PAUSED ({self.hidden_while_paused} new)", "bold yellow")
        head.append(f"  filter: {self.filter.describe()}  ")
        head.append("p pause · / filter · c clear", "dim")
        self.query_one("#tail-head", Static).update(head)

    def add(self, lines: list[TailLine]) -> None:
        self.lines.extend(lines)
        if self.paused:
            self.hidden_while_paused += len(lines)
            self.update_head()
            return
        log = self.log_widget
        for line in lines:
            if self.filter.matches(line.channel, line.data):
                log.write(render_line(self.keys, line))

    def redraw(self) -> None:
        log = self.log_widget
        log.clear()
        for line in self.lines:
            if self.filter.matches(line.channel, line.data):
                log.write(render_line(self.keys, line))

    def toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self.hidden_while_paused = 0
            self.redraw()
        self.update_head()

    def set_filter(self, spec: str) -> None:
        self.filter = TailFilter.parse(spec)
        self.redraw()
        self.update_head()

    def open_filter(self) -> None:
        box = self.query_one("#tail-filter", Input)
        box.add_class("editing")
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.set_filter(event.value)
        event.input.remove_class("editing")
        self.log_widget.focus()

    def clear(self) -> None:
        self.lines.clear()
        self.log_widget.clear()

    def set_state(self, connected: bool, error: str) -> None:
        self.connected, self.error = connected, error
        self.update_head()
