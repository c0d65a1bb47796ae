"""Party matchmaking: the two members of one party play each other. Pure logic, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def pair_party(
    candidates: Sequence[T], party_of: Callable[[T], str], player_of: Callable[[T], str]
) -> tuple[list[tuple[T, T]], list[T]]:
    """Pair candidates that carry the same party code (in the order given: longest-waiting
    first); a candidate without a code, alone in its party, or an id seen twice stays unpaired."""
    waiting: dict[str, T] = {}
    pairs: list[tuple[T, T]] = []
    unpaired: list[T] = []
    for candidate in candidates:
        code = party_of(candidate)
        if not code:
            unpaired.append(candidate)
            continue
        first = waiting.pop(code, None)
        if first is None:
            waiting[code] = candidate
        elif player_of(first) == player_of(candidate):
            waiting[code] = first
            unpaired.append(candidate)
        else:
            pairs.append((first, candidate))
    return pairs, list(waiting.values()) + unpaired
