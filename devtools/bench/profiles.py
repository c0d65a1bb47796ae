"""py-spy profiles of the processes under test, for the measured window only.

`py-spy record --format raw` writes collapsed stacks ("outer;...;leaf count"); `summary` turns
them into the share of samples per leaf function (self time) and per project function anywhere
on the stack (inclusive time), which is what a performance change is argued from."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = ("servers/", "devtools/", "fake_client/")


@dataclass
class Profiler:
    """One `py-spy record` per process between `start()` and `stop()`."""

    out: Path
    rate: int = 100
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, pids: dict[str, int]) -> None:
        # Beside this interpreter first: the venv's bin is not always on PATH.
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy"
        )
        if spy is None:
            raise SystemExit("--profile needs py-spy (in the dev dependencies)")
        self.out.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            self.running[name] = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--format",
                    "raw",
                    "--rate",
                    str(self.rate),
                    "--nonblocking",
                    "--output",
                    str(self.path(name)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def path(self, name: str) -> Path:
        return self.out / f"{name}.txt"

    def stop(self) -> dict[str, dict[str, object]]:
        for proc in self.running.values():
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        for proc in self.running.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        return {
            name: summary(self.path(name).read_text()) if self.path(name).exists() else {}
            for name in self.running
        }


def _function(frame: str) -> str:
    """'send (websockets/asyncio/connection.py:123)' -> 'websockets/asyncio/connection.py:send'."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{where}:{name}"


def summary(raw: str, top: int = 15) -> dict[str, object]:
    leaves: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_function(f) for f in stack.split(";")]
        leaves[frames[-1]] += n
        for seen in set(frames):
            if seen.startswith(PROJECT):
                inclusive[seen] += n
    if not total:
        return {"samples": 0}

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in counter.most_common(top)]

    return {"samples": total, "self_pct": share(leaves), "inclusive_pct": share(inclusive)}
