"""What the console shows, computed from raw data: pure functions and small state, no I/O.

The sources (`console/sources.py`) read Redis and PostgreSQL into the raw structures below; the
panels render the views computed here. Everything here is testable with plain data and a fixed
clock (`tests/unit/console/test_model.py`), and the screenshot tests feed it static data.
"""

from __future__ import annotations

import json
import math
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from servers.common.heartbeat import Heartbeat
from servers.common.keys import GameMode, Keys

# Waiting-time buckets of the queue panel, in seconds: [0,1) [1,5) [5,15) [15,30) [30,60) [60,inf).
WAIT_EDGES: tuple[float, ...] = (1, 5, 15, 30, 60)
# Rating buckets of the rating histogram (Glicko-2 scale, 1500 = new player).
RATING_EDGES: tuple[float, ...] = (1000, 1200, 1400, 1600, 1800, 2000)
SPARK = "▁▂▃▄▅▆▇█"
HISTORY = 180  # samples kept for the sparklines (3 minutes at one poll a second)


# ------------------------------------------------------------------ raw data (from the sources)
@dataclass(frozen=True)
class QueueRaw:
    """One mode's queue as read in one poll. `waits_at_least[i]` counts players waiting at
    least WAIT_EDGES[i] seconds (ZCOUNT on the score range, so cheap on any queue size)."""

    size: int
    oldest_score_ms: int | None
    waits_at_least: tuple[int, ...]
    inflight: int
    ratings: tuple[float, ...] = ()  # a sample of the queued players' ratings


@dataclass(frozen=True)
class StreamRaw:
    length: int
    entries_added: int | None  # XINFO STREAM entries-added (Redis 7+), None when unknown
    pending: int = 0  # delivered to a consumer, not acknowledged yet
    lag: int | None = None  # entries not delivered to the group yet


@dataclass(frozen=True)
class PlayerLive:
    """Where a player stands in Redis right now."""

    pod: str | None  # the player record's pod: the one holding the session
    match_id: str | None  # player:{id}:match, in a battle until its result is delivered
    queued_mode: str | None = None
    queued_since_ms: int | None = None
    ticket_pod: str | None = None  # ticket-pods: the pod a dequeue must name
    inflight_mode: str | None = None  # popped for pairing right now


@dataclass(frozen=True)
class RawPoll:
    """Everything one Redis poll read."""

    now: float  # Redis' clock (TIME), seconds: every age is measured against it
    pods_listed: Mapping[str, float]  # pod -> last heartbeat of any role (cg:pods), seconds
    heartbeats: Mapping[str, Mapping[str, Heartbeat]]  # pod -> role -> heartbeat
    queues: Mapping[str, QueueRaw]  # mode -> queue
    numsub: Mapping[str, int]  # channel -> subscribers (PUBSUB NUMSUB)
    streams: Mapping[str, StreamRaw]  # stream -> figures
    maintenance: str | None  # None: off; "auto" (the NUMSUB rule) or "manual" (an operator)
    maintenance_ttl: int | None  # seconds left; None when off or without expiry
    duration: float = 0.0  # how long the poll took, seconds
    player: PlayerLive | None = None  # the player the Players panel watches, if any


@dataclass(frozen=True)
class MatchRow:
    match_id: str
    mode: str
    finished_at: float  # epoch seconds
    result: str
    opponent_id: str
    opponent_name: str
    rating_before: float
    rating_after: float


@dataclass(frozen=True)
class PlayerProfile:
    """A player from PostgreSQL: profile, rating and recent matches."""

    player_id: str
    name: str
    created_at: float
    last_login_at: float
    rating: float
    rating_deviation: float
    level: int
    experience: int
    wins: int
    losses: int
    draws: int
    recent: tuple[MatchRow, ...] = ()
    others: tuple[str, ...] = ()  # further players the query matched (name: id)


# ------------------------------------------------------------------ formatting
def fmt_age(seconds: float | None) -> str:
    """A short duration: 0.4s, 12s, 3m05s, 2h04m."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def fmt_rate(per_second: float | None) -> str:
    if per_second is None:
        return "-"
    if per_second >= 100:
        return f"{per_second:.0f}/s"
    if per_second >= 10:
        return f"{per_second:.1f}/s"
    return f"{per_second:.2f}/s"


def sparkline(values: Sequence[float], width: int) -> str:
    """The last `width` values as block characters, scaled to their maximum."""
    values = list(values)[-width:] if width > 0 else []
    top = max(values, default=0.0)
    if top <= 0:
        return SPARK[0] * len(values)
    steps = len(SPARK) - 1
    return "".join(
        SPARK[min(steps, math.ceil(v / top * steps))] if v > 0 else SPARK[0] for v in values
    )


def bar(count: int, most: int, width: int) -> str:
    if most <= 0 or count <= 0:
        return ""
    return "█" * max(1, round(count / most * width))


# ------------------------------------------------------------------ pods
@dataclass(frozen=True)
class RoleView:
    status: str  # "ok", "stale", "dead", "draining"
    age: float | None  # seconds since its last heartbeat; None when never seen
    stats: Mapping[str, Any]


@dataclass(frozen=True)
class PodRow:
    pod: str
    game: RoleView
    match: RoleView

    @property
    def status(self) -> str:
        order = ("dead", "stale", "draining", "ok")
        return min((self.game.status, self.match.status), key=order.index)


def role_view(
    beat: Heartbeat | None, now: float, listed_at: float | None, interval: float
) -> RoleView:
    """A heartbeat older than three intervals is stale (the server or its Redis link is slow);
    a missing one (its TTL expired) means the server is dead."""
    if beat is None:
        return RoleView("dead", None if listed_at is None else now - listed_at, {})
    age = now - beat.at
    if age > 3 * interval:
        status = "stale"
    elif beat.stats.get("draining"):
        status = "draining"
    else:
        status = "ok"
    return RoleView(status, age, beat.stats)


def pod_rows(raw: RawPoll, interval: float) -> list[PodRow]:
    rows = []
    for pod in sorted(set(raw.pods_listed) | set(raw.heartbeats), key=natural_key):
        roles = raw.heartbeats.get(pod, {})
        listed = raw.pods_listed.get(pod)
        rows.append(
            PodRow(
                pod,
                role_view(roles.get("game"), raw.now, listed, interval),
                role_view(roles.get("match"), raw.now, listed, interval),
            )
        )
    return rows


def natural_key(text: str) -> list[Any]:
    """pod-2 before pod-10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


# ------------------------------------------------------------------ rates and history
@dataclass
class CounterRate:
    """Per-second rates of monotonically growing counters (heartbeat stats, stream entries).

    A counter that went down was reset (its server restarted): its new value counts as the
    increase, so a restart never shows as a negative rate."""

    last: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (at, value)
    rates: dict[str, float] = field(default_factory=dict)

    def update(self, name: str, at: float, value: float | None) -> float | None:
        """The rate since the previous sample of `name`; the same sample seen again (a poll
        faster than the heartbeat) keeps the previous rate."""
        if value is None:
            self.last.pop(name, None)
            self.rates.pop(name, None)
            return None
        previous = self.last.get(name)
        if previous is not None and at <= previous[0]:
            return self.rates.get(name)
        self.last[name] = (at, value)
        if previous is None:
            return None
        increase = value - previous[1] if value >= previous[1] else value
        self.rates[name] = increase / (at - previous[0])
        return self.rates[name]

    def forget_except(self, names: Iterable[str]) -> None:
        keep = set(names)
        for name in [n for n in self.last if n not in keep]:
            del self.last[name]
            self.rates.pop(name, None)


@dataclass
class WindowRate:
    """Events per second over a sliding window (the tail's message rate per channel)."""

    window: float = 10.0
    events: dict[str, deque[float]] = field(default_factory=dict)

    def add(self, name: str, at: float, count: int = 1) -> None:
        times = self.events.setdefault(name, deque())
        times.extend([at] * count)

    def rate(self, name: str, now: float) -> float:
        times = self.events.get(name)
        if not times:
            return 0.0
        while times and times[0] < now - self.window:
            times.popleft()
        return len(times) / self.window


@dataclass
class History:
    """Fixed-length series for the sparklines."""

    size: int = HISTORY
    values: deque[float] = field(default_factory=deque)

    def add(self, value: float) -> None:
        self.values.append(value)
        while len(self.values) > self.size:
            self.values.popleft()


# ------------------------------------------------------------------ queues
@dataclass(frozen=True)
class QueueView:
    mode: str
    size: int
    inflight: int
    oldest_wait: float | None  # seconds
    wait_buckets: tuple[int, ...]  # counts per bucket of WAIT_LABELS
    rating_buckets: tuple[int, ...]  # counts per bucket of RATING_LABELS (from a sample)
    rating_sample: int
    ranked: bool


def _labels(edges: Sequence[float], unit: str = "") -> tuple[str, ...]:
    def num(x: float) -> str:
        return f"{x:g}"

    labels = [f"<{num(edges[0])}{unit}"]
    labels += [f"{num(a)}-{num(b)}{unit}" for a, b in zip(edges, edges[1:], strict=False)]
    labels.append(f"{num(edges[-1])}{unit}+")
    return tuple(labels)


WAIT_LABELS = _labels(WAIT_EDGES, "s")
RATING_LABELS = _labels(RATING_EDGES)


def wait_buckets(size: int, waits_at_least: Sequence[int]) -> tuple[int, ...]:
    """Counts per waiting-time bucket from 'at least edge' counts (which only go down)."""
    bounds = [size, *waits_at_least, 0]
    return tuple(max(0, bounds[i] - bounds[i + 1]) for i in range(len(bounds) - 1))


def histogram(values: Iterable[float], edges: Sequence[float]) -> tuple[int, ...]:
    counts = [0] * (len(edges) + 1)
    for value in values:
        i = 0
        while i < len(edges) and value >= edges[i]:
            i += 1
        counts[i] += 1
    return tuple(counts)


def is_ranked(mode: str) -> bool:
    """Modes whose pairing is by rating: their rating histogram is the one to watch."""
    return "ranked" in mode


def queue_views(raw: RawPoll) -> list[QueueView]:
    views = []
    for mode, q in raw.queues.items():
        oldest = None if q.oldest_score_ms is None else raw.now - q.oldest_score_ms / 1000
        views.append(
            QueueView(
                mode,
                q.size,
                q.inflight,
                oldest,
                wait_buckets(q.size, q.waits_at_least),
                histogram(q.ratings, RATING_EDGES),
                len(q.ratings),
                is_ranked(mode),
            )
        )
    return views


# ------------------------------------------------------------------ channels
@dataclass(frozen=True)
class ChannelSpec:
    name: str
    kind: str  # "pubsub" or "stream"
    label: str  # the design's name, e.g. pod:{pod}:match_result
    pod: str | None = None


def design_channels(keys: Keys, pods: Iterable[str], modes: Iterable[str]) -> list[ChannelSpec]:
    """Every channel and request stream of the design, for the pods that exist."""
    specs = [
        ChannelSpec(keys.enqueue_requests, "stream", "match:enqueue:request"),
        ChannelSpec(keys.dequeue_requests, "stream", "match:dequeue:request"),
        ChannelSpec(keys.battle_request, "pubsub", "battle:request"),
        ChannelSpec(keys.session_revoked_channel, "pubsub", "auth:session_revoked"),
    ]
    for mode in modes:
        specs.append(ChannelSpec(keys.battles(GameMode(mode)), "stream", f"battles:{{{mode}}}"))
    for pod in sorted(pods, key=natural_key):
        specs += [
            ChannelSpec(keys.match_result(pod), "pubsub", f"pod:{pod}:match_result", pod),
            ChannelSpec(keys.battle_result(pod), "pubsub", f"pod:{pod}:battle_result", pod),
            ChannelSpec(keys.pod_control(pod), "pubsub", f"pod:{pod}:control", pod),
        ]
    return specs


def short_channel(keys: Keys, channel: str) -> str:
    prefix = f"{keys.namespace}:"
    return channel[len(prefix) :] if channel.startswith(prefix) else channel


# ------------------------------------------------------------------ the live tail
@dataclass(frozen=True)
class TailFilter:
    """`pod=pod-1 player=123 text`: every part must match (pod: the channel or a pod field of
    the message; player: anywhere in the message; text: anywhere in channel or message)."""

    pod: str = ""
    player: str = ""
    text: str = ""

    @classmethod
    def parse(cls, spec: str) -> TailFilter:
        pod = player = ""
        words = []
        for word in spec.split():
            key, sep, value = word.partition("=")
            if sep and key == "pod":
                pod = value
            elif sep and key == "player":
                player = value
            else:
                words.append(word)
        return cls(pod, player, " ".join(words))

    def __bool__(self) -> bool:
        return bool(self.pod or self.player or self.text)

    def matches(self, channel: str, data: str) -> bool:
        if self.pod and f":pod:{self.pod}:" not in channel and f'"{self.pod}"' not in data:
            return False
        if self.player and self.player not in data:
            return False
        return not self.text or self.text.lower() in (channel + " " + data).lower()

    def describe(self) -> str:
        parts = [
            f"pod={self.pod}" if self.pod else "",
            f"player={self.player}" if self.player else "",
            self.text,
        ]
        return " ".join(p for p in parts if p) or "none"


@dataclass(frozen=True)
class TailLine:
    at: float
    channel: str
    data: str


SHORT_KEYS = {
    "player_id": "player",
    "game_mode": "mode",
    "match_id": "match",
    "opponent_id": "opponent",
    "request_id": "req",
}


def summarize(data: str, width: int = 200) -> str:
    """One line of a message for the tail, most telling part first: its kind (a match result's
    type, a command), then its fields; timelines and snapshots left out."""
    try:
        obj = json.loads(data)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        text = data
    else:
        parts = []
        result = obj.pop("result", None)
        if isinstance(result, dict):
            parts.append(str(result.pop("type", "result")))
            obj.update(result)
        if "command" in obj:
            parts.append(str(obj.pop("command")))
        for key, value in obj.items():
            if value is None:
                continue
            if isinstance(value, dict | list):
                value = "…"
            parts.append(f"{SHORT_KEYS.get(key, key)}={value}")
        text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


# ------------------------------------------------------------------ the whole dashboard
@dataclass(frozen=True)
class ChannelRow:
    spec: ChannelSpec
    subscribers: int | None  # Pub/Sub only
    rate: float | None  # messages (Pub/Sub, seen by the tail) or entries (streams) per second
    detail: str = ""


@dataclass
class Dashboard:
    """The state behind every panel: the latest poll plus the rates and histories derived from
    the polls and the tail so far. Pure: fed by the app's message handlers."""

    keys: Keys
    heartbeat_interval: float = 1.0
    raw: RawPoll | None = None
    counters: CounterRate = field(default_factory=CounterRate)
    tail_rates: WindowRate = field(default_factory=WindowRate)
    matches_history: History = field(default_factory=History)
    matches_rate: float | None = None
    battles_rate: float | None = None
    requests_rate: float | None = None
    stream_rates: dict[str, float | None] = field(default_factory=dict)
    tail_seen: int = 0

    def ingest(self, raw: RawPoll) -> None:
        self.raw = raw
        totals: dict[str, float | None] = {}
        names = []
        for pod, roles in raw.heartbeats.items():
            for role, stat in (
                ("match", "matches_formed"),
                ("game", "battles_completed"),
                ("match", "requests"),
            ):
                beat = roles.get(role)
                value = beat.stats.get(stat) if beat is not None else None
                name = f"{pod}/{role}/{stat}"
                names.append(name)
                rate = self.counters.update(
                    name,
                    beat.at if beat else raw.now,
                    float(value) if isinstance(value, int | float) else None,
                )
                if rate is not None:
                    totals[stat] = (totals.get(stat) or 0.0) + rate
        for stream, info in raw.streams.items():
            name = f"stream/{stream}"
            names.append(name)
            self.stream_rates[stream] = self.counters.update(
                name, raw.now, None if info.entries_added is None else float(info.entries_added)
            )
        self.counters.forget_except(names)
        self.matches_rate = totals.get("matches_formed")
        self.battles_rate = totals.get("battles_completed")
        self.requests_rate = totals.get("requests")
        self.matches_history.add(self.matches_rate or 0.0)

    def add_tail(self, lines: Iterable[TailLine]) -> None:
        for line in lines:
            self.tail_rates.add(line.channel, line.at)
            self.tail_seen += 1

    def pods(self) -> list[PodRow]:
        return pod_rows(self.raw, self.heartbeat_interval) if self.raw else []

    def queues(self) -> list[QueueView]:
        return queue_views(self.raw) if self.raw else []

    def channels(self, now: float) -> list[ChannelRow]:
        """`now` on the clock the tail lines were stamped with."""
        raw = self.raw
        if raw is None:
            return []
        pods = set(raw.pods_listed) | set(raw.heartbeats)
        rows = []
        for spec in design_channels(self.keys, pods, list(raw.queues)):
            if spec.kind == "stream":
                info = raw.streams.get(spec.name, StreamRaw(0, None))
                lag = "" if info.lag is None else f" lag {info.lag}"
                rows.append(
                    ChannelRow(
                        spec,
                        None,
                        self.stream_rates.get(spec.name),
                        f"len {info.length} pending {info.pending}{lag}",
                    )
                )
            else:
                rows.append(
                    ChannelRow(
                        spec, raw.numsub.get(spec.name), self.tail_rates.rate(spec.name, now)
                    )
                )
        return rows


@dataclass(frozen=True)
class LinkStatus:
    state: str  # "ok", "stale", "down", "connecting"
    text: str


def redis_status(
    since_ok: float | None, error: str, duration: float | None, interval: float
) -> LinkStatus:
    """How the Redis link looks: `since_ok` is the time since the last good poll (None: never).
    Older than three intervals is stale: the screen shows old numbers and says so."""
    if since_ok is None:
        return LinkStatus(
            "down" if error else "connecting", f"down: {error}" if error else "connecting"
        )
    if error and since_ok > interval:
        return LinkStatus("down", f"down {fmt_age(since_ok)}: {error}")
    if since_ok > 3 * interval:
        return LinkStatus("stale", f"stale {fmt_age(since_ok)}")
    return LinkStatus("ok", f"ok {duration * 1000:.0f}ms" if duration is not None else "ok")
