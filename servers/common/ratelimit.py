"""Rate limits: per client IP and per player across every instance (Redis,
`lua/rate_limit.lua`), and per WebSocket connection in process (a connection lives on one
server, so no Redis round trip).

The client IP is the peer address, unless the peer is a trusted proxy (the ingress): then the
right-most X-Forwarded-For entry that is not itself a trusted proxy. Exempt networks (loopback in
development) are never limited. When Redis cannot be reached, `fail_open` decides: let the request
through (logged) or refuse it.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from servers.common.config import RateLimitSettings
from servers.common.errors import ErrorCode, GameError
from servers.common.keys import Keys
from servers.common.lua import LimitDecision, RateLimitScript

log = logging.getLogger("cardgame.ratelimit")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ALLOW = LimitDecision(True, 0.0, 0)


def parse_networks(text: str) -> tuple[Network, ...]:
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    )


def _in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_ip(peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The address to limit: see the module docstring. Never trusts a client's own header."""
    peer = peer or "unknown"
    if not forwarded_for or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a garbled header: limit the proxy rather than believe it
        if not _in(hop, trusted):
            return hop
    return hops[0] if hops else peer


@dataclass(frozen=True)
class Rule:
    scope: str
    per_second: float
    burst: int


class IpRateLimiter:
    """Limits shared through Redis: per IP (exempt networks are never limited) and per player
    (`check_player`: no exemption, since players behind one address each have their own)."""

    def __init__(self, redis: Any, keys: Keys, settings: RateLimitSettings) -> None:
        self._script = RateLimitScript(redis)
        self._keys = keys
        self._s = settings
        self.exempt = parse_networks(settings.exempt_networks)
        self.trusted = parse_networks(settings.trusted_proxies)

    def ip_of(self, peer: str | None, forwarded_for: str | None) -> str:
        return client_ip(peer, forwarded_for, self.trusted)

    async def check(self, rule: Rule, ip: str) -> LimitDecision:
        if not self._s.enabled or _in(ip, self.exempt):
            return ALLOW
        return await self._hit(self._keys.rate_limit(rule.scope, ip), rule)

    async def check_player(self, rule: Rule, player_id: str) -> LimitDecision:
        if not self._s.enabled:
            return ALLOW
        return await self._hit(self._keys.player_rate_limit(rule.scope, player_id), rule)

    async def _hit(self, key: str, rule: Rule) -> LimitDecision:
        try:
            return await self._script.hit(key, rule.per_second, rule.burst)
        except (RedisError, OSError) as exc:
            log.warning(
                "rate limit check failed (%s): %s",
                "allowing" if self._s.fail_open else "refusing",
                exc,
            )
            return ALLOW if self._s.fail_open else LimitDecision(False, 1.0, 0)


class TokenBucket:
    """In-process limit for one connection: `rate` per second, up to `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0.0 when allowed, else the seconds until a token is available."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class ActivityLimits:
    """What one player may do how often, whichever game servers and sockets they use: PvE
    battles started, and join_party attempts per player and per client IP (each attempt is a
    guess at an invite code; right ones count too, which keeps the check to one round trip
    before the guess). A refusal raises GameError RATE_LIMITED saying when to retry, and is
    reported to `on_refused` with the limit's scope (for the metrics)."""

    def __init__(
        self,
        limiter: IpRateLimiter,
        settings: RateLimitSettings,
        on_refused: Callable[[str], None] = lambda scope: None,
    ) -> None:
        self._limiter = limiter
        self._on_refused = on_refused
        self.pve_rule = Rule("pve", settings.pve_per_minute / 60, settings.pve_burst)
        self.join_rule = Rule(
            "party_join", settings.party_join_per_minute / 60, settings.party_join_burst
        )
        self.join_ip_rule = Rule(
            "party_join_ip", settings.party_join_ip_per_minute / 60, settings.party_join_ip_burst
        )

    async def pve(self, player_id: str) -> None:
        decision = await self._limiter.check_player(self.pve_rule, player_id)
        self._enforce(self.pve_rule, decision, "too many PvE battles")

    async def party_join(self, player_id: str, ip: str | None) -> None:
        decision = await self._limiter.check_player(self.join_rule, player_id)
        self._enforce(self.join_rule, decision, "too many party join attempts")
        if ip is not None:
            decision = await self._limiter.check(self.join_ip_rule, ip)
            self._enforce(
                self.join_ip_rule, decision, "too many party join attempts from this address"
            )

    def _enforce(self, rule: Rule, decision: LimitDecision, what: str) -> None:
        if decision.allowed:
            return
        self._on_refused(rule.scope)
        # At least 0.1 s: "retry after 0.0 s" would read as "now" and be retried at once.
        raise GameError(
            ErrorCode.RATE_LIMITED,
            f"{what} (at most {rule.per_second * 60:g} per minute, {rule.burst} at once);"
            f" retry after {max(decision.retry_after, 0.1):.1f} s",
        )
