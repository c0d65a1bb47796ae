"""The battle engines a server can run, by version.

A match is recorded with the version of the engine that played it, so that its replay runs the
same rules even after they changed. A change to the rules (anything that can change a timeline
for the same snapshots and seed) gets a new engine version: a new module beside `sim.py`, added
here, made `CURRENT`; the old one stays registered as long as matches played with it are kept
(an engine retired from here leaves its matches' stored timelines as their replay).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from servers.common.errors import ErrorCode, GameError
from servers.common.models import BattleSnapshot
from servers.game.battle import sim

Engine = Callable[[BattleSnapshot, BattleSnapshot, int], sim.BattleOutcome]

ENGINES: Final[Mapping[int, Engine]] = {1: sim.simulate}
# The engine new battles are played with.
CURRENT: Final = 1


def engine(version: int, engines: Mapping[int, Engine] = ENGINES) -> Engine:
    """The engine of `version`; a version this server does not have is refused by name."""
    try:
        return engines[version]
    except KeyError:
        known = ", ".join(str(v) for v in sorted(engines))
        raise GameError(
            ErrorCode.INTERNAL,
            f"battle engine version {version} is not on this server (it has: {known})",
        ) from None
