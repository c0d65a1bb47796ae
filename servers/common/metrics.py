"""What every server's metrics module shares: a registry with the process collectors, the
exposition response, bounded label values and the metric families every server has.

Each server has its own module (`servers/<server>/metrics.py`) holding its metrics, so that
instrumenting a call site is one line. Names follow Prometheus' conventions: a `cardgame_`
prefix, base units (`_seconds`, `_bytes`), `_total` for counters. Label values are bounded:
channels are named by kind (`pod:*:match_result`, never a pod id), messages by protocol type,
errors by code.
"""

from __future__ import annotations

from typing import Any

import msgspec
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    disable_created_metrics,
    generate_latest,
)

# No `*_created` series: a timestamp sample per labelled counter doubles the exposition and no
# dashboard or rule here reads it (Prometheus itself handles counter resets).
disable_created_metrics()

# Latencies of one Redis or PostgreSQL round trip up to a slow battle.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# How long players wait in a queue.
WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def new_registry() -> CollectorRegistry:
    """A registry of its own (several servers can live in one test process) with the standard
    process, platform and garbage-collector metrics."""
    registry = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The body and content type of a /metrics response."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def channel_label(namespace: str, channel: str) -> str:
    """A channel's kind: the namespace dropped and a pod id replaced by `*`."""
    name = channel.removeprefix(f"{namespace}:")
    parts = name.split(":")
    if len(parts) >= 3 and parts[0] == "pod":
        return ":".join(["pod", "*", *parts[2:]])
    return name


def message_type(message: Any) -> str:
    """A protocol message's `type` tag (its class name when it has none)."""
    if isinstance(message, msgspec.Struct):
        tag = type(message).__struct_config__.tag
        if isinstance(tag, str):
            return tag
    return type(message).__name__


def errors_counter(registry: CollectorRegistry) -> Counter:
    """`cardgame_errors_total{code}`: errors answered, by code from servers.common.errors (one
    family on every server; the `job` label tells the servers apart)."""
    return Counter(
        "cardgame_errors_total", "Errors answered, by error code", ["code"], registry=registry
    )


def pubsub_counter(registry: CollectorRegistry) -> Counter:
    """`cardgame_pubsub_messages_total{channel, direction}`: Pub/Sub messages published (out)
    and received (in) by this process, by channel kind."""
    return Counter(
        "cardgame_pubsub_messages_total",
        "Pub/Sub messages published (out) or received (in), by channel kind",
        ["channel", "direction"],
        registry=registry,
    )


def rate_limited_counter(registry: CollectorRegistry) -> Counter:
    """`cardgame_rate_limited_total{scope}`: requests refused by a rate limit."""
    return Counter(
        "cardgame_rate_limited_total",
        "Requests refused by a rate limit, by scope",
        ["scope"],
        registry=registry,
    )
