"""Prometheus metrics of the match server."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class MatchMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("cardgame_match_requests_total",
                                "Queue requests handled, by kind and outcome",
                                ["kind", "outcome"], registry=r)
        self.matches = Counter("cardgame_matches_formed_total", "Pairs formed", ["mode"],
                               registry=r)
        self.poisoned = Counter("cardgame_queue_poisoned_total",
                                "Queue entries dropped because their ticket was unusable",
                                ["mode"], registry=r)
        self.queue_size = Gauge("cardgame_queue_size", "Players waiting, as last seen",
                                ["mode"], registry=r)
        self.tick_seconds = Histogram(
            "cardgame_trymatch_tick_seconds", "Duration of one TryMatch tick",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r)
        # Issue 3.
        self.expired = Counter("cardgame_tickets_expired_total",
                               "Players dequeued because they waited longer than the ticket"
                               " lifetime", ["mode"], registry=r)
        self.rating_diff = Histogram(
            "cardgame_ranked_rating_diff", "Absolute rating difference of Ranked pairs",
            buckets=(10, 25, 50, 100, 150, 200, 300, 400, 600, 1000), registry=r)
        self.wait_seconds = Histogram(
            "cardgame_queue_wait_seconds", "Enqueue to pairing, per mode", ["mode"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300), registry=r)
