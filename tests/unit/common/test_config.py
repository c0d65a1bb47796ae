"""Pure logic: configuration, deck rules, FIFO pairing."""

from __future__ import annotations

import pytest

from servers.common.config import load_settings
from servers.common.decks import DECK_SIZE, deck_problems, starter_deck
from servers.match.matchmakers.normal import pair_fifo


def test_settings_load_development_with_env_overrides() -> None:
    settings = load_settings(
        {
            "CARDGAME_MATCH__TICK_INTERVAL": "0.5",
            "CARDGAME_AUTH__DEV_LOGIN": "false",
            "REDIS_URL": "redis://example:1/2",
            "POD_ID": "pod-9",
        }
    )
    assert settings.env == "development"
    assert settings.match.tick_interval == 0.5
    assert settings.auth.dev_login is False
    assert settings.redis.url == "redis://example:1/2"
    assert settings.pod_id == "pod-9"
    assert settings.match.batch_size == 512  # from config/development.toml


def test_production_settings_disable_dev_login() -> None:
    settings = load_settings({"CARDGAME_ENV": "production"})
    assert settings.auth.dev_login is False
    assert settings.auth.jwt_secret == ""


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValueError):
        load_settings({"CARDGAME_AUTH__DEV_LOGIN": "maybe"})


def test_unknown_setting_is_an_error(tmp_path) -> None:
    (tmp_path / "development.toml").write_text("[match]\ntick_intervall = 1\n")
    with pytest.raises(ValueError, match="tick_intervall"):
        load_settings({}, config_dir=tmp_path)


OWNED = {card: 2 for card in range(1, 16)}


@pytest.mark.parametrize(
    ("deck", "problem"),
    [
        ({card: 2 for card in range(1, 11)}, None),
        ({card: 2 for card in range(1, 10)}, "exactly 20"),
        ({1: 3, **{card: 2 for card in range(2, 10)}, 10: 1}, "at most 2"),
        ({99: 2, **{card: 2 for card in range(1, 10)}}, "owns 0"),
        ({1: 0, **{card: 2 for card in range(2, 12)}}, "at least 1"),
    ],
)
def test_deck_rules(deck: dict[int, int], problem: str | None) -> None:
    problems = deck_problems(deck, OWNED)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_starter_deck_is_legal_and_cheapest_first() -> None:
    costs = [5, 1, 2, 3, 4] * 3
    starters = [(card, cost, 2) for card, cost in zip(range(1, 16), costs, strict=True)]
    deck = starter_deck(starters)
    assert sum(deck.values()) == DECK_SIZE
    assert deck_problems(deck, {c: n for c, _, n in starters}) == []
    # Ten cards, cheapest first, ties by id: all cost 1-3 and the first cost-4 card.
    assert deck == {card: 2 for card in (2, 7, 12, 3, 8, 13, 4, 9, 14, 5)}


def test_starter_deck_needs_enough_cards() -> None:
    with pytest.raises(ValueError):
        starter_deck([(1, 1, 2)])


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 10])
def test_pair_fifo(n: int) -> None:
    pairs, leftover = pair_fifo(list(range(n)))
    assert pairs == [(i, i + 1) for i in range(0, n - 1, 2)]
    assert leftover == ([n - 1] if n % 2 else [])


def test_settings_survive_the_trip_to_a_child_process() -> None:
    from servers.common.config import to_env

    settings = load_settings({}).replace(
        match={"tick_interval": 0.05}, auth={"dev_login": False}, pod_id="pod-7"
    )
    assert load_settings(to_env(settings)) == settings
