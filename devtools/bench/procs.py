"""CPU seconds and peak RSS of the processes under test, sampled in a background thread."""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from devtools.bench.profiles import Profiler


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "executable": sys.executable,
    }


def listening_pid(port: int) -> int | None:
    """The process listening on a local TCP port (e.g. a Redis or PostgreSQL we did not start)."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


@dataclass
class _Watched:
    name: str
    proc: psutil.Process
    with_children: bool
    python: bool = False
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    peak_rss: int = 0

    _members: list[psutil.Process] = field(default_factory=list)
    _listed: float = 0.0

    def members(self) -> list[psutil.Process]:
        if not self.with_children:
            return [self.proc]
        # Listing children scans all of /proc: that cost lands on the load generator's own
        # CPU, so the list is refreshed every few seconds, not on each sample.
        if time.monotonic() - self._listed > 5.0:
            self._listed = time.monotonic()
            try:
                self._members = [self.proc, *self.proc.children(recursive=True)]
            except psutil.Error:
                self._members = [self.proc]
        return self._members

    def cpu(self) -> float:
        total = 0.0
        for member in self.members():
            try:
                times = member.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return total

    def rss(self) -> int:
        total = 0
        for member in self.members():
            try:
                total += member.memory_info().rss
            except psutil.Error:
                pass
        return total


@dataclass
class ProcessWatch:
    """`start()` and `stop()` bracket the measured window; RSS is sampled every `interval`.
    With `profile` set, the Python processes are profiled (py-spy) in the same window."""

    interval: float = 0.25
    profile: Path | None = None
    profiles: dict[str, dict[str, object]] = field(default_factory=dict)
    _profiler: Profiler | None = None
    watched: list[_Watched] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _began: float = 0.0
    _ended: float = 0.0

    def add(
        self, name: str, pid: int | None, with_children: bool = False, python: bool = False
    ) -> None:
        if pid is None:
            return
        try:
            self.watched.append(_Watched(name, psutil.Process(pid), with_children, python))
        except psutil.Error:
            pass

    def start(self) -> None:
        for w in self.watched:
            w._listed = 0.0  # the children as they are now
            w.cpu_start = w.cpu()
            w.peak_rss = w.rss()
        if self.profile is not None:
            self._profiler = Profiler(self.profile)
            self._profiler.start({w.name: w.proc.pid for w in self.watched if w.python})
        self._began = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            for w in self.watched:
                w.peak_rss = max(w.peak_rss, w.rss())

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._ended = time.perf_counter()
        for w in self.watched:
            w._listed = 0.0
            w.cpu_end = w.cpu()
            w.peak_rss = max(w.peak_rss, w.rss())
        if self._profiler is not None:
            self.profiles = self._profiler.stop()

    def report(self) -> dict[str, dict[str, float]]:
        wall = max(self._ended - self._began, 1e-9)
        return {
            w.name: {
                "cpu_s": round(w.cpu_end - w.cpu_start, 2),
                "cpu_pct": round(100 * (w.cpu_end - w.cpu_start) / wall, 1),
                "peak_rss_mib": round(w.peak_rss / 2**20, 1),
            }
            for w in self.watched
        }
