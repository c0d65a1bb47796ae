"""Structured logs: JSON lines with the ids that apply, and one match followed across the match
server and both game servers by its match_id."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest

from devtools.stack import Stack
from servers.common import logs
from servers.common import protocol as p
from servers.common.config import Settings, load_settings
from tests.support.helpers import connect


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
        await asyncio.sleep(0)
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


@pytest.fixture(scope="module")
def json_stack(settings: Settings) -> Iterator[Stack]:
    json_settings = settings.replace(
        log={"format": "json"}, redis={"namespace": f"{settings.redis.namespace}-logs"}
    )
    with Stack(json_settings, pods=2) as running:
        yield running


async def test_one_match_is_followed_across_processes(json_stack: Stack) -> None:
    alice = await connect(json_stack, pod=0)
    bob = await connect(json_stack, pod=1)
    try:
        await alice.request(p.Enqueue())
        await bob.request(p.Enqueue())
        found = await alice.next_push(p.MatchFound, 10)
        await alice.next_push(p.BattleResultMessage, 10)
        await bob.next_push(p.BattleResultMessage, 10)
    finally:
        await alice.close()
        await bob.close()
    await asyncio.sleep(0.3)
    trail: dict[str, list[dict[str, str]]] = {}
    for proc in json_stack.procs:
        if proc.name.startswith(("game", "match")):
            for line in proc.log_path.read_text().splitlines():
                if line.startswith("{"):
                    entry = json.loads(line)
                    if entry.get("match_id") == found.match_id:
                        trail.setdefault(proc.name, []).append(entry)
    formed = [e for lines in trail.values() for e in lines if e["msg"].startswith("match formed")]
    assert len(formed) == 1 and formed[0]["role"] == "match"
    ran = [e for lines in trail.values() for e in lines if e["msg"].startswith("battle recorded")]
    assert len(ran) == 1 and ran[0]["role"] == "game" and ran[0]["pod_id"] in ("pod-1", "pod-2")
    delivered = {
        (e["pod_id"], e["player_id"])
        for lines in trail.values()
        for e in lines
        if e["msg"] == "battle result delivered"
    }
    assert delivered == {("pod-1", alice.welcome.player_id), ("pod-2", bob.welcome.player_id)}
