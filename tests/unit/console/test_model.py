"""The console's pure layer: formatting, rates, histograms, staleness, the tail filter."""

from __future__ import annotations

import pytest

from console import fixture
from console.model import (
    RATING_EDGES,
    CounterRate,
    Dashboard,
    History,
    TailFilter,
    WindowRate,
    bar,
    design_channels,
    fmt_age,
    fmt_rate,
    histogram,
    pod_rows,
    queue_views,
    redis_status,
    role_view,
    sparkline,
    summarize,
    wait_buckets,
)
from servers.common.heartbeat import Heartbeat
from servers.common.keys import Keys

KEYS = Keys("cg")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (-1, "0.0s"),
        (0.42, "0.4s"),
        (12.4, "12s"),
        (185, "3m05s"),
        (7440, "2h04m"),
    ],
)
def test_fmt_age(seconds: float | None, text: str) -> None:
    assert fmt_age(seconds) == text


@pytest.mark.parametrize(
    ("rate", "text"), [(None, "-"), (0.5, "0.50/s"), (12.34, "12.3/s"), (1234.5, "1234/s")]
)
def test_fmt_rate(rate: float | None, text: str) -> None:
    assert fmt_rate(rate) == text


def test_sparkline_scales_to_the_maximum_and_keeps_the_last_values() -> None:
    assert sparkline([0, 1, 2, 4, 8], 5) == "▁▂▃▅█"
    assert sparkline([9, 9, 0, 0], 2) == "▁▁"
    assert sparkline([], 10) == ""
    assert bar(5, 10, 8) == "████" and bar(0, 10, 8) == "" and bar(1, 1000, 8) == "█"


def test_wait_buckets_from_at_least_counts() -> None:
    # 10 queued; 6 waited >= 1 s, 3 >= 5 s, 1 >= 15 s, none longer.
    assert wait_buckets(10, (6, 3, 1, 0, 0)) == (4, 3, 2, 1, 0, 0)
    assert sum(wait_buckets(37, (30, 18, 7, 2, 0))) == 37


def test_histogram_edges_are_lower_bounds() -> None:
    counts = histogram([999, 1000, 1500, 1599.9, 1600, 2500], RATING_EDGES)
    assert counts == (1, 1, 0, 2, 1, 0, 1)


def test_counter_rate_handles_repeats_and_resets() -> None:
    rates = CounterRate()
    assert rates.update("m", 10.0, 100) is None  # first sample: no rate yet
    assert rates.update("m", 12.0, 120) == 10.0
    assert rates.update("m", 12.0, 120) == 10.0  # same heartbeat seen again: same rate
    assert rates.update("m", 13.0, 5) == 5.0  # restarted: the new value is the increase
    rates.forget_except([])
    assert rates.update("m", 14.0, 10) is None


def test_window_rate_forgets_old_events() -> None:
    window = WindowRate(window=10)
    window.add("c", 100.0, 20)
    window.add("c", 105.0, 10)
    assert window.rate("c", 106.0) == 3.0
    assert window.rate("c", 111.0) == 1.0
    assert window.rate("other", 111.0) == 0.0


def test_history_is_bounded() -> None:
    history = History(size=3)
    for n in range(5):
        history.add(n)
    assert list(history.values) == [2, 3, 4]


def _beat(age: float, now: float = 1000.0, **stats: object) -> Heartbeat:
    return Heartbeat(pod_id="p", role="game", pid=1, started_at=0, at=now - age, stats=dict(stats))


def test_role_status_ok_stale_dead_draining() -> None:
    assert role_view(_beat(0.5), 1000.0, 999.5, 1.0).status == "ok"
    assert role_view(_beat(3.5), 1000.0, 996.5, 1.0).status == "stale"
    assert role_view(_beat(0.5, draining=True), 1000.0, 999.5, 1.0).status == "draining"
    dead = role_view(None, 1000.0, 958.0, 1.0)
    assert dead.status == "dead" and dead.age == 42.0


def test_fixture_pods_queues_and_channels() -> None:
    raw = fixture.raw_at(KEYS, 0)
    rows = {row.pod: row for row in pod_rows(raw, 1.0)}
    assert [rows[p].status for p in ("pod-1", "pod-2", "pod-3")] == ["ok", "draining", "dead"]
    assert rows["pod-3"].match.status == "stale"
    [normal] = queue_views(raw)
    assert normal.size == 37 and normal.oldest_wait == pytest.approx(48.2, abs=0.01)
    assert sum(normal.wait_buckets) == 37 and normal.rating_sample == 37
    labels = [spec.label for spec in design_channels(KEYS, ["pod-10", "pod-2"], ["normal"])]
    assert labels[:5] == [
        "match:enqueue:request",
        "match:dequeue:request",
        "battle:request",
        "auth:session_revoked",
        "battles:{normal}",
    ]
    assert labels[5] == "pod:pod-2:match_result"  # natural order: pod-2 before pod-10


def test_dashboard_rates_from_heartbeat_counters_and_streams() -> None:
    board = Dashboard(KEYS, 1.0)
    for i in range(5):
        board.ingest(fixture.raw_at(KEYS, i))
    expected = fixture.matches_formed(4) - fixture.matches_formed(3)
    assert board.matches_rate == pytest.approx(expected)
    assert board.battles_rate == pytest.approx(2 * expected)  # two game servers alive
    assert board.stream_rates[KEYS.enqueue_requests] == pytest.approx(2 * expected)
    assert len(board.matches_history.values) == 5
    rows = {row.spec.label: row for row in board.channels(fixture.NOW)}
    assert rows["pod:pod-3:control"].subscribers == 0
    assert rows["battles:{normal}"].detail == "len 5 pending 4 lag 1"


def test_tail_filter() -> None:
    channel = "cg:pod:pod-1:match_result"
    data = '{"player_id":"42","game_mode":"normal"}'
    assert TailFilter.parse("").matches(channel, data)
    assert TailFilter.parse("pod=pod-1").matches(channel, data)
    assert not TailFilter.parse("pod=pod-2").matches(channel, data)
    assert TailFilter.parse("pod=pod-2").matches("cg:battle:request", '{"pod2":"pod-2"}')
    assert TailFilter.parse("player=42 NORMAL").matches(channel, data)
    assert not TailFilter.parse("player=43").matches(channel, data)
    assert TailFilter.parse("pod=pod-1 player=7 x").describe() == "pod=pod-1 player=7 x"


def test_summarize_puts_the_kind_first_and_leaves_timelines_out() -> None:
    data = '{"match_id":"m","timeline":[{"t":1},{"t":2}],"turns":3,"winner_id":null}'
    assert summarize(data) == "match=m timeline=… turns=3"
    result = '{"player_id":"42","game_mode":"normal","result":{"type":"EnQueued","queue_size":3}}'
    assert summarize(result) == "EnQueued player=42 mode=normal queue_size=3"
    assert summarize('{"command":"drain","player_id":null}') == "drain"
    assert summarize("not json") == "not json"
    assert len(summarize("x" * 500, 50)) == 50


def test_redis_status() -> None:
    assert redis_status(None, "", None, 1.0).state == "connecting"
    assert redis_status(None, "refused", None, 1.0).state == "down"
    assert redis_status(0.2, "", 0.003, 1.0).text == "ok 3ms"
    assert redis_status(4.0, "", 0.003, 1.0).state == "stale"
    assert redis_status(2.0, "timed out", 0.003, 1.0).text == "down 2.0s: timed out"
