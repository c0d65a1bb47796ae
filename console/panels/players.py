"""Players: look a player up by id or name (PostgreSQL), see where they stand (Redis, every
poll), and act on them: dequeue (x) or disconnect (k)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Static

from console.model import PlayerLive, PlayerProfile, fmt_age


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


def render_live(live: PlayerLive | None, now: float | None) -> Text:
    text = Text()
    if live is None:
        return Text("live state: waiting for the next poll", "dim")
    text.append("session  ")
    text.append(f"on {live.pod}" if live.pod else "none", "green" if live.pod else "dim")
    text.append("\nqueue    ")
    if live.queued_mode:
        waited = (now - live.queued_since_ms / 1000) if now and live.queued_since_ms else None
        text.append(
            f"{live.queued_mode} for {fmt_age(waited)} (ticket on {live.ticket_pod})", "yellow"
        )
    elif live.inflight_mode:
        text.append(f"being paired in {live.inflight_mode}", "yellow")
    else:
        text.append("not queued", "dim")
    text.append("\nbattle   ")
    text.append(
        f"match {live.match_id}" if live.match_id else "none", "magenta" if live.match_id else "dim"
    )
    return text


def render_profile(profile: PlayerProfile) -> Group:
    head = Text()
    head.append(profile.name, "bold cyan")
    head.append(
        f"  id {profile.player_id}  level {profile.level}  "
        f"rating {profile.rating:.0f} ±{profile.rating_deviation:.0f}\n"
    )
    head.append(
        f"W/L/D {profile.wins}/{profile.losses}/{profile.draws}  "
        f"last login {_when(profile.last_login_at)}"
    )
    if profile.others:
        head.append(f"\nalso matched: {', '.join(profile.others)}", "dim")
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    for name in ("finished", "mode", "result", "rating", "opponent"):
        table.add_column(name)
    colours = {"win": "green", "loss": "red", "draw": "yellow"}
    for m in profile.recent:
        change = m.rating_after - m.rating_before
        table.add_row(
            _when(m.finished_at),
            m.mode,
            Text(m.result, colours.get(m.result, "")),
            f"{m.rating_after:.0f} ({change:+.0f})",
            m.opponent_name[:20],
        )
    recent: Table | Text = table if profile.recent else Text("no matches yet", "dim")
    return Group(head, Text(""), Text("recent matches", "bold"), recent)


class PlayersPanel(Vertical):
    DEFAULT_CSS = """
    PlayersPanel #player-query { margin: 0 0 1 0; }
    PlayersPanel #player-live { height: auto; padding: 0 1 1 1; }
    PlayersPanel #player-profile { padding: 0 1; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.profile: PlayerProfile | None = None

    def compose(self) -> ComposeResult:
        yield Input(placeholder="player id or name, Enter to look up", id="player-query")
        with VerticalScroll():
            yield Static(
                Text("look a player up: id (SteamID64) or name", "dim"), id="player-profile"
            )
            yield Static(id="player-live")

    def show_profile(self, query: str, profile: PlayerProfile | None, error: str) -> None:
        self.profile = profile
        body = self.query_one("#player-profile", Static)
        if error:
            body.update(Text(f"lookup failed: {error}", "red"))
        elif profile is None:
            body.update(Text(f"no player matches {query!r}", "yellow"))
        else:
            body.update(render_profile(profile))
        self.query_one("#player-live", Static).update("")

    def show_live(self, live: PlayerLive | None, now: float | None) -> None:
        if self.profile is not None:
            self.query_one("#player-live", Static).update(render_live(live, now))
