"""Rate limits: per client IP across every instance (Redis, `lua/rate_limit.lua`), and per
WebSocket connection in process (a connection lives on one server, so no Redis round trip).

The client IP is the peer address, unless the peer is a trusted proxy (the ingress): then the
right-most X-Forwarded-For entry that is not itself a trusted proxy. Exempt networks (loopback in
development) are never limited. When Redis cannot be reached, `fail_open` decides: let the request
through (logged) or refuse it.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from servers.common.config import RateLimitSettings
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
    """Per-IP limits shared through Redis."""

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
        try:
            return await self._script.hit(
                self._keys.rate_limit(rule.scope, ip), rule.per_second, rule.burst
            )
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
