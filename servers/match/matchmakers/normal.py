"""Normal matchmaking: first come, first paired. Pure logic, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def pair_fifo(candidates: Sequence[T]) -> tuple[list[tuple[T, T]], list[T]]:
    """Pair candidates in the order given (longest-waiting first); return pairs and leftover.

    The leftover is empty or the single last candidate, who goes back to the queue.
    """
    pairs = [(candidates[i], candidates[i + 1]) for i in range(0, len(candidates) - 1, 2)]
    leftover = list(candidates[len(pairs) * 2 :])
    return pairs, leftover
