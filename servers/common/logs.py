"""Logging setup: one JSON object per line in production, readable lines in development.

Every record carries the ids that apply where it was logged: `pod_id` (the process's pod),
`player_id` and `match_id` (bound with `bind` for the task handling that player or match, or
given as `extra=`). The ids live in contextvars, so asyncio keeps them per task: a WebSocket
handler binds its player once and every line logged while serving that socket (and in tasks
it starts) carries it. Search the logs of every process for one `match_id` to follow a match
from the match server that formed it to the game servers that ran it and delivered it.

Why the standard library plus a small formatter rather than structlog: the servers (and the
libraries under them: Hypercorn, redis-py, asyncpg) already log through `logging`, so one
formatter on the root handler structures all of it, no call site has to change, and there is
no new dependency; msgspec (already used for every message) encodes the JSON.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any

import msgspec

FIELDS = ("player_id", "match_id")
_vars: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(f"cardgame_{name}", default=None) for name in FIELDS
}
_process: dict[str, str] = {}  # pod_id and role: fixed for the process
_encoder = msgspec.json.Encoder()

Tokens = list[tuple[contextvars.ContextVar[str | None], contextvars.Token[str | None]]]


def bind(**ids: str | None) -> Tokens:
    """Attach ids (player_id, match_id) to the current task's log records; returns what
    `unbind` needs to restore the previous values."""
    return [(_vars[name], _vars[name].set(value)) for name, value in ids.items()]


def unbind(tokens: Tokens) -> None:
    for var, token in reversed(tokens):
        var.reset(token)


def current() -> dict[str, str]:
    """The ids that apply here (process and task), for a record or a test."""
    out = dict(_process)
    for name, var in _vars.items():
        value = var.get()
        if value is not None:
            out[name] = value
    return out


class ContextFilter(logging.Filter):
    """Copies the ids onto each record (an explicit `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (RFC 3339, UTC), level, logger, msg, the ids, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in ("pod_id", "role", *FIELDS):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return _encoder.encode(entry).decode()


class TextFormatter(logging.Formatter):
    """The development format, with the ids at the end of the line when there are any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(
            f"{name}={getattr(record, name)}"
            for name in FIELDS
            if getattr(record, name, None) is not None
        )
        if not ids:
            return line
        first, _, rest = line.partition("\n")
        return f"{first} [{ids}]" + (f"\n{rest}" if rest else "")


def configure(
    fmt: str = "text", level: str = "INFO", pod_id: str | None = None, role: str | None = None
) -> None:
    """Replace the root logger's handlers with one stderr handler in `fmt` (text or json)."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {fmt!r}")
    _process.clear()
    if pod_id:
        _process["pod_id"] = pod_id
    if role:
        _process["role"] = role
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
