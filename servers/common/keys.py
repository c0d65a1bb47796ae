"""Every Redis key, stream and Pub/Sub channel name, in one place.

All names start with a namespace (`cg` by default) so that a demo and a test run can share one
Redis. Keys a Lua script touches together carry one hash tag (`{normal}`, `{ranked}`, ...) so that
they live in one Redis Cluster slot; the script declares every one of them in KEYS.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class GameMode(StrEnum):
    NORMAL = "normal"


# Consumer group of the match servers on the request streams.
MATCH_GROUP = "match-servers"


@dataclass(frozen=True)
class Keys:
    namespace: str = "cg"

    # --- matchmaking data (one hash slot per mode) ---
    def queue(self, mode: GameMode) -> str:
        """Sorted set: member = player id, score = enqueue time (ms). Lives while queued."""
        return f"{self.namespace}:queue:{{{mode.value}}}"

    def tickets(self, mode: GameMode) -> str:
        """Hash: player id -> queue ticket JSON (battle snapshot). Same slot as the queue."""
        return f"{self.namespace}:tickets:{{{mode.value}}}"

    # --- requests to the match servers: streams, so each is handled by exactly one server ---
    @property
    def enqueue_requests(self) -> str:
        """Stream of EnqueueRequest (the seed's `match:enqueue:request`), read by a group."""
        return f"{self.namespace}:match:enqueue:request"

    @property
    def dequeue_requests(self) -> str:
        """Stream of DequeueRequest (the seed's `match:dequeue:request`), read by a group."""
        return f"{self.namespace}:match:dequeue:request"

    # --- Pub/Sub channels (names as in the seed) ---
    def match_result(self, pod_id: str) -> str:
        """Channel: match server -> the player's game server (EnQueued, MatchFound, ...)."""
        return f"{self.namespace}:pod:{pod_id}:match_result"

    @property
    def battle_request(self) -> str:
        """Channel: match server -> every game server; player1's pod runs the battle."""
        return f"{self.namespace}:battle:request"

    def battle_result(self, pod_id: str) -> str:
        """Channel: battle runner -> each player's game server."""
        return f"{self.namespace}:pod:{pod_id}:battle_result"

    def all_channels_pattern(self) -> str:
        """Pattern matching every channel above (for the console's live tail)."""
        return f"{self.namespace}:*"

    # --- issue 4: rate limits and revoked sessions (each key alone in its own slot) ---
    def rate_limit(self, scope: str, subject: str) -> str:
        """String (GCRA theoretical arrival time, ms) of one limit, e.g. scope `auth`, subject an
        IP. Expires as soon as the bucket is full again. The whole name is one hash tag."""
        return f"{self.namespace}:rl:{{{scope}:{subject}}}"

    def revoked_session(self, session_id: str) -> str:
        """String set by the auth server when a session (refresh family) is logged out or
        revoked; game servers refuse access tokens carrying that `sid`. Lives as long as an
        access token can."""
        return f"{self.namespace}:revoked:{{{session_id}}}"

    @property
    def session_revoked_channel(self) -> str:
        """Channel: auth server -> every game server; payload = a revoked session id, whose
        open WebSockets are closed."""
        return f"{self.namespace}:auth:session_revoked"
