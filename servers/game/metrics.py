"""Prometheus metrics of the game server, served at its /metrics.

Module-level, like prometheus_client's own default registry, so that a call site instruments
itself in one line (`metrics.BATTLES.labels(mode, "recorded").inc()`) without the metrics being
threaded through every constructor. One game server runs per process in production; several
apps in one test process share these counters (tests compare before and after).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from servers.common import metrics as common

REGISTRY = common.new_registry()

# --- connections and messages ---
CONNECTIONS = Gauge("cardgame_ws_connections", "WebSocket connections open now", registry=REGISTRY)
CONNECTS = Counter(
    "cardgame_ws_connects_total",
    "WebSocket connection attempts, by outcome (accepted or the refusal code)",
    ["outcome"],
    registry=REGISTRY,
)
DROPPED = Counter(
    "cardgame_ws_dropped_total",
    "WebSocket connections the server closed on its own, by reason (a message flood, a client"
    " that stopped reading)",
    ["reason"],
    registry=REGISTRY,
)
SESSIONS = Gauge(
    "cardgame_sessions",
    "Player sessions held (connected or in their grace period)",
    registry=REGISTRY,
)
MESSAGES = Counter(
    "cardgame_ws_messages_total",
    "Client protocol messages received (in) and sent (out), by type",
    ["direction", "type"],
    registry=REGISTRY,
)
QUEUE_REQUESTS = Counter(
    "cardgame_queue_requests_total",
    "Enqueues and dequeues run by this game server for its players, by kind and result",
    ["kind", "outcome"],
    registry=REGISTRY,
)
ERRORS = common.errors_counter(REGISTRY)
RATE_LIMITED = common.rate_limited_counter(REGISTRY)
PUBSUB = common.pubsub_counter(REGISTRY)

# --- battles and persistence ---
BATTLES = Counter(
    "cardgame_battles_total",
    "Battles run, by mode and outcome (recorded, rerun: recorded before, retry:"
    " the database was unreachable, failed: ended without a result, ended: not run because"
    " its players' records had moved on)",
    ["mode", "outcome"],
    registry=REGISTRY,
)
BATTLE_SECONDS = Histogram(
    "cardgame_battle_duration_seconds",
    "Battle run: simulation, recording and publishing the results",
    ["mode"],
    buckets=common.FAST_BUCKETS,
    registry=REGISTRY,
)
BATTLES_RUNNING = Gauge("cardgame_battles_running", "Battles being run now", registry=REGISTRY)
PERSIST_SECONDS = Histogram(
    "cardgame_persistence_seconds",
    "PostgreSQL writes of finished matches, by operation",
    ["operation"],
    buckets=common.FAST_BUCKETS,
    registry=REGISTRY,
)
PERSIST_FAILURES = Counter(
    "cardgame_persistence_failures_total",
    "PostgreSQL writes that failed, by operation",
    ["operation"],
    registry=REGISTRY,
)
DRAINING = Gauge("cardgame_draining", "1 while the server drains (SIGTERM)", registry=REGISTRY)


def message_in(message: Any) -> None:
    MESSAGES.labels("in", common.message_type(message)).inc()


def message_out(message: Any) -> None:
    """A protocol message queued for a socket; errors are counted by code as well."""
    kind = common.message_type(message)
    MESSAGES.labels("out", kind).inc()
    if kind == "error":
        ERRORS.labels(str(getattr(message.code, "value", message.code))).inc()


def refused(code: Any) -> None:
    """A connection refused before it became a session (the code is sent, then close)."""
    value = str(getattr(code, "value", code))
    CONNECTS.labels(value).inc()
    ERRORS.labels(value).inc()


def published(namespace: str, channel: str, count: int = 1) -> None:
    PUBSUB.labels(common.channel_label(namespace, channel), "out").inc(count)


def received(namespace: str, channel: str) -> None:
    PUBSUB.labels(common.channel_label(namespace, channel), "in").inc()


def counting(
    namespace: str, handler: Callable[[str, bytes], Awaitable[None]]
) -> Callable[[str, bytes], Awaitable[None]]:
    """A Pub/Sub handler that counts what it receives."""

    async def counted(channel: str, data: bytes) -> None:
        received(namespace, channel)
        await handler(channel, data)

    return counted


def scrape(stats: dict[str, Any]) -> tuple[bytes, str]:
    """Refresh the gauges read from the server's state, then render the exposition."""
    SESSIONS.set(float(stats.get("sessions", 0)))
    BATTLES_RUNNING.set(float(stats.get("battles_running", 0)))
    DRAINING.set(1.0 if stats.get("draining") else 0.0)
    return common.exposition(REGISTRY)
