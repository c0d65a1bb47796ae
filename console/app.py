"""`cardgame-console`: the live-ops TUI (Textual).

Workers do the I/O and post typed messages (`console.messages`); handlers feed the pure
`console.model.Dashboard` and the panels render from it. Each poller plans its next run after
the previous one ended, so polls never overlap, and a poll that hangs only makes the status
line say "stale", then "down": the UI never waits for Redis or PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from console.messages import (
    ActionDone,
    DatabaseState,
    PlayerLoaded,
    Polled,
    PollFailed,
    TailBatch,
    TailState,
)
from console.model import Dashboard, LinkStatus, TailLine, fmt_age, redis_status
from console.panels.channels import ChannelsPanel
from console.panels.players import PlayersPanel
from console.panels.pods import PodsPanel
from console.panels.queues import QueuesPanel
from console.panels.tail import TailPanel
from console.screens import ConfirmScreen, HelpScreen
from console.sources import LiveSource, Source, describe_error

TABS = ("pods", "queues", "channels", "tail", "players")
LINK_STYLES = {"ok": "green", "stale": "bold yellow", "down": "bold red", "connecting": "yellow"}
TAIL_FLUSH = 0.25  # seconds between batches of tail lines posted to the UI


class ConsoleApp(App[None]):
    TITLE = "cardgame-console"
    CSS = """
    #status { height: 1; background: $panel; padding: 0 1; }
    #note { height: 1; padding: 0 1; color: $text-muted; }
    TabbedContent { height: 1fr; }
    TabPane { padding: 0; }
    """
    BINDINGS = [
        *(
            Binding(str(i + 1), f"show_tab('{tab}')", tab.title(), show=False)
            for i, tab in enumerate(TABS)
        ),
        Binding("m", "maintenance", "Maint"),
        Binding("d", "drain", "Drain"),
        Binding("p", "pause", "Pause"),
        Binding("slash", "filter", "Filter"),
        Binding("c", "clear_tail", "Clear"),
        Binding("x", "dequeue", "Dequeue"),
        Binding("k", "disconnect", "Disconnect"),
        Binding("r", "reload", "Reload"),
        Binding("question_mark,f1", "help", "Help"),
        Binding("escape", "leave_input", "Leave input", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        source: Source,
        *,
        interval: float = 1.0,
        heartbeat_interval: float = 1.0,
        poll_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        live: bool = True,
    ) -> None:
        super().__init__()
        self.source = source
        self.interval = interval
        self.poll_timeout = poll_timeout
        self.clock = clock
        self.live = live  # False: one poll and no background loops (snapshot tests)
        self.board = Dashboard(source.keys, heartbeat_interval)
        self.last_ok: float | None = None  # monotonic time of the last good poll
        self.redis_error = ""
        self.database: tuple[bool, str] | None = None
        self.watched_player: str | None = None
        self.note = ""

    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static(id="status")
        with TabbedContent(initial="pods", id="tabs"):
            with TabPane("1 Pods", id="pods"):
                yield PodsPanel()
            with TabPane("2 Queues", id="queues"):
                yield QueuesPanel()
            with TabPane("3 Channels", id="channels"):
                yield ChannelsPanel(id="channels-table")
            with TabPane("4 Tail", id="tail"):
                yield TailPanel(self.source.keys)
            with TabPane("5 Players", id="players"):
                yield PlayersPanel()
        yield Static(self.note, id="note")
        yield Footer()

    def on_mount(self) -> None:
        self.update_status()
        self.query_one("#pods-table").focus()
        if self.live:
            self.poll_redis()
            self.run_tail()
            self.watch_database()
            self.set_interval(0.5, self.update_status)

    async def on_unmount(self) -> None:
        self.workers.cancel_all()
        await self.source.close()

    @property
    def showing(self) -> bool:
        """False while the app shuts down: a worker's late message has nothing to update."""
        return self.is_running and bool(self.query("#status"))

    @property
    def active_tab(self) -> str:
        return self.query_one(TabbedContent).active

    # ------------------------------------------------------------ workers (I/O)
    async def poll_once(self) -> None:
        """One Redis poll, its outcome posted as a message (also used by the tests)."""
        try:
            raw = await asyncio.wait_for(self.source.poll(self.watched_player), self.poll_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the status line shows it; the next poll retries
            self.post_message(PollFailed(describe_error(exc)))
        else:
            self.post_message(Polled(raw))

    @work(exclusive=True, group="redis-poll")
    async def poll_redis(self) -> None:
        while True:
            started = time.monotonic()
            await self.poll_once()
            await asyncio.sleep(max(0.05, self.interval - (time.monotonic() - started)))

    @work(exclusive=True, group="tail")
    async def run_tail(self) -> None:
        while True:
            batch: list[TailLine] = []
            flushed = time.monotonic()
            try:
                async for item in self.source.tail():
                    if item is None:
                        if not batch:
                            self.post_message(TailState(True))
                    else:
                        channel, data = item
                        batch.append(
                            TailLine(
                                self.clock(),
                                channel,
                                data.decode(errors="replace")
                                if isinstance(data, bytes)
                                else str(data),
                            )
                        )
                    if batch and (item is None or time.monotonic() - flushed >= TAIL_FLUSH):
                        self.post_message(TailBatch(batch))
                        batch, flushed = [], time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.post_message(TailState(False, describe_error(exc)))
            await asyncio.sleep(1.0)

    @work(exclusive=True, group="database")
    async def watch_database(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.source.ping_database(), self.poll_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.post_message(DatabaseState(False, describe_error(exc)))
            else:
                self.post_message(DatabaseState(True))
            await asyncio.sleep(5.0)

    @work(exclusive=True, group="player")
    async def lookup(self, query: str) -> None:
        try:
            profile = await asyncio.wait_for(self.source.find_player(query), 10)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.post_message(PlayerLoaded(query, None, describe_error(exc)))
        else:
            self.post_message(PlayerLoaded(query, profile))

    @work(group="action")
    async def perform(self, label: str, action: Callable[[], Awaitable[str]]) -> None:
        self.post_message(ActionDone(f"{label}…"))
        try:
            text = await asyncio.wait_for(action(), 15)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.post_message(ActionDone(f"{label} failed: {describe_error(exc)}", ok=False))
        else:
            self.post_message(ActionDone(f"{label}: {text}"))
            await self.poll_once()  # show the effect now, not at the next poll

    # ------------------------------------------------------------ message handlers
    def on_polled(self, message: Polled) -> None:
        if not self.showing:
            return
        self.board.ingest(message.raw)
        self.last_ok, self.redis_error = time.monotonic(), ""
        self.query_one(PodsPanel).show(self.board)
        self.query_one(QueuesPanel).show(self.board)
        self.query_one(ChannelsPanel).show(self.board, self.clock())
        self.query_one(PlayersPanel).show_live(message.raw.player, message.raw.now)
        self.update_status()

    def on_poll_failed(self, message: PollFailed) -> None:
        if not self.showing:
            return
        self.redis_error = message.error
        self.update_status()

    def on_tail_batch(self, message: TailBatch) -> None:
        if not self.showing:
            return
        self.board.add_tail(message.lines)
        self.query_one(TailPanel).add(message.lines)

    def on_tail_state(self, message: TailState) -> None:
        if not self.showing:
            return
        self.query_one(TailPanel).set_state(message.connected, message.error)

    def on_database_state(self, message: DatabaseState) -> None:
        if not self.showing:
            return
        self.database = (message.ok, message.error)
        self.update_status()

    def on_player_loaded(self, message: PlayerLoaded) -> None:
        if not self.showing:
            return
        self.query_one(PlayersPanel).show_profile(message.query, message.profile, message.error)
        if message.error:
            self.set_note(f"lookup failed: {message.error}", ok=False)
        elif message.profile is None:
            self.set_note(f"no player matches {message.query!r}", ok=False)
        else:
            self.set_note(
                f"{message.profile.name}: x dequeue · k disconnect · r reload · 5 new lookup"
            )
        self.watched_player = message.profile.player_id if message.profile else None
        self.refresh_bindings()
        if message.profile and self.live:
            self.run_action_poll()

    @work(exclusive=True, group="player-poll")
    async def run_action_poll(self) -> None:
        await self.poll_once()

    def on_action_done(self, message: ActionDone) -> None:
        if not self.showing:
            return
        self.set_note(message.text, ok=message.ok)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "player-query":
            self.set_note(f"looking up {event.value!r}…")
            self.lookup(event.value)
            self.set_focus(None)  # keys act again (x, k, r); 5 goes back to the query

    def on_tabbed_content_tab_activated(self, _: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()

    # ------------------------------------------------------------ status line
    def link(self) -> LinkStatus:
        since = None if self.last_ok is None else time.monotonic() - self.last_ok
        duration = self.board.raw.duration if self.board.raw else None
        return redis_status(since, self.redis_error, duration, self.interval)

    def update_status(self) -> None:
        if not self.showing:
            return
        redis = self.link()
        text = Text()
        text.append("● ", LINK_STYLES[redis.state])
        text.append(f"redis {redis.text}  ")
        if self.database is None:
            text.append("● ", "yellow")
            text.append("pg connecting  ")
        else:
            ok, error = self.database
            text.append("● ", "green" if ok else "bold red")
            text.append("pg ok  " if ok else f"pg down: {error[:30]}  ")
        raw = self.board.raw
        if raw is None:
            text.append("maintenance ?", "dim")
        elif raw.maintenance:
            left = f" {fmt_age(raw.maintenance_ttl)} left" if raw.maintenance_ttl else ""
            text.append(f" MAINTENANCE {raw.maintenance}{left} ", "bold white on red")
        else:
            text.append("maintenance off", "green")
        text.append(f"  ns {self.source.keys.namespace}", "dim")
        self.query_one("#status", Static).update(text)

    def set_note(self, text: str, ok: bool = True) -> None:
        self.note = text
        self.query_one("#note", Static).update(Text(text, "" if ok else "bold red"))

    # ------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        tab = self.active_tab if self.showing else "pods"
        if action == "drain":
            return tab == "pods"
        if action in ("pause", "filter", "clear_tail"):
            return tab == "tail"
        if action in ("dequeue", "disconnect", "reload"):
            if tab != "players":
                return False
            return True if self.watched_player else None  # shown, disabled until a lookup
        return True

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        focus = {
            "pods": "#pods-table",
            "channels": "#channels-table",
            "tail": "#tail-log",
            "players": "#player-query",
        }.get(tab)
        if focus:
            self.query_one(focus).focus()
        else:
            self.set_focus(None)

    def action_leave_input(self) -> None:
        self.set_focus(None)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def confirm(self, question: str, label: str, action: Callable[[], Awaitable[str]]) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.perform(label, action)
            else:
                self.set_note(f"{label}: cancelled")

        self.push_screen(ConfirmScreen(question), answered)

    def action_maintenance(self) -> None:
        raw = self.board.raw
        if raw is not None and raw.maintenance:
            self.confirm(
                f"Turn maintenance mode OFF (now {raw.maintenance})?\n"
                "Match servers accept enqueues again.",
                "maintenance off",
                lambda: self.source.set_maintenance(False),
            )
        else:
            self.confirm(
                "Turn maintenance mode ON (manual)?\nMatch servers refuse every "
                "enqueue with MAINTENANCE until it is turned off or expires.",
                "maintenance on",
                lambda: self.source.set_maintenance(True),
            )

    def action_drain(self) -> None:
        pod = self.query_one(PodsPanel).selected_pod()
        if pod is None:
            self.set_note("no pod selected", ok=False)
            return
        self.confirm(
            f"Drain {pod}?\nIts game server stops taking players, dequeues the "
            "queued ones with a notice, finishes its battles, closes every socket "
            "(clients reconnect elsewhere) and exits.",
            f"drain {pod}",
            lambda: self.source.drain(pod),
        )

    def _player(self) -> tuple[str, str] | None:
        panel = self.query_one(PlayersPanel)
        if panel.profile is None:
            self.set_note("look a player up first", ok=False)
            return None
        return panel.profile.player_id, panel.profile.name

    def action_dequeue(self) -> None:
        who = self._player()
        if who:
            player_id, name = who
            self.confirm(
                f"Dequeue {name} ({player_id})?\nA dequeue request goes to the match "
                "servers for the pod holding the ticket; the player is told.",
                f"dequeue {name}",
                lambda: self.source.dequeue(player_id),
            )

    def action_disconnect(self) -> None:
        who = self._player()
        if who:
            player_id, name = who
            self.confirm(
                f"Disconnect {name} ({player_id})?\nTheir game server closes the "
                "socket; the client may reconnect.",
                f"disconnect {name}",
                lambda: self.source.disconnect(player_id),
            )

    def action_reload(self) -> None:
        panel = self.query_one(PlayersPanel)
        if panel.profile is not None:
            self.lookup(panel.profile.player_id)

    def action_pause(self) -> None:
        self.query_one(TailPanel).toggle_pause()

    def action_filter(self) -> None:
        self.query_one(TailPanel).open_filter()

    def action_clear_tail(self) -> None:
        self.query_one(TailPanel).clear()


# ---------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    from devtools import stack_state
    from servers.common.config import load_settings
    from servers.common.keys import Keys

    settings = load_settings()
    parser = argparse.ArgumentParser(prog="cardgame-console", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--redis",
        default=settings.redis.url,
        help="Redis URL (default: REDIS_URL / config; else the running "
        "`cardgame up`, the newest when several run)",
    )
    parser.add_argument(
        "--database",
        default=settings.database.url,
        help="PostgreSQL URL (default: DATABASE_URL / config; else the running `cardgame up`)",
    )
    parser.add_argument(
        "--namespace",
        default=None,
        help="key namespace (default: the running `cardgame up`'s when its "
        f"URLs are used, else {settings.redis.namespace})",
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    parser.add_argument(
        "--maintenance-ttl",
        type=int,
        default=settings.match.maintenance_ttl,
        help="seconds a manual maintenance flag lives (0: until turned off)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="show static sample data (no Redis or PostgreSQL needed)",
    )
    parser.add_argument(
        "--list-stacks",
        action="store_true",
        help="list the running `cardgame up` stacks, newest first, and exit",
    )
    args = parser.parse_args(argv)

    if args.list_stacks:
        for state in stack_state.running():
            print(state.describe())
        return 0
    source: Source
    notice = ""
    if args.demo:
        from console.fixture import StaticSource

        source = StaticSource()
    else:
        redis_url, database_url = args.redis, args.database
        namespace = args.namespace or settings.redis.namespace
        if not redis_url or not database_url:
            chosen, notice = stack_state.pick(stack_state.running())
            if chosen is not None:
                redis_url = redis_url or chosen.redis
                database_url = database_url or chosen.database
                namespace = args.namespace or chosen.namespace
            if notice:
                print(f"cardgame-console: {notice}", file=sys.stderr, flush=True)
        if not redis_url:
            parser.error("no Redis URL: pass --redis, set REDIS_URL, or run `cardgame up`")
        source = LiveSource(redis_url, database_url, Keys(namespace), args.maintenance_ttl)
    app = ConsoleApp(
        source, interval=args.interval, heartbeat_interval=settings.pods.heartbeat_interval
    )
    app.note = notice
    app.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
