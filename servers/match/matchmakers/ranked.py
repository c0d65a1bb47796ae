"""Ranked matchmaking: pair by rating with a window that widens with waiting time. Pure logic.

Rules:
* a player's window is `start + growth * seconds waited`, capped at `maximum`;
* two players may meet when their rating difference fits BOTH windows (each accepts the other);
* the longest-waiting player chooses first and takes the closest acceptable opponent (ties: the
  longer-waiting opponent, then the lower id); then the next longest-waiting unpaired player;
* a player is never paired with themselves (an id seen twice keeps only its first entry);
* whoever finds nobody stays unpaired (back to the queue with their original enqueue time).

Complexity: sorting by rating, then for each player a walk outwards over unpaired neighbours
(a linked list over the rating order) that stops at the edge of the player's window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Window:
    start: float = 100.0  # rating points accepted right away
    growth: float = 10.0  # more points per second waited
    maximum: float = 600.0  # never wider than this

    def width(self, waited_s: float) -> float:
        return min(self.maximum, self.start + self.growth * max(0.0, waited_s))


@dataclass(frozen=True)
class Entry(Generic[T]):
    """What the pairing needs of a queued player; `item` is handed back in the result."""

    player_id: str
    rating: float
    enqueued_ms: int
    item: T


def pair_by_rating(
    entries: Sequence[Entry[T]], now_ms: int, window: Window
) -> tuple[list[tuple[T, T]], list[T]]:
    """Pairs (longest-waiting player first in each pair) and the unpaired, in wait order."""
    seen: set[str] = set()
    unique: list[Entry[T]] = []
    duplicates: list[T] = []
    for entry in entries:
        if entry.player_id in seen:
            duplicates.append(entry.item)
            continue
        seen.add(entry.player_id)
        unique.append(entry)
    n = len(unique)
    by_rating = sorted(
        range(n), key=lambda i: (unique[i].rating, unique[i].enqueued_ms, unique[i].player_id)
    )
    position = [0] * n
    for pos, i in enumerate(by_rating):
        position[i] = pos
    # Doubly linked list over the rating order, of players still unpaired.
    left = [pos - 1 for pos in range(n)]
    right = [pos + 1 for pos in range(n)]

    def unlink(pos: int) -> None:
        lo, hi = left[pos], right[pos]
        if lo >= 0:
            right[lo] = hi
        if hi < n:
            left[hi] = lo

    widths = [window.width((now_ms - e.enqueued_ms) / 1000) for e in unique]
    order = sorted(range(n), key=lambda i: (unique[i].enqueued_ms, unique[i].player_id))
    paired = [False] * n
    pairs: list[tuple[T, T]] = []
    for i in order:
        if paired[i]:
            continue
        me = unique[i]
        mine = widths[i]
        best: int | None = None
        best_key: tuple[float, int, str] | None = None
        pos = position[i]
        for step in (left, right):
            other = step[pos]
            while 0 <= other < n:
                j = by_rating[other]
                diff = abs(unique[j].rating - me.rating)
                if diff > mine:
                    break  # everyone further out is further away
                if diff <= widths[j]:
                    key = (diff, unique[j].enqueued_ms, unique[j].player_id)
                    if best_key is None or key < best_key:
                        best, best_key = j, key
                    break  # the nearest acceptable one on this side
                other = step[other]
        if best is None:
            continue
        paired[i] = paired[best] = True
        unlink(position[i])
        unlink(position[best])
        pairs.append((me.item, unique[best].item))
    unpaired = [unique[i].item for i in order if not paired[i]]
    return pairs, unpaired + duplicates


def best_possible_mean_diff(ratings: Sequence[float]) -> float:
    """Mean absolute rating difference of the best pairing of these players (an even number):
    on a line, pairing neighbours in sorted order minimises the total difference."""
    ordered = sorted(ratings)
    if len(ordered) < 2:
        return 0.0
    diffs = [ordered[k + 1] - ordered[k] for k in range(0, len(ordered) - 1, 2)]
    return sum(diffs) / len(diffs)
