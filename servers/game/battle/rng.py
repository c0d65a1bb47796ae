"""A tiny deterministic PRNG that any client can reimplement bit for bit.

Algorithm: SplitMix64 (Steele, Lea, Flood 2014; the reference is Vigna's ``splitmix64.c``).
All arithmetic is on unsigned 64-bit integers with wrap-around (``ulong`` in C#)::

    state = seed mod 2**64                      # C#: (ulong)seed, two's complement for negatives

    next_u64():
        state = state + 0x9E3779B97F4A7C15      # wraps mod 2**64
        z = state
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB
        return z ^ (z >> 31)

    below(n):                                   # 1 <= n <= 2**64 - 1; uniform in [0, n)
        threshold = (2**64 - n) % n             # C#: (0UL - n) % n
        loop:
            r = next_u64()
            if r >= threshold: return r % n     # rejection sampling: no modulo bias

    shuffle(a):                                 # Fisher-Yates (Durstenfeld), in place
        for i = len(a) - 1 down to 1:
            j = below(i + 1)
            swap a[i], a[j]

For seed 0 the first outputs are 0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F.
Never use Python's ``random`` for game logic: its Mersenne Twister seeding is not portable.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Rng", "MASK64"]

MASK64 = 0xFFFF_FFFF_FFFF_FFFF
_GAMMA = 0x9E37_79B9_7F4A_7C15
_MUL1 = 0xBF58_476D_1CE4_E5B9
_MUL2 = 0x94D0_49BB_1331_11EB


class Rng:
    """SplitMix64 stream; see the module docstring for the exact specification."""

    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, not {type(seed).__name__}")
        self._state = seed & MASK64

    @property
    def state(self) -> int:
        """The current internal 64-bit state (for debugging and cross-checking clients)."""
        return self._state

    def next_u64(self) -> int:
        """The next unsigned 64-bit output."""
        self._state = s = (self._state + _GAMMA) & MASK64
        z = ((s ^ (s >> 30)) * _MUL1) & MASK64
        z = ((z ^ (z >> 27)) * _MUL2) & MASK64
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """A uniform int in ``[0, n)`` by rejection sampling (no modulo bias)."""
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MASK64:
            raise ValueError(f"below() needs an int in [1, 2**64 - 1], got {n!r}")
        threshold = (MASK64 + 1 - n) % n
        while True:
            r = self.next_u64()
            if r >= threshold:
                return r % n

    def shuffle(self, items: list[Any]) -> None:
        """Shuffle ``items`` in place (Fisher-Yates from the last index down, using below)."""
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]
