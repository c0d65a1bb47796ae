"""The age `cardgame db prune` takes, and the months it reasons in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from servers.cli import main
from servers.common.retention import BadAge, month_start, next_month, parse_age


@pytest.mark.parametrize(("text", "days"), [("180d", 180), ("1d", 1), ("26w", 182), (" 30 d ", 30)])
def test_ages(text: str, days: int) -> None:
    assert parse_age(text) == timedelta(days=days)


@pytest.mark.parametrize("text", ["abc", "", "0", "0d", "-5d", "180", "1.5d", "180m", "d"])
def test_bad_ages_are_refused(text: str) -> None:
    with pytest.raises(BadAge):
        parse_age(text)


@pytest.mark.parametrize("age", ["abc", "0", "0d", "-5d"])
def test_the_command_refuses_a_bad_age_with_exit_code_2(
    age: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "prune", f"--older-than={age}"]) == 2
    assert "--older-than" in capsys.readouterr().err


def test_months_are_utc_months() -> None:
    late = datetime(2026, 1, 31, 23, 30, tzinfo=timezone(timedelta(hours=-3)))  # Feb 1 in UTC
    assert month_start(late) == datetime(2026, 2, 1, tzinfo=UTC)
    assert next_month(datetime(2026, 12, 1, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)
