"""Structured logs: JSON lines with the ids bound to the current task."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest

from servers.common import logs
from servers.common.config import load_settings


@pytest.fixture
def captured() -> Iterator[list[str]]:
    """Records formatted by a JSON handler like the servers' (pytest keeps the root handlers)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger("cardgame.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)


def test_json_lines_carry_the_bound_ids_per_task(captured: list[str]) -> None:
    log = logging.getLogger("cardgame.test-logs")

    async def serve(player: str) -> None:
        logs.bind(player_id=player)
        await asyncio.sleep(0)  # on purpose: lets the other task bind its own ids meanwhile
        log.info("hello from %s", player)

    async def main() -> None:
        await asyncio.gather(serve("1"), serve("2"))

    asyncio.run(main())
    log.info("no player here", extra={"match_id": "m-1"})
    entries = [json.loads(line) for line in captured]
    assert [(e["msg"], e.get("player_id")) for e in entries[:2]] == [
        ("hello from 1", "1"),
        ("hello from 2", "2"),
    ]
    assert entries[2]["match_id"] == "m-1" and "player_id" not in entries[2]
    assert {"ts", "level", "logger", "msg"} <= set(entries[0])


def test_unbind_restores(captured: list[str]) -> None:
    tokens = logs.bind(match_id="a")
    inner = logs.bind(match_id="b")
    assert logs.current()["match_id"] == "b"
    logs.unbind(inner)
    assert logs.current()["match_id"] == "a"
    logs.unbind(tokens)
    assert "match_id" not in logs.current()


def test_exceptions_are_one_json_line(captured: list[str]) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("cardgame.test-logs").exception("failed")
    [line] = captured
    assert "ValueError: boom" in json.loads(line)["exc"]


def test_production_logs_json_development_text() -> None:
    assert load_settings({"CARDGAME_ENV": "production"}).log.format == "json"
    assert load_settings({}).log.format == "text"
