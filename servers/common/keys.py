"""Every Redis key, stream and Pub/Sub channel name, in one place.

All names start with a namespace (`cg` by default) so that a demo and a test run can share one
Redis. Every key of matchmaking and player state carries the one hash tag `{mm}`: the queues of
all modes, the parties and each player's activity record live in one Redis Cluster slot, so one
script can check what a player is doing and change it together with any queue (the price: all
matchmaking state sits on one shard; see docs/architecture.md). Other keys carry their own tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class GameMode(StrEnum):
    NORMAL = "normal"
    # Ranked pairs by rating (one match server pairs the whole queue at a time);
    # Party pairs the two members of one party. PvE has no queue, hence no member here.
    RANKED = "ranked"
    PARTY = "party"


# Modes recorded in match history that have no queue.
PVE_MODE = "pve"


# The hash tag of every matchmaking and player-state key (see the module docstring).
MM_TAG = "{mm}"


# Consumer group of the match servers on the request streams.
MATCH_GROUP = "match-servers"
# Consumer group of the game servers on the battle streams.
BATTLE_GROUP = "game-servers"


@dataclass(frozen=True)
class Keys:
    namespace: str = "cg"

    # --- matchmaking data (all in the `{mm}` slot) ---
    def queue(self, mode: GameMode) -> str:
        """Sorted set: member = player id, score = enqueue time (ms). Lives while queued."""
        return f"{self.namespace}:{MM_TAG}:queue:{mode.value}"

    def tickets(self, mode: GameMode) -> str:
        """Hash: player id -> queue ticket JSON (battle snapshot). Same slot as the queue."""
        return f"{self.namespace}:{MM_TAG}:tickets:{mode.value}"

    def ticket_pods(self, mode: GameMode) -> str:
        """Hash: player id -> pod id whose game server holds the player's session now.

        Read by the pop (MatchFound goes to the pods the records name at the commit);
        `attach.lua` repoints it in the same step as the record."""
        return f"{self.namespace}:{MM_TAG}:ticket-pods:{mode.value}"

    def inflight(self, mode: GameMode) -> str:
        """Sorted set: popped players being paired -> lease deadline (ms). A match server that
        dies mid-tick leaves them here; any match server puts them back when the lease ends."""
        return f"{self.namespace}:{MM_TAG}:inflight:{mode.value}"

    def inflight_scores(self, mode: GameMode) -> str:
        """Hash: popped player id -> original enqueue score, to requeue them in place."""
        return f"{self.namespace}:{MM_TAG}:inflight-scores:{mode.value}"

    def battles(self, mode: GameMode) -> str:
        """Stream of BattleRequest, read by the game servers' group. Written in the same script
        that takes the pair out of the queue, so a match is never lost nor made twice."""
        return f"{self.namespace}:{MM_TAG}:battles:{mode.value}"

    def pairing_pass(self, mode: GameMode) -> str:
        """String with a TTL of one tick: set by the match server that pairs the
        mode's whole queue in this tick (Ranked, Party), so one server does it per tick."""
        return f"{self.namespace}:{MM_TAG}:pairing-pass:{mode.value}"

    # --- player state (the `{mm}` slot) ---
    def player(self, player_id: str) -> str:
        """Hash: the one authoritative record of what the player is doing and who holds them
        (servers/common/players.py): fencing epoch, owning pod, activity, mode, match, deadline,
        a notice for the next welcome. Changed only by the scripts in lua/."""
        return f"{self.namespace}:{MM_TAG}:player:{player_id}"

    @property
    def player_prefix(self) -> str:
        """What `player(id)` puts before the id: scripts that find players in a queue build
        their records' names from it (same slot, so Cluster-safe)."""
        return f"{self.namespace}:{MM_TAG}:player:"

    @property
    def deadlines(self) -> str:
        """Sorted set: player id -> deadline (ms) of a battle or PvE activity; the match
        servers end activities that overrun it, so nobody stays busy for ever."""
        return f"{self.namespace}:{MM_TAG}:deadlines"

    # --- result delivery (one hash slot per player) ---
    def player_match(self, player_id: str) -> str:
        """String: the match whose result the player is owed until it was delivered (TTL)."""
        return f"{self.namespace}:player:{{{player_id}}}:match"

    def delivered(self, player_id: str, match_id: str) -> str:
        """String: set once a match's result reached the player (exactly-once delivery)."""
        return f"{self.namespace}:player:{{{player_id}}}:delivered:{match_id}"

    # --- pods and operations ---
    @property
    def pods(self) -> str:
        """Sorted set: pod id -> last heartbeat (ms). Lets anyone list pods without SCAN."""
        return f"{self.namespace}:pods"

    def heartbeat(self, pod_id: str, role: str) -> str:
        """String with TTL: a server's latest stats (JSON); gone = the server is dead."""
        return f"{self.namespace}:pod:{pod_id}:heartbeat:{role}"

    @property
    def maintenance_flag(self) -> str:
        """String with TTL (`maintenance:flag` in the design): value "auto" or "manual". In the
        queues' slot: the enqueue script refuses while it is set, in the same atomic step."""
        return f"{self.namespace}:{MM_TAG}:maintenance:flag"

    def pod_control(self, pod_id: str) -> str:
        """Channel: operations for one game server (drain, player moved to another pod)."""
        return f"{self.namespace}:pod:{pod_id}:control"

    # --- requests to the match servers: streams, so each is handled by exactly one server ---
    @property
    def enqueue_requests(self) -> str:
        """Stream of EnqueueRequest (`match:enqueue:request` as in the design), read by a group."""
        return f"{self.namespace}:match:enqueue:request"

    @property
    def dequeue_requests(self) -> str:
        """Stream of DequeueRequest (`match:dequeue:request` as in the design), read by a group."""
        return f"{self.namespace}:match:dequeue:request"

    # --- Pub/Sub channels (names as in the design) ---
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

    # --- rate limits and revoked sessions (each key alone in its own slot) ---
    def rate_limit(self, scope: str, subject: str) -> str:
        """String (GCRA theoretical arrival time, ms) of one limit, e.g. scope `auth`, subject an
        IP. Expires as soon as the bucket is full again. The whole name is one hash tag."""
        return f"{self.namespace}:rl:{{{scope}:{subject}}}"

    def player_rate_limit(self, scope: str, player_id: str) -> str:
        """String (GCRA theoretical arrival time, ms) of one player's activity limit, e.g. scope
        `pve` (battles started) or `party_join` (invite codes tried), shared by every game server
        the player connects to. Expires as soon as the bucket is full again. One hash tag."""
        return f"{self.namespace}:rl:{{{scope}:player:{player_id}}}"

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

    @property
    def catalogue_channel(self) -> str:
        """Channel: `cardgame content load` -> every game server; payload = the catalogue
        version (decimal) just made current, published after its transaction committed."""
        return f"{self.namespace}:content:catalogue"

    # --- parties (in the `{mm}` slot, with the party queue and the player records) ---
    @property
    def parties(self) -> str:
        """Hash: party code -> party JSON (owner, members, created and expiry times in ms).
        Shares the `{party}` hash tag with the party queue, so one script can leave a party
        and take the partner out of the queue."""
        return f"{self.namespace}:{MM_TAG}:parties"

    @property
    def party_members(self) -> str:
        """Hash: player id -> code of the party they are in (same slot as `parties`)."""
        return f"{self.namespace}:{MM_TAG}:party-members"

    @property
    def party_expiry(self) -> str:
        """Sorted set: party code -> expiry time (ms), so the match servers' sweep finds
        expired parties without scanning (same slot as `parties`)."""
        return f"{self.namespace}:{MM_TAG}:party-expiry"
