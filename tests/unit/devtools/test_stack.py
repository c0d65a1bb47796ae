"""`cardgame up`'s pure parts: judging a /health answer, describing an exit."""

from __future__ import annotations

import pytest

from devtools.stack import (
    exit_description,
    judge_health,
)


@pytest.mark.parametrize(
    ("status", "body", "healthy", "foreign", "other"),
    [
        (200, '{"status": "ok", "instance": "abc"}', True, False, ""),
        (503, '{"status": "degraded", "instance": "abc"}', False, False, ""),
        (200, '{"status": "ok", "instance": "xyz"}', False, True, "xyz"),
        (200, '{"status": "ok"}', False, True, ""),  # an older build, or not a cardgame server
        (200, "<html>hello</html>", False, True, ""),
        (404, "", False, True, ""),  # every server of ours has /health
        (500, '{"error": {"code": "INTERNAL"}}', False, False, ""),  # ours failing, perhaps
        (503, '{"status": "degraded", "instance": "xyz"}', False, True, "xyz"),
        (200, '["abc"]', False, True, ""),
    ],
)
def test_judge_health(status: int, body: str, healthy: bool, foreign: bool, other: str) -> None:
    answer = judge_health(status, body, "abc")
    assert (answer.healthy, answer.foreign, answer.other) == (healthy, foreign, other)


def test_exit_description() -> None:
    assert exit_description(1) == "code 1"
    assert exit_description(-9) == "code -9 (killed by SIGKILL)"
    assert exit_description(-15) == "code -15 (killed by SIGTERM)"
