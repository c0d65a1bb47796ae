"""`cardgame bench compare`: our end-to-end cycle and the Colyseus duel cycle, side by side.

Given the folder of the Colyseus peer baseline (its README says what one match cycle is), this
copies it to a scratch directory, installs it (npm), and for each client count runs the peer's
`run_bench.sh` and then `cardgame bench e2e` on a fresh stack, one right after the other, so
both see the same machine. It prints, per level, matches per second, CPU milliseconds per
completed match (all measured processes, load generators included) and the ratios.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

NPM_TIMEOUT = 600
PEER_TIMEOUT = 600


def peer_figures(result: Mapping[str, Any]) -> dict[str, float | None]:
    """Matches per second and CPU ms per match of one Colyseus level (`results/cC.json`):
    the server's and the load generator's CPU, as shares of one core over the window."""
    rate = float(result["matches_per_s"])
    window = float(result["window_s"])
    cpu = result.get("cpu") or {}
    server, loadgen = cpu.get("server_pct_of_one_core"), cpu.get("loadgen_pct_of_one_core")
    matches = rate * window
    if matches <= 0 or server is None or loadgen is None:
        return {"matches_per_s": rate, "cpu_ms_per_match": None}
    cpu_s = (float(server) + float(loadgen)) / 100 * window
    return {"matches_per_s": rate, "cpu_ms_per_match": round(cpu_s / matches * 1000, 3)}


def cardgame_figures(result: Mapping[str, Any]) -> dict[str, float | None]:
    """The same two figures from a `bench e2e` result (every process it watched)."""
    rate = float(result["matches_per_s"])
    matches = float(result["matches_completed"])
    cpu_s = sum(float(p["cpu_s"]) for p in result["processes"].values())
    return {
        "matches_per_s": rate,
        "cpu_ms_per_match": round(cpu_s / matches * 1000, 3) if matches else None,
    }


def ratios(ours: Mapping[str, float | None], peer: Mapping[str, float | None]) -> dict[str, Any]:
    """Throughput as a share of the peer's (1.0 = parity), and our CPU per match as a multiple
    of the peer's (1.0 = parity)."""

    def divide(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    return {
        "throughput": divide(ours["matches_per_s"], peer["matches_per_s"]),
        "cpu_per_match": divide(ours["cpu_ms_per_match"], peer["cpu_ms_per_match"]),
    }


def run_peer(workdir: Path, clients: int, duration: float) -> dict[str, Any]:
    """One level of the peer's own script; its JSON result."""
    env = {**os.environ, "DURATION": str(int(duration)), "OUTDIR": "results"}
    subprocess.run(
        ["bash", "run_bench.sh", str(clients)],
        cwd=workdir,
        env=env,
        check=True,
        timeout=PEER_TIMEOUT,
        stdout=subprocess.DEVNULL,
    )
    result: dict[str, Any] = json.loads((workdir / "results" / f"c{clients}.json").read_text())
    return result


def install_peer(source: Path) -> Path:
    """A writable copy of the peer's folder with its dependencies installed."""
    if not (source / "run_bench.sh").is_file():
        raise SystemExit(f"{source}: not the Colyseus peer folder (no run_bench.sh)")
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise SystemExit("the Colyseus peer needs node and npm on PATH")
    workdir = Path(tempfile.mkdtemp(prefix="cardgame-colyseus-")) / "peer"
    shutil.copytree(source, workdir, ignore=shutil.ignore_patterns("node_modules", "results*"))
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund"],
        cwd=workdir,
        check=True,
        timeout=NPM_TIMEOUT,
        stdout=subprocess.DEVNULL,
    )
    return workdir


def bench_compare(
    source: Path, levels: Sequence[int], pods: int, duration: float
) -> dict[str, Any]:
    from devtools.bench.e2e import bench_e2e
    from devtools.bench.procs import machine

    workdir = install_peer(source)
    rows = []
    try:
        for clients in levels:
            peer_result = run_peer(workdir, clients, duration)
            ours_result = bench_e2e(
                pods,
                clients,
                duration,
                warmup=3.0,
                think=0.0,
                tick=None,
                compression=True,
                auth_url=None,
                game_urls=None,
            )
            peer, ours = peer_figures(peer_result), cardgame_figures(ours_result)
            rows.append(
                {
                    "clients": clients,
                    "colyseus": {**peer, "errors_in_window": peer_result.get("errors_in_window")},
                    "cardgame": {
                        **ours,
                        "errors": ours_result.get("errors"),
                        # Per process and per stage, for the CPU-per-match table.
                        "processes": ours_result.get("processes"),
                        "stages_ms": ours_result.get("stages_ms"),
                    },
                    "ratio": ratios(ours, peer),
                }
            )
    finally:
        shutil.rmtree(workdir.parent, ignore_errors=True)
    return {"pods": pods, "duration_s": duration, "levels": rows, "machine": machine()}


def print_compare(result: Mapping[str, Any]) -> None:
    print(f"cardgame ({result['pods']} pods) vs Colyseus duel cycle, {result['duration_s']} s each")
    print(
        f"{'clients':>8} {'colyseus m/s':>13} {'cardgame m/s':>13} {'ratio':>6}"
        f" {'colyseus cpu ms/m':>18} {'cardgame cpu ms/m':>18} {'cpu x':>6}"
    )
    for row in result["levels"]:
        peer, ours, ratio = row["colyseus"], row["cardgame"], row["ratio"]
        print(
            f"{row['clients']:>8} {peer['matches_per_s']:>13} {ours['matches_per_s']:>13}"
            f" {ratio['throughput']!s:>6} {peer['cpu_ms_per_match']!s:>18}"
            f" {ours['cpu_ms_per_match']!s:>18} {ratio['cpu_per_match']!s:>6}"
        )
