"""Parties for party duels: create, join by invite code, leave; Redis only.

A party lives in Redis under the `{party}` hash tag, next to the party queue, so that leaving
and taking the partner out of the queue is one script. Parties expire (`game.party_ttl`); the
match servers sweep expired ones and tell their members. A party duel starts when both members
`enqueue` with mode `party`: the game server stamps the party code on the ticket and the Party
matchmaker pairs the two tickets carrying the same code.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import msgspec
import redis.asyncio as aioredis

from servers.common import bus
from servers.common import protocol as p
from servers.common.errors import ErrorCode, GameError
from servers.common.keys import GameMode, Keys
from servers.common.lua import Busy, PartyScripts, PlayerScripts

# Invite codes: 6 characters without look-alikes (no 0/O, 1/I/L), ~1e9 codes.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
MAX_PARTY = 2


class PartyRecord(msgspec.Struct, kw_only=True):
    """The party JSON the scripts keep (lua/party_*.lua)."""

    code: str
    owner: str
    members: list[str]
    created_ms: int
    expires_ms: int


_record = msgspec.json.Decoder(PartyRecord)


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(code: str) -> str:
    return code.strip().upper()


def now_ms() -> int:
    return int(time.time() * 1000)


def decode(raw: bytes | str) -> PartyRecord:
    return _record.decode(raw)


def message(record: PartyRecord, event: p.PartyEvent, ref: str | None = None) -> p.Party:
    return p.Party(
        id=ref,
        code=record.code,
        owner_id=record.owner,
        members=record.members,
        expires_at_ms=record.expires_ms,
        event=event,
    )


@dataclass
class Parties:
    redis: aioredis.Redis
    keys: Keys
    ttl_s: float
    players: PlayerScripts  # the pod's, registered once

    def __post_init__(self) -> None:
        self.scripts = PartyScripts(self.redis, self.keys)

    async def current(self, player_id: str) -> PartyRecord | None:
        """The player's live party, or None (an expired one counts as none)."""
        code = await self.redis.hget(self.keys.party_members, player_id)
        if code is None:
            return None
        raw = await self.redis.hget(self.keys.parties, code)
        if raw is None:
            return None
        record = decode(raw)
        return record if record.expires_ms > now_ms() and player_id in record.members else None

    async def create(self, player_id: str) -> PartyRecord:
        now = now_ms()
        for _ in range(5):
            reply = await self.scripts.create(
                new_code(), player_id, now, now + int(self.ttl_s * 1000)
            )
            if reply.status == "ok":
                return decode(reply.party)
            if reply.status == "in_party":
                raise GameError(
                    ErrorCode.ALREADY_IN_PARTY,
                    f"already in party {decode(reply.party).code}; leave it first",
                )
        raise GameError(ErrorCode.INTERNAL, "could not draw a free invite code")

    async def join(self, player_id: str, code: str) -> PartyRecord:
        code = normalise_code(code)
        if len(code) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
            raise GameError(ErrorCode.PARTY_NOT_FOUND, f"{code!r} is not an invite code")
        reply = await self.scripts.join(code, player_id, now_ms())
        if reply.status == "ok":
            record = decode(reply.party)
            await self.notify_others(record, player_id, "member_joined")
            return record
        if reply.status == "in_party":
            raise GameError(
                ErrorCode.ALREADY_IN_PARTY,
                f"already in party {decode(reply.party).code}; leave it first",
            )
        raise GameError(
            {
                "not_found": ErrorCode.PARTY_NOT_FOUND,
                "expired": ErrorCode.PARTY_EXPIRED,
                "full": ErrorCode.PARTY_FULL,
            }[reply.status]
        )

    async def leave(self, player_id: str, *, only_unheld: bool = False) -> str:
        """Leave the party; returns its code. The other member is told, and taken out of the
        party queue if they were waiting for the duel. `only_unheld`: only if nobody holds the
        player (else NOT_IN_PARTY and nothing changes)."""
        record = await self.current(player_id)
        try:
            left = await self.scripts.leave(player_id, only_unheld=only_unheld)
        except Busy:
            raise GameError(ErrorCode.ALREADY_QUEUED, "dequeue from the party duel first") from None
        if not left.left:
            raise GameError(ErrorCode.NOT_IN_PARTY)
        if left.other_dequeued_pod:
            await bus.publish(
                self.redis,
                self.keys.match_result(left.other_dequeued_pod),
                p.MatchResult(
                    player_id=left.other,
                    game_mode=GameMode.PARTY.value,
                    result=p.ResultDequeued(reason="party"),
                ),
            )
        if left.party:
            after = decode(left.party)
            await self.notify_others(after, player_id, "member_left")
            return after.code
        return record.code if record else ""

    async def notify_others(self, record: PartyRecord, actor: str, event: p.PartyEvent) -> None:
        """Push the party's new state to its other members, on whichever pod they are."""
        others = [m for m in record.members if m != actor]
        if not others:
            return
        pods = await self.players.pods(others)
        payload = msgspec.json.encode(record).decode()
        for member, pod in zip(others, pods, strict=True):
            if pod:
                await bus.publish(
                    self.redis,
                    self.keys.pod_control(pod),
                    p.PodCommand(
                        command="party_changed", player_id=member, event=event, party=payload
                    ),
                )

    async def ticket_party(self, player_id: str, mode: GameMode) -> str:
        """The party code to stamp on a ticket of `mode` ("" for none), or the reason the
        player may not queue: a party member queues only for the party duel."""
        record = await self.current(player_id)
        if mode is GameMode.PARTY:
            if record is None:
                raise GameError(
                    ErrorCode.NOT_IN_PARTY, "a party duel needs a party: create or join one"
                )
            if len(record.members) < MAX_PARTY:
                raise GameError(ErrorCode.PARTY_NOT_READY)
            return record.code
        if record is not None:
            raise GameError(ErrorCode.IN_PARTY)
        return ""
