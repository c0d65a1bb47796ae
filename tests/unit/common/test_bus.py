"""Which errors the Redis loops treat as a lost Redis (reconnect) rather than a bug (raise)."""

from __future__ import annotations

import pytest
from redis.asyncio import Connection
from redis.exceptions import ClusterDownError, ResponseError, SlotNotCoveredError

from servers.common.bus import redis_lost


async def test_a_command_on_a_connection_closed_under_it_counts_as_lost() -> None:
    """redis-py closes every connection of a cluster client on CLUSTERDOWN; a command that
    was using one then fails inside redis-py on the emptied writer."""
    connection = Connection(host="127.0.0.1", port=1)  # never connected: no writer
    with pytest.raises(AttributeError) as raised:
        await connection._send_packed_command([b"PING"])
    assert redis_lost(raised.value)


def test_the_same_error_from_our_own_code_is_a_bug() -> None:
    writer = None
    with pytest.raises(AttributeError) as raised:
        writer.writelines([])  # type: ignore[attr-defined]
    assert not redis_lost(raised.value)
    assert not redis_lost(AttributeError("'NoneType' object has no attribute 'writelines'"))


def test_cluster_down_and_uncovered_slots_are_transient_but_other_replies_are_not() -> None:
    assert redis_lost(ClusterDownError("CLUSTERDOWN The cluster is down"))
    assert redis_lost(SlotNotCoveredError("slot 42 is not covered"))
    assert redis_lost(
        RuntimeError("unable to perform operation on <TCPTransport>; the handler is closed")
    )
    assert not redis_lost(ResponseError("WRONGTYPE Operation against a key"))
    assert not redis_lost(RuntimeError("something else"))
