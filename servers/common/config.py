"""Typed configuration: one TOML file per environment plus environment overrides.

`load_settings()` reads `config/<CARDGAME_ENV>.toml` (development by default), then applies
`CARDGAME_<SECTION>__<KEY>` variables, then the conventional `REDIS_URL`, `DATABASE_URL` and
`POD_ID`, and `CARDGAME_INSTANCE_ID`. This is the only module that reads `os.environ` for settings.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


@dataclass(frozen=True)
class RedisSettings:
    url: str = ""
    namespace: str = "cg"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = ""
    pool_min: int = 1
    pool_max: int = 10


@dataclass(frozen=True)
class AuthSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    jwt_secret: str = ""
    jwt_issuer: str = "cardgame-auth"
    jwt_audience: str = "cardgame-game"
    access_token_ttl: int = 3600
    dev_login: bool = False
    # --- asymmetric signing, JWKS, refresh tokens (see docs/operations.md) ---
    # Legacy: jwt_secret (HS256) is no longer used to sign or verify; kept so old env files load.
    jwt_algorithm: str = "EdDSA"  # EdDSA (Ed25519) or ES256 (P-256); pinned when verifying
    key_dir: str = ""  # directory of PEM private keys, one per key id (file stem = kid)
    signing_kid: str = ""  # key id that signs; empty: the last key id in sorted order
    dev_key_seed: str = ""  # development only: derive one key from this text when key_dir is empty
    jwks_url: str = ""  # game servers fetch public keys here; empty: derive from local keys
    jwks_refresh_interval: float = 300.0  # seconds a fetched JWKS is trusted before refetching
    refresh_token_ttl: int = 2592000  # seconds a refresh token stays usable (rotated on use)


@dataclass(frozen=True)
class SteamSettings:
    """Steamworks Web API (ISteamUserAuth/AuthenticateUserTicket) and the login policy."""

    web_api_url: str = ""  # empty: Steam login unavailable (development starts the simulator)
    web_api_key: str = ""  # publisher Web API key
    app_id: int = 0
    identity: str = "cardgame-auth"  # must match the client's GetAuthTicketForWebApi identity
    timeout: float = 3.0  # seconds per attempt
    retries: int = 2  # extra attempts after a timeout, connection error or 5xx
    retry_backoff: float = 0.2  # seconds before the first retry, doubled each time
    deny_vac_banned: bool = False
    deny_publisher_banned: bool = True
    deny_family_shared: bool = False  # ownersteamid != steamid: the game is borrowed
    sim_host: str = "127.0.0.1"  # the development Steam Web API simulator
    sim_port: int = 8300


@dataclass(frozen=True)
class RateLimitSettings:
    """Limits shared by every instance through Redis (per IP), and per WebSocket connection."""

    enabled: bool = True
    auth_per_s: float = 10.0  # auth server requests per second per client IP
    auth_burst: int = 10
    ws_connects_per_s: float = 2.0  # WebSocket connects per second per client IP
    ws_connect_burst: int = 10
    ws_messages_per_s: float = 20.0  # client messages per second per connection (in process)
    ws_message_burst: int = 40
    ws_flood_close_after: int = 100  # refused messages (no quiet second between) -> close
    # Activity per player (every game server together, through Redis; no network is exempt):
    # PvE battles started, and join_party attempts (each one a guess at an invite code).
    pve_per_minute: float = 6.0
    pve_burst: int = 3
    party_join_per_minute: float = 6.0
    party_join_burst: int = 10
    # join_party attempts per client IP, every player behind it together (exempt_networks apply).
    party_join_ip_per_minute: float = 30.0
    party_join_ip_burst: int = 30
    exempt_networks: str = ""  # comma-separated CIDRs never limited per IP
    trusted_proxies: str = ""  # comma-separated CIDRs whose X-Forwarded-For is believed
    fail_open: bool = True  # Redis unreachable: let requests through (logged) instead of 503


@dataclass(frozen=True)
class GameSettings:
    host: str = "127.0.0.1"
    port: int = 8100
    max_message_bytes: int = 16384
    max_frame_bytes: int = 65536
    # A connection whose unsent replies pass this many bytes is read no further until they
    # drain; one still over it after slow_consumer_grace seconds is dropped (SLOW_CONSUMER).
    max_unsent_bytes: int = 1048576
    slow_consumer_grace: float = 10.0
    match_reply_timeout: float = 5.0
    # A player whose socket dropped keeps their queue place this long, to reconnect anywhere.
    reconnect_grace: float = 5.0
    # SIGTERM: finish battles, dequeue with a notice and close sockets within this many seconds.
    drain_deadline: float = 20.0
    # --- parties, battle timelines, history ---
    party_ttl: float = 1800.0  # seconds a party lives after it was created
    timeline_gzip_threshold: int = 4096  # timelines above this many bytes may be gzip-compressed
    history_limit: int = 50  # most matches one get_history returns


@dataclass(frozen=True)
class MatchSettings:
    host: str = "127.0.0.1"
    port: int = 8200
    tick_interval: float = 0.2
    batch_size: int = 512
    # Popped players return to the queue if their match server has not committed them by then.
    lease_seconds: float = 5.0
    # The design's liveness rule: this many checks of PUBSUB NUMSUB battle:request finding no
    # game server in a row empty the queues and set maintenance mode for maintenance_ttl seconds.
    numsub_check_interval: float = 6.0
    numsub_failures: int = 5
    maintenance_ttl: int = 300
    # --- Ranked and Party pairing, ticket lifetime ---
    # Ranked: a player accepts opponents within start + growth * seconds waited, up to max.
    ranked_window_start: float = 100.0
    ranked_window_growth: float = 15.0
    ranked_window_max: float = 600.0
    # Ranked and Party pair over the whole queue, by one match server per tick: most players
    # taken in one such pass (the longest-waiting).
    pass_batch_size: int = 10000
    # Ticket lifetime: a player queued longer than this is dequeued and told ("expired").
    ticket_max_wait: float = 300.0
    # A battle (PvP or PvE) that has not ended this many seconds after it started is ended by
    # the match servers: its players are freed and told (battle_failed, "timeout"). Battles are
    # simulated in milliseconds; the margin covers a backlog of battle streams and re-runs.
    battle_deadline: float = 120.0


@dataclass(frozen=True)
class RatingSettings:
    """Glicko-2: tau constrains volatility changes (Glickman suggests 0.3 to 1.2);
    a player's RD grows for each whole rating period without a Ranked game, up to max_rd."""

    tau: float = 0.5
    period_seconds: float = 86400.0
    max_rd: float = 350.0


@dataclass(frozen=True)
class PodSettings:
    # Every server refreshes a heartbeat this often; it expires after heartbeat_ttl.
    heartbeat_interval: float = 1.0
    heartbeat_ttl: float = 3.0


@dataclass(frozen=True)
class LogSettings:
    """Server logs: `json` (one object per line, with pod_id/player_id/match_id; production)
    or `text` (development). See servers/common/logs.py."""

    format: str = "text"
    level: str = "INFO"


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    pod_id: str = "pod-1"
    # Set by `cardgame up` and the other local stacks for every process they start, and reported
    # by every /health: a stack accepts a health answer only from its own servers, so a port
    # answered by someone else's server is caught instead of being taken for ours.
    instance_id: str = ""
    redis: RedisSettings = field(default_factory=RedisSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    game: GameSettings = field(default_factory=GameSettings)
    match: MatchSettings = field(default_factory=MatchSettings)
    pods: PodSettings = field(default_factory=PodSettings)
    steam: SteamSettings = field(default_factory=SteamSettings)
    ratelimit: RateLimitSettings = field(default_factory=RateLimitSettings)
    log: LogSettings = field(default_factory=LogSettings)
    rating: RatingSettings = field(default_factory=RatingSettings)

    def replace(self, **sections: Any) -> Settings:
        """Copy with some fields replaced; a dict value updates that section's fields."""
        changes: dict[str, Any] = {}
        for name, value in sections.items():
            current = getattr(self, name)
            if (
                isinstance(value, Mapping)
                and dataclasses.is_dataclass(current)
                and not isinstance(current, type)
            ):
                changes[name] = dataclasses.replace(current, **value)
            else:
                changes[name] = value
        return dataclasses.replace(self, **changes)


def _coerce(value: str, like: Any) -> Any:
    if isinstance(like, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    return value


def _section(cls: type[Any], raw: Mapping[str, Any], env: Mapping[str, str], name: str) -> Any:
    defaults = cls()
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = raw.get(f.name, getattr(defaults, f.name))
        override = env.get(f"CARDGAME_{name.upper()}__{f.name.upper()}")
        if override is not None:
            value = _coerce(override, getattr(defaults, f.name))
        values[f.name] = value
    unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown settings in [{name}]: {sorted(unknown)}")
    return cls(**values)


def to_env(settings: Settings) -> dict[str, str]:
    """The environment that makes load_settings() in a child process return these settings."""
    env = {
        "CARDGAME_ENV": settings.env,
        "POD_ID": settings.pod_id,
        "CARDGAME_INSTANCE_ID": settings.instance_id,
    }
    for section in dataclasses.fields(settings):
        value = getattr(settings, section.name)
        if not dataclasses.is_dataclass(value):
            continue
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            text = str(item).lower() if isinstance(item, bool) else str(item)
            env[f"CARDGAME_{section.name.upper()}__{f.name.upper()}"] = text
    return env


def load_settings(env: Mapping[str, str] | None = None, config_dir: Path = CONFIG_DIR) -> Settings:
    env = os.environ if env is None else env
    name = env.get("CARDGAME_ENV", "development")
    path = config_dir / f"{name}.toml"
    raw = tomllib.loads(path.read_text()) if path.exists() else {}
    sections = {
        "redis": RedisSettings,
        "database": DatabaseSettings,
        "auth": AuthSettings,
        "game": GameSettings,
        "match": MatchSettings,
        "pods": PodSettings,
        "steam": SteamSettings,
        "ratelimit": RateLimitSettings,
        "log": LogSettings,
        "rating": RatingSettings,
    }
    built = {key: _section(cls, raw.get(key, {}), env, key) for key, cls in sections.items()}
    settings = Settings(
        env=name,
        pod_id=env.get("POD_ID", "pod-1"),
        instance_id=env.get("CARDGAME_INSTANCE_ID", ""),
        **built,
    )
    if env.get("REDIS_URL"):
        settings = settings.replace(redis={"url": env["REDIS_URL"]})
    if env.get("DATABASE_URL"):
        settings = settings.replace(database={"url": env["DATABASE_URL"]})
    return settings
