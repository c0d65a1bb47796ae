"""Every message model: the client <-> game server protocol and the internal Redis messages.

The client protocol is the product's public API (see docs/protocol.md and the JSON Schema in
docs/protocol.schema.json, both checked against these models by the tests). Messages are JSON
objects tagged by `type`; a client may add a string `id`, which the reply echoes. Pure code: no I/O,
shared by the servers, the fake client and the Locust users.
"""

from __future__ import annotations

import base64
import gzip
import inspect
import re
from typing import Annotated, Any, Literal

import msgspec

from servers.common.errors import DESCRIPTIONS, ErrorCode
from servers.common.models import BattleSnapshot
from servers.common.timeline import Event

PROTOCOL_VERSION = 1

# ---------------------------------------------------------------- field constraints
# Integers land in PostgreSQL columns: a value outside the column's type fails in the database,
# after the handler started, so it is refused at decode instead (see migrations/).
Int16 = Annotated[int, msgspec.Meta(ge=-(2**15), le=2**15 - 1)]  # SMALLINT
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]  # INTEGER
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]  # BIGINT

# Characters refused in client-supplied free text that is stored or shown to other players:
# C0/C1 controls (NUL, which PostgreSQL refuses in TEXT; ESC, which starts terminal escapes in
# operators' logs and consoles), bidirectional marks, embeddings, overrides and isolates (U+202E
# makes a name read backwards), line and paragraph separators, and invisible format characters
# (zero-width space, BOM, interlinear annotations, deprecated format controls). Zero-width
# joiners (U+200C, U+200D) stay: emoji sequences and several scripts need them.
FORBIDDEN_TEXT = (
    r"\x00-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb"
)
_FORBIDDEN = re.compile(f"[{FORBIDDEN_TEXT}]")
# A lookahead rather than `^[^...]*$`: Python's `$` also matches before a final newline. The same
# pattern is valid ECMAScript, so JSON Schema tools and generated clients can check it too.
SafeText = Annotated[
    str,
    msgspec.Meta(
        pattern=rf"^(?![\s\S]*[{FORBIDDEN_TEXT}])",
        description="Free text without control characters, bidirectional controls or"
        " invisible format characters.",
    ),
]


def text_problem(text: str) -> str | None:
    """Why `text` is refused as free text (the first forbidden character), or None."""
    found = _FORBIDDEN.search(text)
    if found is None:
        return None
    char = found.group()
    return f"contains U+{ord(char):04X} at position {found.start()}"


def clean_text(text: str) -> str:
    """`text` without the characters free text may not hold: for names we do not control (a
    Steam persona name), which are cleaned rather than refused. Separators become spaces."""
    return " ".join(_FORBIDDEN.sub(" ", text).split())


# ---------------------------------------------------------------- client -> game server
class ClientMessage(msgspec.Struct, tag_field="type", kw_only=True):
    """Base of client messages. Unknown fields are ignored (so a client's `metadata` is too)."""

    id: str | None = None


class Ping(ClientMessage, tag="ping"):
    pass


class GetProfile(ClientMessage, tag="get_profile"):
    pass


class GetCollection(ClientMessage, tag="get_collection"):
    pass


class GetDecks(ClientMessage, tag="get_decks"):
    pass


class DeckCard(msgspec.Struct, frozen=True, kw_only=True):
    card_id: Int32
    count: Int16


class SaveDeck(ClientMessage, tag="save_deck"):
    """Create a deck (no deck_id) or replace one of the player's decks."""

    name: SafeText
    cards: list[DeckCard]
    deck_id: Int64 | None = None


class SetActiveDeck(ClientMessage, tag="set_active_deck"):
    deck_id: Int64


class Enqueue(ClientMessage, tag="enqueue"):
    """Queue for PvP. The battle snapshot is built by the server; anything else sent is ignored."""

    mode: str = "normal"


class Dequeue(ClientMessage, tag="dequeue"):
    pass


# --- options, parties, PvE, history and replays ---
class SetOptions(ClientMessage, tag="set_options"):
    """Per-connection options. `timeline_gzip`: battle timelines above the server's threshold
    arrive gzip-compressed in `timeline_gzip` (base64) instead of `timeline`."""

    timeline_gzip: bool = False


class CreateParty(ClientMessage, tag="create_party"):
    pass


class JoinParty(ClientMessage, tag="join_party"):
    code: SafeText


class LeaveParty(ClientMessage, tag="leave_party"):
    pass


class GetParty(ClientMessage, tag="get_party"):
    pass


PveDifficulty = Literal["easy", "normal", "hard"]


class StartPve(ClientMessage, tag="start_pve"):
    """A battle against an AI deck on this game server: no queue, unranked, recorded."""

    difficulty: PveDifficulty = "normal"


class GetHistory(ClientMessage, tag="get_history"):
    limit: int = 20


class GetReplay(ClientMessage, tag="get_replay"):
    match_id: str


AnyClientMessage = (
    Ping
    | GetProfile
    | GetCollection
    | GetDecks
    | SaveDeck
    | SetActiveDeck
    | Enqueue
    | Dequeue
    | SetOptions
    | CreateParty
    | JoinParty
    | LeaveParty
    | GetParty
    | StartPve
    | GetHistory
    | GetReplay
)
CLIENT_MESSAGE_TYPES: tuple[type[ClientMessage], ...] = (
    Ping,
    GetProfile,
    GetCollection,
    GetDecks,
    SaveDeck,
    SetActiveDeck,
    Enqueue,
    Dequeue,
    SetOptions,
    CreateParty,
    JoinParty,
    LeaveParty,
    GetParty,
    StartPve,
    GetHistory,
    GetReplay,
)


# ---------------------------------------------------------------- game server -> client
class ServerMessage(msgspec.Struct, tag_field="type", kw_only=True):
    """Base of server messages; `id` echoes the request's correlation id, if it had one."""

    id: str | None = None


SessionState = Literal["idle", "queued", "in_battle"]


class Welcome(ServerMessage, tag="welcome"):
    """First frame. After a reconnect, `state` says where the player stands: still `queued`
    (in `mode`), `in_battle` (`match_id`; its result follows), or `idle`."""

    protocol: int
    player_id: str
    name: str
    pod_id: str
    resumed: bool = False
    state: SessionState = "idle"
    mode: str | None = None
    match_id: str | None = None


class Pong(ServerMessage, tag="pong"):
    pass


class Profile(ServerMessage, tag="profile"):
    player_id: str
    name: str
    level: int
    experience: int
    rating: float
    rating_deviation: float
    wins: int
    losses: int
    draws: int


class OwnedCard(msgspec.Struct, frozen=True, kw_only=True):
    card_id: int
    name: str
    cost: int
    attack: int
    health: int
    rarity: str
    count: int


class Collection(ServerMessage, tag="collection"):
    cards: list[OwnedCard]


class DeckInfo(msgspec.Struct, kw_only=True):
    deck_id: int
    name: str
    active: bool
    legal: bool
    cards: list[DeckCard]


class Decks(ServerMessage, tag="decks"):
    decks: list[DeckInfo]


class DeckSaved(ServerMessage, tag="deck_saved"):
    deck: DeckInfo


class ActiveDeckSet(ServerMessage, tag="active_deck_set"):
    deck_id: int


class Enqueued(ServerMessage, tag="enqueued"):
    mode: str


# "expired": waited longer than the ticket lifetime; "party": the party duel cannot happen
# any more (the other member left or the party expired).
DequeueReason = Literal["requested", "disconnected", "server", "expired", "party"]


class Dequeued(ServerMessage, tag="dequeued"):
    mode: str
    reason: DequeueReason = "requested"


class MatchFound(ServerMessage, tag="match_found"):
    match_id: str
    mode: str
    opponent_id: str
    opponent_name: str


# Why a battle ended without a result: its runner failed for good, or it overran its deadline.
BattleFailReason = Literal["failed", "timeout"]


class BattleFailed(ServerMessage, tag="battle_failed"):
    """The battle `match_id` ended without a result; the player is free again (nothing was
    recorded for it: no win, no loss, no rating change)."""

    match_id: str
    reason: BattleFailReason


# A battle's result from one player's side.
Outcome = Literal["win", "loss", "draw"]


class BattleResultMessage(ServerMessage, tag="battle_result"):
    """The finished battle. `timeline` is the event list of docs/protocol.md (battle events)."""

    match_id: str
    mode: str
    seed: int
    winner_id: str | None
    outcome: Outcome
    opponent_id: str
    turns: int
    timeline: msgspec.Raw
    # Set (base64 of the gzip-compressed timeline JSON) instead of `timeline`, which is
    # then null, when the client asked for it with `set_options` and the timeline is large.
    timeline_gzip: str | None = None


class Error(ServerMessage, tag="error"):
    code: ErrorCode
    message: str


class Options(ServerMessage, tag="options"):
    """Reply to `set_options`: the options in force and the compression threshold (bytes)."""

    timeline_gzip: bool
    gzip_threshold: int


PartyEvent = Literal["created", "joined", "member_joined", "member_left", "expired", "state"]


class Party(ServerMessage, tag="party"):
    """A party's state: the reply to `create_party`, `join_party`, `get_party`, and pushed to
    its members when it changes (`event`). A duel starts when both members `enqueue` with
    mode `party`."""

    code: str
    owner_id: str
    members: list[str]
    expires_at_ms: int
    event: PartyEvent = "state"


class PartyLeft(ServerMessage, tag="party_left"):
    code: str


class HistoryEntry(msgspec.Struct, kw_only=True):
    match_id: str
    mode: str
    opponent_id: str
    opponent_name: str
    result: Outcome
    turns: int
    rating_before: float
    rating_after: float
    rating_change: float
    finished_at_ms: int


class History(ServerMessage, tag="history"):
    """The player's most recent matches, newest first."""

    matches: list[HistoryEntry]


class ReplayPlayer(msgspec.Struct, kw_only=True):
    player_id: str
    name: str
    slot: int
    result: Outcome
    rating_before: float
    rating_after: float


class Replay(ServerMessage, tag="replay"):
    """A recorded match: the stored seed and timeline (byte for byte what was played)."""

    match_id: str
    mode: str
    seed: int
    winner_id: str | None
    end_reason: str
    turns: int
    players: list[ReplayPlayer]
    timeline: msgspec.Raw
    timeline_gzip: str | None = None


AnyServerMessage = (
    Welcome
    | Pong
    | Profile
    | Collection
    | Decks
    | DeckSaved
    | ActiveDeckSet
    | Enqueued
    | Dequeued
    | MatchFound
    | BattleResultMessage
    | BattleFailed
    | Error
    | Options
    | Party
    | PartyLeft
    | History
    | Replay
)


# ---------------------------------------------------------------- internal (Redis) messages
class BusMessage(msgspec.Struct, kw_only=True, frozen=True):
    """Base of the internal messages. Each subclass says `frozen=True` again: msgspec inherits
    it, but a type checker reads each class's own keywords and would take the subclass as
    mutable (a non-frozen dataclass under a frozen one)."""


class EnqueueRequest(BusMessage, frozen=True):
    """Game server -> match servers (stream `match:enqueue:request`)."""

    request_id: str
    player_id: str
    game_mode: str
    pod_id: str
    metadata: BattleSnapshot
    enqueued_at_ms: int
    # The fencing epoch of the connection that asked (servers/common/players.py): the request
    # is refused once another connection holds the player.
    epoch: int = 0


class DequeueRequest(BusMessage, frozen=True):
    """Game server -> match servers (stream `match:dequeue:request`)."""

    request_id: str
    player_id: str
    game_mode: str
    pod_id: str
    reason: DequeueReason = "requested"
    epoch: int = 0  # as in EnqueueRequest; 0 = an operator's dequeue, whoever holds the player


class ResultEnQueued(BusMessage, tag="EnQueued", tag_field="type", frozen=True):
    queue_size: int


class ResultMatchFound(BusMessage, tag="MatchFound", tag_field="type", frozen=True):
    match_id: str
    opponent_id: str
    opponent_name: str


class ResultDequeued(BusMessage, tag="Dequeued", tag_field="type", frozen=True):
    reason: DequeueReason


class ResultError(BusMessage, tag="Error", tag_field="type", frozen=True):
    code: ErrorCode
    message: str
    # ALREADY_QUEUED / IN_BATTLE: where the player's record says they are, so that the
    # session, a cache of that record, can follow it.
    queued_mode: str = ""
    match_id: str = ""


class MatchResult(BusMessage, frozen=True):
    """Match server -> the player's game server (channel `pod:{pod_id}:match_result`)."""

    player_id: str
    game_mode: str
    result: ResultEnQueued | ResultMatchFound | ResultDequeued | ResultError
    request_id: str | None = None


class PlayerCandidate(BusMessage, frozen=True):
    player_id: str
    score: int
    pod_id: str
    metadata: BattleSnapshot


class BattleRequest(BusMessage, frozen=True):
    """Match server -> every game server (channel `battle:request`); player1's pod runs it."""

    match_id: str
    game_mode: str
    seed: int
    player1: PlayerCandidate
    player2: PlayerCandidate
    # When the match was formed (PvE: started), ms since the epoch: the same for every run of
    # the battle, it places the match in its month partition. 0 from a sender that predates it.
    formed_at_ms: int = 0


class BattleNotice(BusMessage, frozen=True):
    """Match server -> `battle:request` channel: a battle was handed to the battle stream.

    The request itself travels durably on the mode's battle stream; this notice keeps the
    design's `battle:request` channel alive for observers (the console) and for the PUBSUB
    NUMSUB liveness rule (no subscriber for 5 checks in a row: maintenance)."""

    match_id: str
    game_mode: str
    player1: str
    player2: str
    pod1: str
    pod2: str


class PodCommand(BusMessage, frozen=True):
    """Operations -> one game server (channel `pod:{pod_id}:control`)."""

    command: Literal["drain", "player_moved", "disconnect", "party_changed", "battle_failed"]
    player_id: str | None = None
    to_pod: str | None = None
    # "battle_failed": the match and why.
    match_id: str | None = None
    reason: BattleFailReason | None = None
    # "player_moved": the epoch the player's new connection holds; only sessions holding an
    # older epoch let go (two pods taking the player at once must not both let go).
    epoch: int = 0
    # "party_changed": what happened and the party JSON after it.
    event: PartyEvent | None = None
    party: str | None = None


class BattleResult(BusMessage, frozen=True):
    """Battle runner -> a player's game server (channel `pod:{pod_id}:battle_result`)."""

    match_id: str
    game_mode: str
    player_id: str
    opponent_id: str
    seed: int
    winner_id: str | None
    turns: int
    timeline: msgspec.Raw
    # The player's level and rating after the match was recorded (None: not known, e.g. a
    # re-run of a recorded match): the game server refreshes its cached battle snapshot.
    level: int | None = None
    rating: float | None = None


# ---------------------------------------------------------------- encoding
_encoder = msgspec.json.Encoder()
_client_decoder = msgspec.json.Decoder(AnyClientMessage)
_server_decoder = msgspec.json.Decoder(AnyServerMessage)
_CLIENT_TAGS = {cls.__struct_config__.tag for cls in CLIENT_MESSAGE_TYPES}


def encode(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


class ServerError(Exception):
    """A client-side view of an `error` message (or an HTTP error body): the server's code and
    message. Shared by the fake client and the Locust users."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __repr__(self) -> str:  # Locust groups failures by repr: keep the code first
        return f"ServerError({self.code}: {self.message})"


class ProtocolError(Exception):
    """A client frame that could not be decoded; carries the code and the frame's id if any."""

    def __init__(self, code: ErrorCode, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


def decode_client(frame: bytes | str) -> AnyClientMessage:
    """Decode one client frame, or raise ProtocolError with a stable code."""
    try:
        return _client_decoder.decode(frame)
    except msgspec.ValidationError as exc:
        detail = str(exc)
    except msgspec.DecodeError as exc:
        raise ProtocolError(ErrorCode.MALFORMED_JSON, f"invalid JSON: {exc}") from None
    except RecursionError:  # found by the fuzzer: "[[[[...]]]]" thousands deep
        raise ProtocolError(ErrorCode.MALFORMED_JSON, "invalid JSON: nested too deeply") from None
    # Slow path, errors only: look at the raw object to say precisely what is wrong.
    try:
        raw: Any = msgspec.json.decode(frame)
    except RecursionError:
        raise ProtocolError(ErrorCode.MALFORMED_JSON, "invalid JSON: nested too deeply") from None
    except msgspec.DecodeError as exc:  # found by the fuzzer: '[1, x' fails typing first
        raise ProtocolError(ErrorCode.MALFORMED_JSON, f"invalid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "a message must be a JSON object")
    ref = raw.get("id") if isinstance(raw.get("id"), str) else None
    kind = raw.get("type")
    # Found by hand: {"type": ["ping"]} is unhashable, so test the type before the set lookup.
    if not isinstance(kind, str) or kind not in _CLIENT_TAGS:
        known = ", ".join(sorted(str(t) for t in _CLIENT_TAGS))
        shown = (
            _shorten(repr(kind)) if isinstance(kind, str) else f"of JSON type {_json_type(kind)}"
        )
        raise ProtocolError(
            ErrorCode.UNKNOWN_MESSAGE,
            f"`type` must be a string naming a client message, not {shown}; known: {known}",
            ref,
        )
    raise ProtocolError(
        ErrorCode.INVALID_MESSAGE, f"invalid {kind!r} message: {_readable(detail, raw)}", ref
    )


_PATH = re.compile(r" - at `\$((?:\.\w+|\[\d+\])*)`$")
_STEP = re.compile(r"\.(\w+)|\[(\d+)\]")


def _readable(detail: str, raw: dict[str, Any]) -> str:
    """msgspec's validation message, with a failed free-text check said in words (the bare
    regex tells a person nothing)."""
    at = _PATH.search(detail)
    if "matching regex" not in detail or at is None:
        return _shorten(detail)
    value: Any = raw
    for key, index in _STEP.findall(at.group(1)):
        try:
            value = value[key] if key else value[int(index)]
        except (KeyError, IndexError, TypeError):
            return _shorten(detail)
    problem = text_problem(value) if isinstance(value, str) else None
    if problem is None:
        return _shorten(detail)
    return (
        f"`{at.group(1).lstrip('.')}` {problem}: control characters, bidirectional controls"
        " and invisible format characters are not allowed"
    )


def _shorten(text: str, limit: int = 200) -> str:
    """Error messages quote the client's input: keep a 16 KiB frame from coming back whole."""
    return text if len(text) <= limit else text[:limit] + "..."


def _json_type(value: object) -> str:
    return {dict: "object", list: "array", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def decode_server(frame: bytes | str) -> AnyServerMessage:
    return _server_decoder.decode(frame)


def gzip_timeline(timeline: bytes) -> str:
    """A timeline as sent in `timeline_gzip`: gzip (no file name, mtime 0), then base64."""
    return base64.b64encode(gzip.compress(timeline, compresslevel=6, mtime=0)).decode()


def timeline_bytes(message: BattleResultMessage | Replay) -> bytes:
    """The timeline JSON of a battle result or replay, compressed or not."""
    if message.timeline_gzip is not None:
        return gzip.decompress(base64.b64decode(message.timeline_gzip))
    return bytes(message.timeline)


def error_message(code: ErrorCode, message: str | None = None, ref: str | None = None) -> Error:
    return Error(id=ref, code=code, message=message or DESCRIPTIONS[code])


def _clean_descriptions(node: object) -> None:
    """Dedent every description taken from a docstring, in place: msgspec releases differ in
    how they dedent, and the committed schema must not depend on the installed release."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                node[key] = inspect.cleandoc(value)
            else:
                _clean_descriptions(value)
    elif isinstance(node, list):
        for item in node:
            _clean_descriptions(item)


def protocol_schema() -> dict[str, Any]:
    """JSON Schema of both directions, for generating client types (e.g. C#)."""

    (client, server, event), components = msgspec.json.schema_components(
        [AnyClientMessage, AnyServerMessage, Event], ref_template="#/$defs/{name}"
    )
    _clean_descriptions(components)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"cardgame client protocol v{PROTOCOL_VERSION}",
        "description": "client_to_server and server_to_client are the WebSocket frames;"
        " battle_result.timeline is an array of battle_event.",
        "$defs": components,
        "properties": {
            "client_to_server": client,
            "server_to_client": server,
            "battle_event": event,
        },
    }
