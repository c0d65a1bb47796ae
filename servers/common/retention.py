"""Retention of match records: monthly partitions made ahead of time, old ones dropped whole.

`match_history` and `match_participants` are partitioned by UTC month on `formed_at` (migration
0006): the partitions of month YYYY-MM are `match_history_pYYYYMM` and `match_participants_pYYYYMM`,
made by the SQL function `match_partitions_create`. The game servers call `ensure_partitions` at
start-up and every few hours, and `prune` calls it too, so the current and the next month's
partitions always exist (a row of a month without one lands in the DEFAULT partitions, which the
function empties into the month's partitions when it makes them).

`prune` drops only those month partitions; ratings, profiles, players, decks, collections and
everything else stay.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from servers.common import db

log = logging.getLogger("cardgame.retention")
# Serialises partition maintenance (servers at start-up, the periodic step, prune).
_PARTITION_LOCK = 0x70617274  # "part"
_AGE = re.compile(r"^\s*(-?\d+)\s*([dw])\s*$")
_UNIT_DAYS = {"d": 1, "w": 7}
_MONTH_PART = re.compile(r"^match_history_p(\d{4})(\d{2})$")
# Waiting longer than this for a lock on the tables would hold up every recording behind it.
LOCK_TIMEOUT = "5s"


class BadAge(ValueError):
    """An --older-than value that is not a positive number of days or weeks."""


def parse_age(text: str) -> timedelta:
    """`180d` or `26w` -> that many days; refuses anything else, zero and negatives."""
    match = _AGE.match(text)
    if not match:
        raise BadAge(f"not an age: {text!r} (say e.g. 180d for days or 26w for weeks)")
    count = int(match.group(1))
    if count <= 0:
        raise BadAge(f"the age must be positive: {text!r}")
    return timedelta(days=count * _UNIT_DAYS[match.group(2)])


def month_start(moment: datetime) -> datetime:
    """The first instant (UTC) of the month containing `moment`."""
    utc = moment.astimezone(UTC)
    return utc.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: datetime) -> datetime:
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


@dataclass(frozen=True)
class Partition:
    """One month of match records: both tables' partitions and their row counts."""

    month: datetime  # first instant, UTC
    history: str
    participants: str
    history_rows: int = 0
    participant_rows: int = 0

    @property
    def label(self) -> str:
        return self.month.strftime("%Y-%m")

    @property
    def end(self) -> datetime:
        return next_month(self.month)


async def _ensure(conn: db.Connection, now: datetime) -> list[str]:
    """Inside the caller's transaction, holding the partition lock."""
    made = []
    this = month_start(now)
    for month in (this, next_month(this)):
        if await conn.fetchval("SELECT match_partitions_create($1)", month):
            made.append(month.strftime("%Y-%m"))
    return made


async def ensure_partitions(pool: asyncpg.Pool, now: datetime | None = None) -> list[str]:
    """Make this month's and the next month's partitions unless they exist; returns the months
    made ("YYYY-MM")."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _PARTITION_LOCK)
        return await _ensure(conn, now or datetime.now(UTC))


async def month_partitions(conn: db.Connection) -> list[Partition]:
    """The month partitions of match_history (not DEFAULT), oldest first, with row counts."""
    names = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'match_history'::regclass"
    )
    found = []
    for row in names:
        match = _MONTH_PART.match(row["relname"])
        if not match:
            continue
        month = datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=UTC)
        history = row["relname"]
        participants = "match_participants_p" + history.removeprefix("match_history_p")
        has_participants = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", participants)
        found.append(
            Partition(
                month,
                history,
                participants if has_participants else "",
                await conn.fetchval(f'SELECT count(*) FROM "{history}"'),
                await conn.fetchval(f'SELECT count(*) FROM "{participants}"')
                if has_participants
                else 0,
            )
        )
    return sorted(found, key=lambda part: part.month)


@dataclass(frozen=True)
class PruneReport:
    cutoff: datetime
    dropped: list[Partition]  # or, for a dry run, those that would be
    kept: list[Partition]
    made: list[str]  # months whose partitions were made ahead
    dry_run: bool


async def prune(
    pool: asyncpg.Pool, older_than: timedelta, *, dry_run: bool = False, now: datetime | None = None
) -> PruneReport:
    """Drop the month partitions wholly older than now - older_than (their month ended at or
    before the cutoff), in one transaction; make this and next month's partitions first."""
    now = now or datetime.now(UTC)
    cutoff = now - older_than
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _PARTITION_LOCK)
        made = [] if dry_run else await _ensure(conn, now)
        parts = await month_partitions(conn)
        old = [part for part in parts if part.end <= cutoff]
        if not dry_run:
            for part in old:
                # Participants first: they reference their matches, so the history partition
                # can only go once nothing refers to it (detached, then dropped).
                if part.participants:
                    await conn.execute(f'DROP TABLE "{part.participants}"')
                await conn.execute(f'ALTER TABLE match_history DETACH PARTITION "{part.history}"')
                await conn.execute(f'DROP TABLE "{part.history}"')
    return PruneReport(cutoff, old, [part for part in parts if part not in old], made, dry_run)


def describe(report: PruneReport) -> list[str]:
    """What `cardgame db prune` prints."""
    verb = "would drop" if report.dry_run else "dropped"
    lines = [f"cutoff {report.cutoff.isoformat(timespec='seconds')}: partitions of months ending"]
    lines[0] += " at or before it go"
    lines += [f"made partitions for {month}" for month in report.made]
    for part in report.dropped:
        lines.append(
            f"{verb} {part.label}: {part.history} ({part.history_rows} matches),"
            f" {part.participants or '(no participants partition)'}"
            f" ({part.participant_rows} participants)"
        )
    if not report.dropped:
        lines.append("nothing to drop")
    lines.append(
        f"{verb} {len(report.dropped)} months,"
        f" {sum(p.history_rows for p in report.dropped)} matches,"
        f" {sum(p.participant_rows for p in report.dropped)} participants;"
        f" kept {len(report.kept)} months"
        + (f" ({report.kept[0].label} .. {report.kept[-1].label})" if report.kept else "")
    )
    return lines


# How often a game server makes sure the coming month's partitions exist (any server may; the
# lock makes the others wait, then find them made).
UPKEEP_INTERVAL = 6 * 3600.0


async def run_partition_upkeep(pool: asyncpg.Pool, interval: float = UPKEEP_INTERVAL) -> None:
    """`ensure_partitions` now and every `interval` seconds, until cancelled; a failure is
    logged and tried again next time (the DEFAULT partitions take the rows meanwhile)."""
    while True:
        try:
            made = await ensure_partitions(pool)
            if made:
                log.info("made match partitions for %s", ", ".join(made))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            log.exception("could not make the match partitions ahead; trying again later")
        await asyncio.sleep(interval)
