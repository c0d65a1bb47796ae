"""The battle PRNG: known values, bounds, uniformity, shuffles."""

from __future__ import annotations

import pytest

from servers.game.battle.rng import MASK64, Rng

RNG_KNOWN = {
    0: [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F, 0xF88BB8A8724C81EC],
    42: [0xBDD732262FEB6E95, 0x28EFE333B266F103, 0x47526757130F9F52, 0x581CE1FF0E4AE394],
}


@pytest.mark.parametrize("seed", sorted(RNG_KNOWN))
def test_rng_known_values(seed: int) -> None:
    rng = Rng(seed)
    assert [rng.next_u64() for _ in range(4)] == RNG_KNOWN[seed]


def test_rng_seed_is_taken_mod_2_64() -> None:
    assert Rng(-1).next_u64() == Rng(MASK64).next_u64()
    assert Rng(2**64 + 42).next_u64() == RNG_KNOWN[42][0]
    with pytest.raises(TypeError):
        Rng(1.0)  # type: ignore[arg-type]


def test_rng_below_and_shuffle_known_values() -> None:
    rng = Rng(42)
    assert [rng.below(6) for _ in range(10)] == BELOW_42
    items = list(range(10))
    Rng(42).shuffle(items)
    assert items == SHUFFLE_42


@pytest.mark.parametrize("n", [1, 2, 3, 6, 10, 2**32 + 1, 2**63 + 1, MASK64])
def test_rng_below_range(n: int) -> None:
    rng = Rng(n)
    values = [rng.below(n) for _ in range(200)]
    assert all(0 <= v < n for v in values)
    if n == 1:
        assert set(values) == {0}


def test_rng_below_is_roughly_uniform() -> None:
    rng = Rng(7)
    counts = [0] * 6
    for _ in range(6000):
        counts[rng.below(6)] += 1
    assert all(850 < c < 1150 for c in counts)


@pytest.mark.parametrize("n", [0, -1, 2**64])
def test_rng_below_rejects_bad_bounds(n: int) -> None:
    with pytest.raises(ValueError):
        Rng(0).below(n)


@pytest.mark.parametrize("size", [0, 1, 2, 20, 100])
def test_rng_shuffle_is_a_permutation(size: int) -> None:
    items = list(range(size))
    Rng(size).shuffle(items)
    assert sorted(items) == list(range(size))


BELOW_42 = [1, 1, 0, 0, 4, 0, 1, 2, 1, 2]


SHUFFLE_42 = [0, 9, 5, 8, 6, 4, 7, 2, 1, 3]
