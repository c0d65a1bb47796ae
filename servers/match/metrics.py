"""Prometheus metrics of the match server, served at its /metrics.

An instance per match server (the benchmark and the tests make several in one process), handed
to the matchmaking loop; the watchdog reaches it through the loop.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from servers.common import metrics as common


class MatchMetrics:
    def __init__(self) -> None:
        self.registry = common.new_registry()
        r = self.registry
        self.requests = Counter(
            "cardgame_match_requests_total",
            "Queue requests handled, by kind and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.matches = Counter(
            "cardgame_matches_formed_total", "Pairs formed", ["mode"], registry=r
        )
        self.poisoned = Counter(
            "cardgame_queue_poisoned_total",
            "Queue entries dropped because their ticket was unusable",
            ["mode"],
            registry=r,
        )
        self.queue_size = Gauge(
            "cardgame_queue_size", "Players waiting, as last seen", ["mode"], registry=r
        )
        self.tick_seconds = Histogram(
            "cardgame_trymatch_tick_seconds",
            "Duration of one TryMatch tick",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        # --- waiting times, requeues, maintenance, liveness ---
        self.queue_wait = Histogram(
            "cardgame_queue_wait_seconds",
            "Time from enqueue to being matched, per matched player",
            ["mode"],
            buckets=common.WAIT_BUCKETS,
            registry=r,
        )
        self.oldest_wait = Gauge(
            "cardgame_queue_oldest_wait_seconds",
            "How long the longest-waiting queued player has waited (0: empty)",
            ["mode"],
            registry=r,
        )
        self.requeued = Counter(
            "cardgame_queue_requeued_total",
            "Players put back after their match server's lease ran out",
            ["mode"],
            registry=r,
        )
        self.errors = common.errors_counter(r)
        self.pubsub = common.pubsub_counter(r)
        self.maintenance = Gauge(
            "cardgame_maintenance_mode",
            "1 while maintenance mode is on (maintenance:flag set)",
            registry=r,
        )
        self.game_servers = Gauge(
            "cardgame_battle_request_subscribers",
            "Game servers subscribed to battle:request at the last check",
            registry=r,
        )
        # A Redis outage is a readiness matter, never liveness: these make it visible.
        self.redis_up = Gauge(
            "cardgame_match_redis_up",
            "1 when the last use of Redis (watchdog check, /ready, this scrape) succeeded, else 0",
            registry=r,
        )
        self.watchdog_failures = Counter(
            "cardgame_watchdog_check_failures_total",
            "Watchdog checks that failed (Redis unreachable or erroring)",
            registry=r,
        )
        self.players_removed = Counter(
            "cardgame_watchdog_players_removed_total",
            "Queued players removed by the watchdog, by reason",
            ["reason"],
            registry=r,
        )
        self.heartbeat_age = Gauge(
            "cardgame_pod_heartbeat_age_seconds",
            "Age of each listed pod's latest heartbeat, by role (the"
            " pod's last beat of any role when the role's has expired)",
            ["pod", "role"],
            registry=r,
        )
        self.pod_up = Gauge(
            "cardgame_pod_up",
            "1 while the pod's server of this role has a live heartbeat",
            ["pod", "role"],
            registry=r,
        )
        # Ticket lifetime.
        self.expired = Counter(
            "cardgame_tickets_expired_total",
            "Players dequeued because they waited longer than the ticket lifetime",
            ["mode"],
            registry=r,
        )
        self.rating_diff = Histogram(
            "cardgame_ranked_rating_diff",
            "Absolute rating difference of Ranked pairs",
            buckets=(10, 25, 50, 100, 150, 200, 300, 400, 600, 1000),
            registry=r,
        )
        self._pods_seen: set[tuple[str, str]] = set()
        self._last_at: dict[tuple[str, str], float] = {}

    # ------------------------------------------------------------ call-site helpers
    def published(self, namespace: str, channels: Iterable[str]) -> None:
        # Counted per channel first: a tick publishes hundreds of messages on a few channels,
        # and a label lookup costs more than the count.
        for channel, count in collections.Counter(channels).items():
            self.pubsub.labels(common.channel_label(namespace, channel), "out").inc(count)

    def replied(self, namespace: str, channel: str, result: Any) -> None:
        """A MatchResult reply published; an error reply counts by its code too."""
        self.published(namespace, [channel])
        code = getattr(result, "code", None)
        if code is not None:
            self.errors.labels(str(getattr(code, "value", code))).inc()

    def matched(self, mode: str, now_ms: int, enqueued_ms: Iterable[int]) -> None:
        wait = self.queue_wait.labels(mode)  # looked up once per tick, not per player
        for score in enqueued_ms:
            wait.observe(max(0.0, (now_ms - score) / 1000))

    def heartbeats(
        self, beats: Mapping[str, Mapping[str, Any]], now: float, roles: Iterable[str]
    ) -> None:
        """Set each listed pod's heartbeat age and liveness; forget pods no longer listed. An
        expired heartbeat's age keeps growing from the last one this server saw."""
        current: set[tuple[str, str]] = set()
        for pod, by_role in beats.items():
            for role in roles:
                beat = by_role.get(role)
                if beat is not None:
                    self._last_at[(pod, role)] = beat.at
                at = self._last_at.get((pod, role))
                self.heartbeat_age.labels(pod, role).set(max(0.0, now - at) if at else 0.0)
                self.pod_up.labels(pod, role).set(1.0 if beat is not None else 0.0)
                current.add((pod, role))
        for pod, role in self._pods_seen - current:
            self.heartbeat_age.remove(pod, role)
            self.pod_up.remove(pod, role)
            self._last_at.pop((pod, role), None)
        self._pods_seen = current
