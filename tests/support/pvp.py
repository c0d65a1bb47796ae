"""The two-pod PvP scenario that several tests play: one player on each of two pods, both queue
for Normal, are matched with each other and get the battle's result."""

from __future__ import annotations

from dataclasses import dataclass

from devtools.stack import Stack
from fake_client.client import GameClient
from servers.common import protocol as p
from tests.support.helpers import connect


@dataclass(frozen=True)
class PvpMatch:
    """What each side saw, in seat order: the player on the first pod, then the second."""

    welcomes: tuple[p.Welcome, p.Welcome]
    found: tuple[p.MatchFound, p.MatchFound]
    results: tuple[p.BattleResultMessage, p.BattleResultMessage]

    @property
    def match_id(self) -> str:
        return self.found[0].match_id

    @property
    def player_ids(self) -> tuple[str, str]:
        return self.welcomes[0].player_id, self.welcomes[1].player_id


async def play_across_pods(
    stack: Stack, pods: tuple[int, int] = (0, 1), timeout: float = 10
) -> PvpMatch:
    """Log in two new players, connect one to each pod (which must be different pods), queue both
    for Normal and wait for each one's MatchFound and then battle result (`timeout` seconds each).
    Checks that both were matched into the same match; the sockets are closed however it ends."""
    clients: list[GameClient] = []
    try:
        for pod in pods:
            clients.append(await connect(stack, pod=pod))
        one, two = clients
        assert one.welcome.pod_id != two.welcome.pod_id, "both players landed on the same pod"
        for client in clients:
            await client.request(p.Enqueue(), timeout=timeout)
        found = (
            await one.next_push(p.MatchFound, timeout),
            await two.next_push(p.MatchFound, timeout),
        )
        assert found[0].match_id == found[1].match_id
        results = (
            await one.next_push(p.BattleResultMessage, timeout),
            await two.next_push(p.BattleResultMessage, timeout),
        )
        return PvpMatch((one.welcome, two.welcome), found, results)
    finally:
        for client in clients:
            await client.close()
