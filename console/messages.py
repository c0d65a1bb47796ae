"""Typed messages the console's workers post to the app; handlers update the panels."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from console.model import PlayerProfile, RawPoll, TailLine


@dataclass
class Polled(Message):
    """A Redis poll finished."""

    raw: RawPoll


@dataclass
class PollFailed(Message):
    """A Redis poll failed or timed out; the next one follows after the interval."""

    error: str


@dataclass
class TailBatch(Message):
    """Messages the live tail received since the last batch (batched so that a busy stack
    costs the UI a few refreshes a second, not one per message)."""

    lines: list[TailLine]


@dataclass
class TailState(Message):
    connected: bool
    error: str = ""


@dataclass
class DatabaseState(Message):
    ok: bool
    error: str = ""


@dataclass
class PlayerLoaded(Message):
    query: str
    profile: PlayerProfile | None
    error: str = ""


@dataclass
class ActionDone(Message):
    """An operator action finished (or failed): its outcome goes to the status line."""

    text: str
    ok: bool = True
