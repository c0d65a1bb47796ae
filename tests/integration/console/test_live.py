"""The console driven with Textual's Pilot against real running stacks: the panels show the
real numbers while the fake client plays, the actions change the real state, and a Redis or
PostgreSQL that is unreachable, slow, or comes back shows as such."""

from __future__ import annotations

import asyncio
import io
import subprocess
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from console.app import ConsoleApp
from console.model import PodRow
from console.panels.pods import PodsPanel
from console.panels.tail import TailPanel
from console.sources import LiveSource
from devtools.embedded import binary_version, find_redis_server
from devtools.stack import Stack, free_port
from fake_client.client import GameClient, ServerError
from fake_client.pvp import run_pvp
from servers.common import protocol as p
from servers.common.errors import ErrorCode
from servers.common.keys import GameMode, Keys
from tests.support.helpers import expect_error, login

NORMAL = GameMode.NORMAL


def console_for(stack: Stack) -> ConsoleApp:
    s = stack.settings
    source = LiveSource(
        s.redis.url, s.database.url, Keys(s.redis.namespace), s.match.maintenance_ttl
    )
    return ConsoleApp(source, interval=0.2, heartbeat_interval=s.pods.heartbeat_interval)


async def until(
    pilot: Pilot[None], check: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s")
        await pilot.pause(0.05)  # polling pace


def text_of(app: ConsoleApp, selector: str) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(app.query_one(selector, Static).content)
    return console.export_text()


def pods(app: ConsoleApp) -> dict[str, PodRow]:
    return {row.pod: row for row in app.board.pods()}


def pod_status_cell(app: ConsoleApp, pod: str) -> str:
    table = app.query_one(PodsPanel).table
    return str(table.get_row(pod)[1]) if pod in {str(k.value) for k in table.rows} else ""


async def test_panels_follow_the_live_stack_and_player_actions_work(
    stack: Stack, redis: aioredis.Redis
) -> None:
    keys = Keys(stack.settings.redis.namespace)
    app = console_for(stack)
    async with app.run_test(size=(80, 24)) as pilot:
        # Pods: both pods, both roles alive, as the heartbeats say.
        await until(
            pilot,
            lambda: (
                {"pod-1", "pod-2"} <= set(pods(app))
                and all(pods(app)[x].status == "ok" for x in ("pod-1", "pod-2"))
            ),
            what="two healthy pods",
        )
        assert pod_status_cell(app, "pod-1") == "ok"
        assert "redis ok" in text_of(app, "#status")
        await until(pilot, lambda: "pg ok" in text_of(app, "#status"), what="pg ok")

        def matches_formed() -> int:
            return sum(int(row.match.stats.get("matches_formed", 0)) for row in pods(app).values())

        before = matches_formed()
        # The fake client plays 4 matches while the console watches.
        played = asyncio.create_task(
            run_pvp(
                stack.auth_url, stack.game_urls, 4, timeout=30, steam_sim_url=stack.steam_sim_url
            )
        )
        await until(
            pilot,
            lambda: matches_formed() >= before + 4,
            timeout=30,
            what="matches counted from the heartbeats",
        )
        summary = await played
        assert summary.matches_completed == 4, summary.errors
        tail = app.query_one(TailPanel)
        await until(
            pilot,
            lambda: sum("MatchFound" in line.data for line in tail.lines) >= 8,
            what="MatchFound messages in the tail",
        )
        assert any(line.channel == keys.battle_request for line in tail.lines)
        assert app.board.matches_history.values and max(app.board.matches_history.values) > 0
        rows = {row.spec.label: row for row in app.board.channels(time.time())}
        assert rows["battle:request"].subscribers == 2  # both game servers (PUBSUB NUMSUB)
        assert rows["pod:pod-1:match_result"].subscribers == 1
        await pilot.press("3")
        channels = app.query_one("#channels-table")
        assert channels.row_count == len(rows)  # type: ignore[attr-defined]

        # Players: a lone player queues on pod-1; the console finds them and sees it.
        who = await login(stack)
        client = await GameClient.connect(stack.game_urls[0], who.access_token)
        await client.request(p.Enqueue())
        await pilot.press("5", *who.name, "enter")
        await until(
            pilot,
            lambda: (
                app.board.raw is not None
                and app.board.raw.player is not None
                and app.board.raw.player.queued_mode == "normal"
            ),
            what="player queued",
        )
        live = app.board.raw.player  # type: ignore[union-attr]
        assert live is not None and live.pod == "pod-1" and live.ticket_pod == "pod-1"
        profile = text_of(app, "#player-profile")
        assert who.name in profile and who.player_id in profile and "rating 1500" in profile
        assert "normal for" in text_of(app, "#player-live")
        queue_text = text_of(app, "#queues-body")
        assert "size" in queue_text and "oldest wait" in queue_text

        # Dequeue: through the match servers; the player's session tells the client.
        await pilot.press("x")
        await pilot.press("y")
        dequeued = await client.next_push(p.Dequeued, 10)
        assert dequeued.reason == "server"
        assert await redis.zscore(keys.queue(NORMAL), who.player_id) is None
        await until(pilot, lambda: "dequeued from normal" in app.note, what="dequeue note")
        # The session is idle again: the player can queue again at once.
        await client.request(p.Enqueue())
        await client.request(p.Dequeue())

        # Disconnect: the pod holding the session closes the socket.
        await pilot.press("k")
        await pilot.press("y")
        with expect_error(ErrorCode.SESSION_REPLACED):
            await client.next_push(p.Welcome, 10)  # then the close
        await until(pilot, lambda: client.ws.close_code is not None, what="the socket closed")
        assert client.ws.close_code == 4403
        await client.close()


async def test_maintenance_toggle_and_drain_change_the_real_stack(
    own_stack: Stack, redis: aioredis.Redis
) -> None:
    keys = Keys(own_stack.settings.redis.namespace)
    app = console_for(own_stack)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: pod_status_cell(app, "pod-2") == "ok", what="pod-2 ok")

        # Maintenance on (manual, with the configured expiry): match servers refuse enqueues.
        await pilot.press("m", "y")
        await until(
            pilot, lambda: "MAINTENANCE manual" in text_of(app, "#status"), what="maintenance shown"
        )
        assert await redis.get(keys.maintenance_flag) == b"manual"
        ttl = await redis.ttl(keys.maintenance_flag)
        assert 0 < ttl <= own_stack.settings.match.maintenance_ttl
        who = await login(own_stack)
        client = await GameClient.connect(own_stack.game_urls[0], who.access_token)
        deadline = time.monotonic() + 5  # each watchdog reads the flag once a heartbeat
        while True:
            try:
                await client.request(p.Enqueue())
            except ServerError as exc:
                assert exc.code == "MAINTENANCE"
                break
            await client.request(p.Dequeue())
            assert time.monotonic() < deadline, "enqueue still accepted in maintenance"
            await asyncio.sleep(0.2)  # the pace of the attempts (bounded by the deadline)
        # ... and off again.
        await pilot.press("m", "n")  # cancelled: still on
        await until(pilot, lambda: "cancelled" in app.note, what="the cancelled note")
        assert await redis.get(keys.maintenance_flag) == b"manual"
        await pilot.press("m", "y")
        await until(
            pilot,
            lambda: "maintenance off" in text_of(app, "#status"),
            what="maintenance off shown",
        )
        assert await redis.exists(keys.maintenance_flag) == 0
        await client.close()

        # Drain pod-2 (selected with the arrow key): its game server drains and exits.
        await pilot.press("1", "down", "d", "y")
        game = own_stack.proc("game-2")
        assert game.popen is not None
        assert await asyncio.to_thread(game.popen.wait, 15) == 0
        await until(
            pilot,
            lambda: pod_status_cell(app, "pod-2") == "dead",
            timeout=10,
            what="pod-2 marked dead",
        )
        assert pod_status_cell(app, "pod-1") == "ok"
        assert "drain sent to pod-2" in app.note


def _major(version: str) -> int:
    return int(version.split(".")[0]) if version[:1].isdigit() else 0


async def test_unreachable_slow_and_returning_redis_and_postgres() -> None:
    port = free_port()
    source = LiveSource(
        f"redis://127.0.0.1:{port}/0",
        f"postgresql://nobody@127.0.0.1:{free_port()}/nothing",
        Keys("cgx"),
    )
    app = ConsoleApp(source, interval=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(
            pilot,
            lambda: (
                "redis down" in text_of(app, "#status") and "pg down" in text_of(app, "#status")
            ),
            what="both shown down",
        )
        binary = find_redis_server()
        # DEBUG is refused from Redis 7 on unless enabled; 6.2 (the bundled one) allows it and
        # exits at once on the option it does not know.
        debug = ["--enable-debug-command", "yes"] if _major(binary_version(binary)) >= 7 else []
        server = await asyncio.create_subprocess_exec(
            binary,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            *debug,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # Redis comes up: the console reconnects by itself.
            await until(pilot, lambda: "redis ok" in text_of(app, "#status"), what="reconnect")
            # Redis stalls for 1.5 s: the status says stale, and the UI still answers keys.
            other = aioredis.Redis(port=port)
            stall = asyncio.create_task(other.execute_command("DEBUG", "SLEEP", "1.5"))
            await until(
                pilot,
                lambda: "redis stale" in text_of(app, "#status"),
                timeout=3,
                what="stale shown",
            )
            await pilot.press("2")
            assert app.active_tab == "queues"
            await stall
            await other.aclose()
            await until(pilot, lambda: "redis ok" in text_of(app, "#status"), what="fresh again")
        finally:
            server.terminate()
            await server.wait()
