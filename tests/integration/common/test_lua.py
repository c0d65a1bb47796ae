"""The queue and party scripts against a real Redis: atomicity, refusals, leases, poisoned entries,
the exclusive whole-queue pass, parties."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis.asyncio as aioredis

from servers.common.keys import GameMode, Keys
from servers.common.lua import (
    Activity,
    Busy,
    Dequeued,
    Enqueued,
    InParty,
    Maintenance,
    Overdue,
    PairToCommit,
    PartyScripts,
    PlayerScripts,
    QueueScripts,
    StaleEpoch,
    Standing,
)
from tests.support.helpers import eventually
from tests.support.match_servers import fill_ranked, hold, queue_player, ticket

MODE = GameMode.NORMAL
FAR = 10**13  # a lease deadline that never passes during a test


async def queue_of(redis: aioredis.Redis, keys: Keys) -> list[tuple[bytes, float]]:
    return await redis.zrange(keys.queue(MODE), 0, -1, withscores=True)


async def record(redis: aioredis.Redis, keys: Keys, player: str) -> dict[bytes, bytes]:
    return await redis.hgetall(keys.player(player))


async def test_enqueue_refuses_second_enqueue(redis: aioredis.Redis, keys: Keys) -> None:
    scripts = QueueScripts(redis, keys)
    epoch = await hold(redis, keys, "1", "pod-a")
    first = await scripts.enqueue(MODE, "1", 1000, b'{"t":1}', epoch)
    assert first == Enqueued(1, "pod-a")
    with pytest.raises(Busy) as busy:
        await scripts.enqueue(MODE, "1", 2000, b'{"t":2}', epoch)
    assert busy.value.standing == Standing(Activity.QUEUED, MODE.value)
    with pytest.raises(Busy):  # nor in another mode: one activity at a time
        await scripts.enqueue(GameMode.RANKED, "1", 2000, b"{}", epoch)
    # The refused enqueues left the first ticket, pod and score untouched.
    assert await redis.hget(keys.tickets(MODE), "1") == b'{"t":1}'
    assert await redis.hget(keys.ticket_pods(MODE), "1") == b"pod-a"
    assert await queue_of(redis, keys) == [(b"1", 1000)]
    assert await redis.zcard(keys.queue(GameMode.RANKED)) == 0


async def test_enqueue_is_fenced_by_the_connection_epoch(redis: aioredis.Redis, keys: Keys) -> None:
    scripts = QueueScripts(redis, keys)
    with pytest.raises(StaleEpoch):  # nobody holds the player
        await scripts.enqueue(MODE, "1", 1000, b"{}", 1)
    old = await hold(redis, keys, "1", "pod-a")
    new = await hold(redis, keys, "1", "pod-b")  # the player reconnected elsewhere
    with pytest.raises(StaleEpoch):
        await scripts.enqueue(MODE, "1", 1000, b"{}", old)
    assert await redis.zcard(keys.queue(MODE)) == 0
    assert (await scripts.enqueue(MODE, "1", 1000, b"{}", new)).pod_id == "pod-b"


async def test_enqueue_refuses_maintenance_and_live_party_members(
    redis: aioredis.Redis, keys: Keys
) -> None:
    scripts = QueueScripts(redis, keys)
    epoch = await hold(redis, keys, "1", "pod-a")
    await redis.set(keys.maintenance_flag, "manual")
    with pytest.raises(Maintenance):
        await scripts.enqueue(MODE, "1", 1000, b"{}", epoch)
    await redis.delete(keys.maintenance_flag)

    def party(members: list[str], expires_ms: int) -> str:
        return json.dumps(
            {
                "code": "ABC",
                "owner": members[0],
                "members": members,
                "created_ms": 0,
                "expires_ms": expires_ms,
            }
        )

    await redis.hset(keys.party_members, "1", "ABC")
    await redis.hset(keys.parties, "ABC", party(["1", "2"], 5000))
    with pytest.raises(InParty):
        await scripts.enqueue(MODE, "1", 1000, b"{}", epoch)
    assert await redis.zcard(keys.queue(MODE)) == 0
    # A party that expired, or that no longer lists the player, counts as none.
    assert (await scripts.enqueue(MODE, "1", 6000, b"{}", epoch)).queue_size == 1
    await scripts.dequeue(MODE, "1", epoch=epoch)
    await redis.hset(keys.parties, "ABC", party(["2"], 9000))
    assert (await scripts.enqueue(MODE, "1", 6000, b"{}", epoch)).queue_size == 1


async def test_enqueue_refuses_a_player_being_paired(redis: aioredis.Redis, keys: Keys) -> None:
    scripts = QueueScripts(redis, keys)
    for player in ("1", "2"):
        await queue_player(redis, keys, MODE, player, 1000, b"{}")
    await scripts.pop(MODE, 10, FAR)
    with pytest.raises(Busy):
        await scripts.enqueue(MODE, "1", 2000, b"{}", await hold(redis, keys, "1"))
    assert await redis.zcard(keys.queue(MODE)) == 0
    # Nor dequeued: the pairing decides (a match, or back in the queue at the lease's end).
    assert (await scripts.dequeue(MODE, "1"))[0] is Dequeued.PAIRING
    assert (await record(redis, keys, "1"))[b"act"] == b"queued"


async def test_dequeue_is_fenced_by_epoch_and_pod(redis: aioredis.Redis, keys: Keys) -> None:
    scripts = QueueScripts(redis, keys)
    old = await hold(redis, keys, "1", "pod-a")
    await scripts.enqueue(MODE, "1", 1000, b"{}", old)
    new = await hold(redis, keys, "1", "pod-b")  # reconnected: the ticket follows
    assert await redis.hget(keys.ticket_pods(MODE), "1") == b"pod-b"
    assert (await scripts.dequeue(MODE, "1", epoch=old))[0] is Dequeued.STALE
    assert (await scripts.dequeue(MODE, "1", only_pod="pod-a"))[0] is Dequeued.STALE
    assert await redis.zcard(keys.queue(MODE)) == 1
    assert await scripts.dequeue(MODE, "1", epoch=new) == (Dequeued.REMOVED, 0)
    assert (await scripts.dequeue(MODE, "1"))[0] is Dequeued.NOT_QUEUED
    assert await redis.exists(keys.queue(MODE), keys.tickets(MODE), keys.ticket_pods(MODE)) == 0
    assert (await record(redis, keys, "1"))[b"act"] == b"idle"


async def test_detach_dequeues_and_leaves_a_notice_unless_reconnected(
    redis: aioredis.Redis, keys: Keys
) -> None:
    players = PlayerScripts(redis, keys)
    notices = {mode: f"gone-{mode.value}".encode() for mode in GameMode}
    epoch = await hold(redis, keys, "1", "pod-a")
    await QueueScripts(redis, keys).enqueue(MODE, "1", 1000, b"{}", epoch)
    newer = await hold(redis, keys, "1", "pod-b")
    assert await players.detach("1", epoch, notices) is None  # stale: pod-b holds the player
    assert await redis.zcard(keys.queue(MODE)) == 1
    assert await players.detach("1", newer, notices) is MODE
    assert await redis.zcard(keys.queue(MODE)) == 0
    again = await players.attach("1", "pod-c", 0)
    assert again.standing == Standing(Activity.IDLE) and again.notice == b"gone-normal"
    assert again.previous_pod == ""
    assert (await players.attach("1", "pod-c", 0)).notice == b""  # handed over once


async def test_pve_battles_and_deadlines(redis: aioredis.Redis, keys: Keys) -> None:
    players = PlayerScripts(redis, keys)
    epoch = await hold(redis, keys, "1")
    await players.begin_pve("1", epoch, "m1", 5000, "pve")
    with pytest.raises(Busy) as busy:
        await players.begin_pve("1", epoch, "m2", 5000, "pve")
    assert busy.value.standing.activity is Activity.PVE
    with pytest.raises(Busy):
        await QueueScripts(redis, keys).enqueue(MODE, "1", 1000, b"{}", epoch)
    assert await players.overdue(4999) == []
    assert await players.overdue(5001) == [Overdue("1", "m1", "pod-a")]
    assert (await record(redis, keys, "1"))[b"act"] == b"idle"
    assert await players.finish("m1", ["1"]) == ["pod-a"]  # late: changes nothing
    await players.begin_pve("1", epoch, "m3", FAR, "pve")
    assert await players.finish("m2", ["1"]) == ["pod-a"]  # another match: stays busy
    assert (await record(redis, keys, "1"))[b"act"] == b"pve"
    await players.finish("m3", ["1"])
    assert (await record(redis, keys, "1"))[b"act"] == b"idle"
    assert await redis.zcard(keys.deadlines) == 0


@pytest.mark.parametrize(
    ("queued", "limit", "expected"),
    [(0, 10, 0), (1, 10, 0), (2, 10, 2), (5, 10, 4), (9, 4, 4), (9, 5, 4)],
)
async def test_pop_takes_an_even_number_oldest_first(
    redis: aioredis.Redis, keys: Keys, queued: int, limit: int, expected: int
) -> None:
    scripts = QueueScripts(redis, keys)
    for i in range(queued):
        await queue_player(
            redis, keys, MODE, f"p{i}", 1000 - i, f'{{"n":{i}}}'.encode(), f"pod-{i}"
        )
    popped = await scripts.pop(MODE, limit, FAR)
    assert len(popped) == expected
    # Oldest (lowest score) first; each comes with its own ticket and pod.
    assert [e.player_id for e in popped] == [f"p{i}" for i in range(queued - 1, -1, -1)][:expected]
    assert all(e.ticket == f'{{"n":{e.player_id[1:]}}}'.encode() for e in popped)
    assert all(e.pod_id == f"pod-{e.player_id[1:]}" for e in popped)
    assert await redis.zcard(keys.queue(MODE)) == queued - expected
    # Popped players are held under a lease, not gone.
    assert await redis.zcard(keys.inflight(MODE)) == expected


async def test_commit_hands_pairs_to_the_stream_and_requeues_leftovers(
    redis: aioredis.Redis, keys: Keys
) -> None:
    scripts = QueueScripts(redis, keys)
    for i, player in enumerate(["a", "b", "c", "d"]):
        await queue_player(redis, keys, MODE, player, 100 + i, b"{}", "pod-1")
    await scripts.pop(MODE, 4, FAR)
    committed = await scripts.commit(
        MODE,
        [PairToCommit("m1", "a", "b", b'{"match":"m1"}')],
        leftover=["c"],
        dropped=["d"],
        battle_deadline_ms=FAR,
    )
    assert committed == {"m1": ("pod-1", "pod-1")}  # where each player is held now
    entries = await redis.xrange(keys.battles(MODE))
    assert [fields[b"m"] for _, fields in entries] == [b'{"match":"m1"}']
    assert await queue_of(redis, keys) == [(b"c", 102)]  # back with its original time
    assert await redis.zcard(keys.inflight(MODE)) == 0
    assert await redis.hkeys(keys.tickets(MODE)) == [b"c"]
    assert await redis.hkeys(keys.ticket_pods(MODE)) == [b"c"]
    # One step moved the pair into the battle and the dropped player out of the queue.
    assert {(await record(redis, keys, p))[b"act"] for p in "ab"} == {b"battle"}
    assert (await record(redis, keys, "a"))[b"match"] == b"m1"
    assert (await record(redis, keys, "c"))[b"act"] == b"queued"
    assert (await record(redis, keys, "d"))[b"act"] == b"idle"
    assert await redis.zcard(keys.deadlines) == 2


async def test_expired_lease_returns_players_and_blocks_their_commit(
    redis: aioredis.Redis, keys: Keys
) -> None:
    scripts = QueueScripts(redis, keys)
    await queue_player(redis, keys, MODE, "a", 100, b"{}", "pod-1")
    await queue_player(redis, keys, MODE, "b", 101, b"{}", "pod-1")
    await scripts.pop(MODE, 2, lease_deadline_ms=5000)
    # The match server "died"; another one reaps after the deadline...
    assert await scripts.reap(MODE, now_ms=4999) == 0
    assert await scripts.reap(MODE, now_ms=5001) == 2
    assert await queue_of(redis, keys) == [(b"a", 100), (b"b", 101)]
    # ...and the late commit of the dead server's pair does nothing.
    assert await scripts.commit(MODE, [PairToCommit("m", "a", "b", b"{}")], [], [], FAR) == {}
    assert await redis.xlen(keys.battles(MODE)) == 0
    assert await redis.zcard(keys.queue(MODE)) == 2


async def test_concurrent_pops_never_share_a_player(redis: aioredis.Redis, keys: Keys) -> None:
    scripts = QueueScripts(redis, keys)
    total = 2000
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(total):
            pipe.zadd(keys.queue(MODE), {f"p{i}": i})
            pipe.hset(keys.tickets(MODE), f"p{i}", b"{}")
        await pipe.execute()

    async def popper() -> list[str]:
        taken: list[str] = []
        while popped := await scripts.pop(MODE, 64, FAR):
            taken.extend(e.player_id for e in popped)
        return taken

    results = await asyncio.gather(*(popper() for _ in range(6)))
    everyone = [player for taken in results for player in taken]
    assert len(everyone) == total
    assert len(set(everyone)) == total


async def test_an_exclusive_pass_refuses_while_another_server_holds_the_queue(
    redis: aioredis.Redis, keys: Keys
) -> None:
    scripts = QueueScripts(redis, keys)
    await fill_ranked(redis, keys, {"1": 1500, "2": 1510, "3": 1520}, 0)
    deadline = int(time.time() * 1000) + 60_000
    first = await scripts.pop_exclusive(GameMode.RANKED, 100, deadline, 1)
    assert {e.player_id for e in first} == {"1", "2", "3"}
    await fill_ranked(redis, keys, {"4": 1500, "5": 1500}, 0)

    async def pass_key_gone() -> bool:  # it lives 1 ms; the in-flight batch stays
        return not await redis.exists(keys.pairing_pass(GameMode.RANKED))

    await eventually(pass_key_gone, timeout=2, what="the pass key's expiry")
    assert await scripts.pop_exclusive(GameMode.RANKED, 100, deadline, 1) == []
    await scripts.commit(GameMode.RANKED, [], ["1", "2", "3"], [], FAR)
    second = await scripts.pop_exclusive(GameMode.RANKED, 100, deadline, 10_000)
    assert len(second) == 5
    await scripts.commit(GameMode.RANKED, [], [e.player_id for e in second], [], FAR)
    # The pass key: once per interval, whoever asks.
    assert await scripts.pop_exclusive(GameMode.RANKED, 100, deadline, 10_000) == []


async def test_party_scripts(redis: aioredis.Redis, keys: Keys) -> None:
    parties = PartyScripts(redis, keys)
    now = int(time.time() * 1000)
    assert (await parties.create("AAAAAA", "host", now, now + 60_000)).status == "ok"
    assert (await parties.create("BBBBBB", "host", now, now + 60_000)).status == "in_party"
    assert (await parties.create("AAAAAA", "other", now, now + 60_000)).status == "taken"
    assert (await parties.join("ZZZZZZ", "guest", now)).status == "not_found"
    assert (await parties.join("AAAAAA", "guest", now)).status == "ok"
    assert (await parties.join("AAAAAA", "guest", now)).status == "ok"  # again: idempotent
    assert (await parties.join("AAAAAA", "third", now)).status == "full"
    assert not await redis.hexists(keys.party_members, "third")  # nothing half-written
    # The guest waits for the duel; the host leaves: the guest is taken out of the queue.
    await queue_player(
        redis, keys, GameMode.PARTY, "guest", now, ticket("guest", party="AAAAAA"), "pod-g"
    )
    with pytest.raises(Busy):  # the guest waits for the duel: they dequeue first
        await parties.leave("guest")
    left = await parties.leave("host")
    assert left.left and left.other == "guest" and left.other_dequeued_pod == "pod-g"
    assert (await record(redis, keys, "guest"))[b"act"] == b"idle"
    assert await redis.zcard(keys.queue(GameMode.PARTY)) == 0
    assert not (await parties.leave("host")).left
    # Expiry: joining an expired party fails; the sweep removes it and names its members.
    assert (await parties.join("AAAAAA", "late", now + 120_000)).status == "expired"
    gone = await parties.sweep(now + 120_000)
    assert [(g.player_id, g.code) for g in gone] == [("guest", "AAAAAA")]
    assert await redis.hlen(keys.parties) == 0 and await redis.hlen(keys.party_members) == 0
