"""`cardgame burst`: measure the auth rate limit under a burst, on a stack of its own.

Starts Redis/PostgreSQL (or uses REDIS_URL/DATABASE_URL), two auth instances with per-IP limits on
for every address (127.0.0.1 trusted as a proxy, so the burst's client IP comes from
X-Forwarded-For), fires `requests` concurrent requests from one IP at both instances while a
second IP sends one request every 20 ms, and prints what got through and how fast answers were.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

import httpx

from devtools.stack import Stack
from servers.common.config import Settings


def _pct(values: list[float]) -> dict[str, float]:
    ordered = sorted(values) or [0.0]
    q = statistics.quantiles(ordered * (2 if len(ordered) == 1 else 1), n=100, method="inclusive")
    return {"p50": round(q[49], 1), "p99": round(q[98], 1), "max": round(ordered[-1], 1)}


async def _burst(
    urls: list[str], requests: int, concurrency: int, duration: float
) -> dict[str, Any]:
    limit = asyncio.Semaphore(concurrency)
    statuses: list[int] = []
    latencies: list[float] = []
    bystander: list[tuple[int, float]] = []
    done = asyncio.Event()

    async with httpx.AsyncClient(
        timeout=10, limits=httpx.Limits(max_connections=concurrency + 5)
    ) as http:

        async def one(i: int) -> None:
            # Spread over `duration` seconds (0: all at once).
            await asyncio.sleep(duration * i / requests)
            async with limit:
                started = time.perf_counter()
                response = await http.get(
                    f"{urls[i % len(urls)]}/openapi.json",
                    headers={"X-Forwarded-For": "203.0.113.10"},
                )
                latencies.append((time.perf_counter() - started) * 1000)
                statuses.append(response.status_code)

        async def other_ip() -> None:
            while not done.is_set():
                started = time.perf_counter()
                response = await http.get(
                    f"{urls[0]}/openapi.json", headers={"X-Forwarded-For": "203.0.113.99"}
                )
                bystander.append((response.status_code, (time.perf_counter() - started) * 1000))
                await asyncio.sleep(0.1)  # 10/s: within its own limit

        side = asyncio.create_task(other_ip())
        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        elapsed = time.perf_counter() - began
        done.set()
        await side
    return {
        "requests": requests,
        "seconds": round(elapsed, 2),
        "allowed": statuses.count(200),
        "limited_429": statuses.count(429),
        "other": len(statuses) - statuses.count(200) - statuses.count(429),
        "expected_allowed": f"<= {10 + 10 * elapsed:.0f} (burst 10 + 10/s)",
        "latency_ms": _pct(latencies),
        "other_ip_requests": len(bystander),
        "other_ip_allowed": sum(1 for status, _ in bystander if status == 200),
        "other_ip_latency_ms": _pct([ms for _, ms in bystander]),
    }


def run(settings: Settings, requests: int, concurrency: int, duration: float) -> dict[str, Any]:
    edge = settings.replace(
        ratelimit={"exempt_networks": "", "trusted_proxies": "127.0.0.1/32"},
        redis={"namespace": f"burst-{int(time.time())}"},
    )
    with Stack(edge, pods=0, auth_instances=2) as stack:
        return asyncio.run(_burst(stack.auth_urls, requests, concurrency, duration))


def main(settings: Settings, requests: int, concurrency: int, duration: float) -> int:
    result = run(settings, requests, concurrency, duration)
    for key, value in result.items():
        print(f"{key:22} {json.dumps(value)}")
    return 0
