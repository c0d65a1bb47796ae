"""Locust scenarios against a running stack: `locust -f loadtest --host http://127.0.0.1:8000`.

`--host` is the auth server. The game servers come from `--game-urls` (comma-separated, or the
LOCUST_GAME_URLS variable); without it they are discovered next to the auth server (see
discovery.py). Each user logs in once, holds one WebSocket and reports every timed step to
Locust's statistics as a named request:

    login                         HTTP POST /login/dev
    connect                       WebSocket open -> welcome
    enqueue -> EnQueued           enqueue sent -> the enqueued reply
    enqueue -> MatchFound         enqueue sent -> match_found
    MatchFound -> battle result   match_found -> battle_result
    whole cycle                   enqueue sent -> battle_result

A failure carries the server's error code (e.g. `ServerError(NO_LEGAL_DECK: ...)`). BadActor's
requests (type `BAD`) succeed when the server rejects the bad input with the expected code and
stays usable; anything else is a failure.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
import uuid
from typing import Any

import websocket
from locust import HttpUser, between, events, task
from locust.env import Environment
from locust.exception import StopUser

from loadtest.discovery import discover_game_urls, parse_urls
from loadtest.inputs import BAD_FRAMES, BURST, RATE_LIMIT_CODES, skill_deck
from loadtest.wsclient import GameSocket, StepTimeout
from servers.common import protocol as p
from servers.common.keys import GameMode
from servers.common.protocol import ServerError

log = logging.getLogger("cardgame.loadtest")

RUN_TAG = uuid.uuid4().hex[:6]  # keeps player names unique across runs and workers
_user_numbers = itertools.count(1)
_game_picks = itertools.count()

# RankedPopulation plays Ranked once that mode exists in the code (GameMode.RANKED); until then
# it plays Normal. --ranked-mode overrides either way.
DEFAULT_RANKED_MODE = "ranked" if "ranked" in {m.value for m in GameMode} else "normal"


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]  # Locust: unannotated
def _options(parser: Any) -> None:
    group = parser.add_argument_group("cardgame")
    group.add_argument(
        "--game-urls",
        default="",
        env_var="LOCUST_GAME_URLS",
        help="game server WebSocket URLs, comma-separated (default: discovered"
        " next to --host from the configured game port)",
    )
    group.add_argument(
        "--ws-timeout",
        type=float,
        default=30.0,
        env_var="LOCUST_WS_TIMEOUT",
        help="seconds to wait for each reply or push",
    )
    group.add_argument(
        "--ranked-mode",
        default=DEFAULT_RANKED_MODE,
        env_var="LOCUST_RANKED_MODE",
        help=f"game mode RankedPopulation queues for (default {DEFAULT_RANKED_MODE!r})",
    )
    group.add_argument(
        "--think-time",
        type=float,
        default=0.5,
        env_var="LOCUST_THINK_TIME",
        help="most seconds a player waits between matches",
    )


_game_urls: list[str] = []


@events.test_start.add_listener  # type: ignore[untyped-decorator]  # Locust: unannotated
def _find_game_servers(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None or environment.host is None:
        return
    urls = parse_urls(options.game_urls) or discover_game_urls(environment.host)
    if not urls:
        raise RuntimeError(f"no game server found next to {environment.host}; pass --game-urls")
    _game_urls[:] = urls
    log.info("game servers: %s", ", ".join(urls))


def _think(user: Any) -> float:
    options = user.environment.parsed_options
    most = options.think_time if options is not None else 0.5
    return random.uniform(0, most)


class GameUser(HttpUser):
    """A logged-in player with one WebSocket; subclasses define the behaviour."""

    abstract = True
    wait_time = _think
    socket: GameSocket | None = None
    mode = "normal"

    def on_start(self) -> None:
        self.number = next(_user_numbers)
        self.name = f"lt-{RUN_TAG}-{self.number}"
        self.game_url = _game_urls[next(_game_picks) % len(_game_urls)] if _game_urls else ""
        options = self.environment.parsed_options
        self.timeout = options.ws_timeout if options is not None else 30.0
        self.token = self.login()

    def on_stop(self) -> None:
        self.disconnect()

    # ------------------------------------------------------------ reporting
    def report(
        self,
        name: str,
        started: float,
        exception: BaseException | None = None,
        kind: str = "WS",
        length: int = 0,
    ) -> None:
        self.environment.events.request.fire(
            request_type=kind,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context={"user": self.name},
        )

    # ------------------------------------------------------------ steps
    def login(self) -> str:
        with self.client.post(
            "/login/dev", json={"name": self.name}, name="login", catch_response=True
        ) as response:
            try:
                body = response.json()
            except ValueError:
                body = {}
            if response.status_code != 200:
                error = body.get("error", {}) if isinstance(body, dict) else {}
                response.failure(
                    f"{error.get('code', response.status_code)}:"
                    f" {error.get('message', response.text[:200])}"
                )
                raise StopUser()
            return str(body["access_token"])

    def connect(self) -> GameSocket:
        started = time.perf_counter()
        try:
            self.socket = GameSocket.connect(self.game_url, self.token, self.timeout)
        except Exception as exc:
            self.report("connect", started, exc)
            raise StopUser() from exc
        self.report("connect", started)
        return self.socket

    def ensure_connected(self) -> GameSocket:
        if self.socket is None or not self.socket.connected:
            return self.connect()
        return self.socket

    def disconnect(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    def play_match(self, mode: str) -> None:
        """enqueue -> enqueued -> match_found -> battle_result, each step reported."""
        game = self.ensure_connected()
        started = time.perf_counter()
        step = "enqueue -> EnQueued"
        try:
            ref = game.send(p.Enqueue(mode=mode))
            try:
                game.wait(p.Enqueued, self.timeout, ref)
            except ServerError as exc:
                # A reconnect after a failed step may resume a session that is still busy.
                if game.welcome.resumed and self.settle_busy_session(exc):
                    return
                raise
            self.report(step, started)
            step = "enqueue -> MatchFound"
            found = game.wait(p.MatchFound, self.timeout)
            self.report(step, started)
            step = "MatchFound -> battle result"
            matched = time.perf_counter()
            game.wait(
                p.BattleResultMessage, self.timeout, accept=lambda r: r.match_id == found.match_id
            )
            self.report(step, matched)
            self.report("whole cycle", started)
        except (ServerError, StepTimeout, OSError, websocket.WebSocketException) as exc:
            self.report(step, started, exc)
            self.report("whole cycle", started, exc)
            # Start clean: the server dequeues a player whose socket closes.
            self.disconnect()

    def settle_busy_session(self, error: ServerError) -> bool:
        """After a reconnect the session may still be busy; wait it out. True when handled."""
        assert self.socket is not None
        if error.code == "IN_BATTLE":
            self.socket.wait(p.BattleResultMessage, self.timeout)
            return True
        if error.code == "ALREADY_QUEUED":
            # The reconnect found the player still queued (the reconnect grace kept the
            # place): leave the queue, or play the match that was found meanwhile.
            ref = self.socket.send(p.Dequeue())
            reply = self.socket.wait_any(
                self.timeout, lambda m: m.id == ref or isinstance(m, p.MatchFound)
            )
            if isinstance(reply, p.MatchFound):
                self.socket.wait(p.BattleResultMessage, self.timeout)
            return True
        if error.code == "REQUEST_IN_PROGRESS":
            self.socket.wait_any(
                self.timeout,
                lambda m: isinstance(m, p.Dequeued | p.Enqueued | p.BattleResultMessage),
            )
            return True
        return False


class PvPPlayer(GameUser):
    """Logs in once, keeps one WebSocket and plays match after match (Normal)."""

    weight = 10

    @task
    def play(self) -> None:
        self.play_match(self.mode)


class RankedPopulation(GameUser):
    """Players whose skill follows a bell curve, expressed in the deck each of them builds.

    A player's rating lives on the server and cannot be sent by a client, so the spread comes
    from play: a skilled player builds a deck from their strongest cards, a weak one picks at
    random. Ranked matches then spread the ratings by Glicko-2. Plays --ranked-mode.
    """

    weight = 5

    def on_start(self) -> None:
        super().on_start()
        options = self.environment.parsed_options
        self.mode = options.ranked_mode if options is not None else DEFAULT_RANKED_MODE
        self.skill = min(1.0, max(0.0, random.gauss(0.5, 0.2)))
        self.build_deck()

    def build_deck(self) -> None:
        game = self.connect()
        started = time.perf_counter()
        try:
            ref = game.send(p.GetCollection())
            owned = game.wait(p.Collection, self.timeout, ref).cards
            cards = skill_deck(owned, self.skill, random.Random(self.number))
            ref = game.send(p.SaveDeck(name=f"skill {self.skill:.2f}", cards=cards))
            saved = game.wait(p.DeckSaved, self.timeout, ref)
            ref = game.send(p.SetActiveDeck(deck_id=saved.deck.deck_id))
            game.wait(p.ActiveDeckSet, self.timeout, ref)
        except (ServerError, StepTimeout, OSError, websocket.WebSocketException) as exc:
            self.report("build deck", started, exc)
            raise StopUser() from exc
        self.report("build deck", started)

    @task
    def play(self) -> None:
        self.play_match(self.mode)


class Churner(GameUser):
    """Queues, then leaves again: dequeues, or drops the connection while queued and reconnects."""

    weight = 2

    @task
    def churn(self) -> None:
        game = self.ensure_connected()
        started = time.perf_counter()
        step = "enqueue -> EnQueued"
        try:
            ref = game.send(p.Enqueue(mode=self.mode))
            try:
                game.wait(p.Enqueued, self.timeout, ref)
            except ServerError as exc:
                if game.welcome.resumed and self.settle_busy_session(exc):
                    return
                raise
            self.report(step, started)
            if self.matched_while_queued(random.uniform(0.0, 1.0)):
                return
            if random.random() < 0.5:
                step = "dequeue -> Dequeued"
                started = time.perf_counter()
                ref = game.send(p.Dequeue())
                reply = game.wait_any(
                    self.timeout, lambda m: m.id == ref or isinstance(m, p.MatchFound)
                )
                if isinstance(reply, p.Error) and reply.code != "IN_BATTLE":
                    raise ServerError(reply.code, reply.message)
                if isinstance(reply, p.Dequeued):
                    self.report(step, started)
                else:  # matched before the dequeue landed: play it out
                    game.wait(p.BattleResultMessage, self.timeout)
            else:
                self.disconnect()  # the game server dequeues the player by itself
        except (ServerError, StepTimeout, OSError, websocket.WebSocketException) as exc:
            self.report(step, started, exc)
            self.disconnect()

    def matched_while_queued(self, seconds: float) -> bool:
        """Stay queued for a while; if a match is found meanwhile, play it out and say so."""
        assert self.socket is not None
        try:
            found = self.socket.wait(p.MatchFound, seconds)
        except StepTimeout:
            return False
        self.socket.wait(
            p.BattleResultMessage, self.timeout, accept=lambda r: r.match_id == found.match_id
        )
        return True


class BadActor(GameUser):
    """Malformed, forbidden and over-rate traffic. Reported as `BAD` requests that succeed when
    the server refuses them with the expected code and the connection stays usable."""

    weight = 1
    wait_time = between(0.5, 1.5)

    @task(6)
    def bad_frame(self) -> None:
        name, frame, expected = random.choice(BAD_FRAMES)
        started = time.perf_counter()
        try:
            game = self.ensure_connected()
            game.send_raw(frame)
            reply = game.wait_any(self.timeout, lambda m: isinstance(m, p.Error))
            if reply.code != expected and reply.code not in RATE_LIMIT_CODES:
                raise ServerError(reply.code, f"expected {expected}: {reply.message}")
            # Still usable afterwards?
            ref = game.send(p.Ping())
            game.wait(p.Pong, self.timeout, ref)
        except (ServerError, StepTimeout, OSError, websocket.WebSocketException) as exc:
            self.report(f"{name} -> {expected}", started, exc, kind="BAD")
            self.disconnect()
            return
        self.report(f"{name} -> {expected}", started, kind="BAD")

    @task(2)
    def burst(self) -> None:
        """BURST pings without waiting: each gets a pong or a rate-limit error, nothing else."""
        started = time.perf_counter()
        try:
            game = self.ensure_connected()
            refs = {game.send(p.Ping()) for _ in range(BURST)}
            while refs:
                reply = game.wait_any(self.timeout, lambda m: m.id in refs)
                if isinstance(reply, p.Error) and reply.code not in RATE_LIMIT_CODES:
                    raise ServerError(reply.code, reply.message)
                refs.discard(reply.id)
        except (ServerError, StepTimeout, OSError, websocket.WebSocketException) as exc:
            self.report(f"burst of {BURST} pings", started, exc, kind="BAD")
            self.disconnect()
            return
        self.report(f"burst of {BURST} pings", started, kind="BAD")

    @task(1)
    def forged_token(self) -> None:
        started = time.perf_counter()
        name = "forged token -> UNAUTHORIZED"
        try:
            GameSocket.connect(self.game_url, self.token[:-4] + "AAAA", self.timeout).close()
        except ServerError as exc:
            if exc.code == "UNAUTHORIZED":
                self.report(name, started, kind="BAD")
                return
            self.report(name, started, exc, kind="BAD")
            return
        except (OSError, websocket.WebSocketException) as exc:
            self.report(name, started, exc, kind="BAD")
            return
        self.report(
            name, started, ServerError("ACCEPTED", "a forged token was accepted"), kind="BAD"
        )
