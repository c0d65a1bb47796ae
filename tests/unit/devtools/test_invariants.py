"""The pure parts of the end-of-run invariants: overlapping activities, double queues, ghost and
phantom tickets, registries and resource thresholds."""

from __future__ import annotations

from devtools import invariants as inv
from devtools.race import player_findings


def act(player: str, match: str, start: float, end: float) -> inv.Activity:
    return inv.Activity(player, match, "normal", start, end)


def test_disjoint_and_touching_windows_do_not_overlap() -> None:
    assert inv.overlapping_activities([act("a", "m1", 0, 1), act("a", "m2", 1, 2)]) == []
    assert inv.overlapping_activities([act("a", "m1", 0, 1), act("b", "m2", 0, 1)]) == []


def test_overlapping_windows_of_one_player_are_paired() -> None:
    one, two = act("a", "m1", 0, 10), act("a", "m2", 5, 6)
    assert inv.overlapping_activities([two, one]) == [(one, two)]


def test_a_long_activity_overlaps_every_later_one_inside_it() -> None:
    long, short, inside = act("a", "m1", 0, 10), act("a", "m2", 1, 2), act("a", "m3", 3, 4)
    found = inv.overlapping_activities([inside, short, long])
    assert [(a.match_id, b.match_id) for a, b in found] == [("m1", "m2"), ("m1", "m3")]


def test_a_window_ending_before_it_starts_is_an_instant() -> None:
    skewed, later = act("a", "m1", 5, 4), act("a", "m2", 5.5, 6)
    assert inv.overlapping_activities([skewed, later]) == []


def view(
    queued: dict[str, set[str]] | None = None,
    inflight: dict[str, set[str]] | None = None,
    records: dict[str, dict[str, str]] | None = None,
) -> inv.TicketView:
    return inv.TicketView(queued or {}, inflight or {}, records or {})


def kinds(findings: list[inv.Finding]) -> list[tuple[str, str, str]]:
    return [(f.kind, f.player_id, f.mode) for f in findings]


def test_double_queue_counts_queue_and_inflight_of_two_modes() -> None:
    v = view(queued={"normal": {"p"}, "ranked": set()}, inflight={"ranked": {"p", "q"}})
    assert kinds(inv.double_queued(v)) == [("double_queue", "p", "normal,ranked")]
    # Queued and in flight in the same mode is one ticket (a pop under way), not two.
    same = view(queued={"normal": {"p"}}, inflight={"normal": {"p"}})
    assert inv.double_queued(same) == []


def test_a_ticket_matching_its_record_is_no_ghost() -> None:
    v = view(
        queued={"normal": {"p"}},
        inflight={"ranked": {"q"}},
        records={
            "p": {"act": "queued", "mode": "normal"},
            "q": {"act": "queued", "mode": "ranked"},
        },
    )
    assert inv.ticket_findings(v) == []


def test_ghost_tickets_missing_record_wrong_activity_wrong_mode() -> None:
    v = view(
        queued={"normal": {"missing", "busy", "elsewhere"}},
        inflight={"ranked": {"idle"}},
        records={
            "missing": {},
            "busy": {"act": "battle", "match": "m"},
            "elsewhere": {"act": "queued", "mode": "ranked"},
            "idle": {"pod": ""},  # no act: idle
        },
    )
    found = {f.player_id: f.detail for f in inv.ticket_findings(v) if f.kind == "ghost_tickets"}
    assert found == {
        "missing": "ticket in normal, no player record",
        "busy": "ticket in normal, record act=battle",
        "elsewhere": "ticket in normal, record mode='ranked'",
        "idle": "ticket in ranked, record act=idle",
    }
    # The record says ranked, where "elsewhere" holds no ticket: phantom too.
    phantoms = [f for f in inv.ticket_findings(v) if f.kind == "phantom_queued"]
    assert kinds(phantoms) == [("phantom_queued", "elsewhere", "ranked")]


def test_a_double_queued_player_has_a_ghost_in_the_mode_the_record_does_not_say() -> None:
    v = view(
        queued={"normal": {"p"}, "ranked": {"p"}},
        records={"p": {"act": "queued", "mode": "normal"}},
    )
    assert kinds(inv.ticket_findings(v)) == [("ghost_tickets", "p", "ranked")]


def test_phantom_queued_record_without_ticket() -> None:
    v = view(queued={"normal": set()}, records={"p": {"act": "queued", "mode": "normal"}})
    assert kinds(inv.ticket_findings(v)) == [("phantom_queued", "p", "normal")]


def test_leftovers() -> None:
    v = view(queued={"normal": {"p"}}, records={"q": {"act": "queued", "mode": "party"}})
    assert kinds(inv.leftover_findings(v)) == [("leftover_tickets", "p", "")]


def test_race_ghosts() -> None:
    v = view(queued={"normal": {"p"}}, records={"q": {"act": "queued", "mode": "party"}})
    assert [f.kind for f in player_findings(v, "p")] == ["ghost_tickets"]
    assert [f.detail for f in player_findings(v, "q")] == ["record queued in 'party'"]
    assert player_findings(view(records={"r": {"act": "idle"}}), "r") == []


def test_report_counts_each_violation_once_across_snapshots() -> None:
    report = inv.InvariantReport()
    ghost = inv.Finding("ghost_tickets", "p", "ticket in normal, no player record", "normal")
    report.add([ghost, ghost])
    report.add([inv.Finding("ghost_tickets", "p", "ticket in normal, record act=idle", "normal")])
    assert report.counts["ghost_tickets"] == 1 and report.total == 1
    assert set(report.counts) == set(inv.VIOLATION_NAMES)


def test_registries_must_be_empty_and_answer() -> None:
    health = {
        "ws://a/ws": {"sessions": 0, "connected": 0},
        "ws://b/ws": {"sessions": 1, "connected": 0},
        "ws://c/ws": None,
    }
    found = [str(f) for f in inv.registry_findings(health)]
    assert found == [
        "registry_not_empty: ws://b/ws: sessions=1 connected=0",
        "registry_not_empty: ws://c/ws: /health did not answer",
    ]
    assert inv.health_url("ws://127.0.0.1:8100/ws") == "http://127.0.0.1:8100/health"


def test_resource_thresholds() -> None:
    mib = 1024 * 1024
    base = {"game-1": inv.Usage("game-1", 1, 40, 80 * mib)}
    fine = {"game-1": inv.Usage("game-1", 1, 40 + inv.FD_MARGIN, 180 * mib)}
    assert inv.resource_findings(base, fine) == []
    leaky = {"game-1": inv.Usage("game-1", 2, 41 + inv.FD_MARGIN, 181 * mib)}
    found = [f.detail for f in inv.resource_findings(base, leaky)]
    assert found == [
        "game-1 (restarted): fds 40 -> 61",
        "game-1 (restarted): RSS 80 MiB -> 181 MiB",
    ]
    assert [f.detail for f in inv.resource_findings(base, {})] == ["game-1: not running at the end"]
    # Above 100 MiB of baseline the factor 2 is the larger bound.
    assert inv.rss_limit(300 * mib) == 600 * mib
