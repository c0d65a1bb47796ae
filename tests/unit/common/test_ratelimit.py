"""The client address behind trusted proxies (what the rate limits count by)."""

from __future__ import annotations

from servers.common.ratelimit import client_ip, parse_networks


def test_client_ip_trusts_only_configured_proxies() -> None:
    trusted = parse_networks("10.0.0.0/8, 127.0.0.1/32")
    assert client_ip("198.51.100.1", "1.1.1.1", trusted) == "198.51.100.1"  # not a proxy
    assert client_ip("10.1.2.3", "1.1.1.1", trusted) == "1.1.1.1"
    assert client_ip("10.1.2.3", "6.6.6.6, 1.1.1.1, 10.9.9.9", trusted) == "1.1.1.1"
    assert client_ip("10.1.2.3", "garbage", trusted) == "10.1.2.3"
    assert client_ip("10.1.2.3", "", trusted) == "10.1.2.3"
    assert client_ip(None, None, ()) == "unknown"
