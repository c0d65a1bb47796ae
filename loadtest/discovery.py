"""Finding the game servers of a stack from the auth URL and the configuration.

`cardgame up --pods N` puts game server i (0-based) on the configured `game.port` + i on the same
host as the auth server. Without explicit URLs, a load test probes those ports' `/health` (each
game server names its pod there) and stops at the first port where no game server answers.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from servers.common.config import load_settings

MAX_PODS = 64


def parse_urls(text: str) -> list[str]:
    return [u.strip() for u in text.split(",") if u.strip()]


def discover_game_urls(
    auth_url: str, base_port: int | None = None, max_pods: int = MAX_PODS, timeout: float = 2.0
) -> list[str]:
    """WebSocket URLs of the game servers next to `auth_url` (configured port and upwards)."""
    host = urlsplit(auth_url).hostname or "127.0.0.1"
    port = load_settings().game.port if base_port is None else base_port
    found = []
    with httpx.Client(timeout=timeout) as http:
        for i in range(max_pods):
            try:
                response = http.get(f"http://{host}:{port + i}/health")
                body = response.json()
            except (httpx.HTTPError, ValueError):
                break
            if response.status_code != 200 or "pod_id" not in body or "sessions" not in body:
                break  # something else listens there, not a game server
            found.append(f"ws://{host}:{port + i}/ws")
    return found
