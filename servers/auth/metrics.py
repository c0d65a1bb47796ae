"""Prometheus metrics of the auth server, served at its /metrics.

Module-level (see servers/game/metrics.py for why): a call site instruments itself in one line.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from servers.common import metrics as common

REGISTRY = common.new_registry()

REQUESTS = Counter(
    "cardgame_http_requests_total",
    "HTTP requests answered, by route, method and status code",
    ["route", "method", "status"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "cardgame_http_request_duration_seconds",
    "HTTP request handling time, by route",
    ["route"],
    buckets=common.FAST_BUCKETS,
    registry=REGISTRY,
)
ERRORS = common.errors_counter(REGISTRY)
RATE_LIMITED = common.rate_limited_counter(REGISTRY)
PUBSUB = common.pubsub_counter(REGISTRY)


def answered(route: str | None, method: str, status: int, seconds: float) -> None:
    """One request answered; `route` is the matched rule (never the raw path: bounded)."""
    name = route or "unmatched"
    REQUESTS.labels(name, method, str(status)).inc()
    REQUEST_SECONDS.labels(name).observe(seconds)


def scrape() -> tuple[bytes, str]:
    return common.exposition(REGISTRY)
