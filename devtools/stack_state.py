"""State files of the running `cardgame up` stacks: one JSON file per stack, named by its id.

`cardgame up` writes `<tmp>/cardgame-stacks/<instance>.json` once its stack is healthy and
removes that file, and only that one, when it stops. Several stacks can run side by side (on
other ports); `cardgame stacks` and `cardgame-console` read the directory to find them. A file
whose process is gone (the stack was SIGKILLed, the machine crashed) is stale: readers skip it
and remove it. Parsing and describing are pure; only `write`, `remove` and `running` touch
the disk.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# tempfile.gettempdir() follows TMPDIR, so a test (or a user) can keep its stacks apart. One
# directory per user: another user's directory in a shared /tmp is not ours to write.
STATE_DIR = Path(tempfile.gettempdir()) / f"cardgame-stacks-{os.getuid()}"


@dataclass(frozen=True)
class StackState:
    instance: str
    pid: int  # the `cardgame up` process
    started: float  # Unix time the stack became healthy
    pods: int
    auth_url: str
    game_urls: list[str]
    steam_sim_url: str
    redis: str
    database: str
    namespace: str
    log_dir: str
    endpoints: list[str] = field(default_factory=list)  # as `cardgame up` printed them

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def describe(self) -> str:
        """One line for `cardgame stacks` and the console's messages."""
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return (
            f"{self.instance}  pid {self.pid}  started {started}  pods {self.pods}  "
            f"auth {self.auth_url}  redis {self.redis}  namespace {self.namespace}"
        )


def parse(text: str) -> StackState | None:
    """A state file's content, or None when it is not one (half written, another version)."""
    try:
        raw: Any = json.loads(text)
        return StackState(
            instance=str(raw["instance"]),
            pid=int(raw["pid"]),
            started=float(raw["started"]),
            pods=int(raw["pods"]),
            auth_url=str(raw["auth_url"]),
            game_urls=[str(url) for url in raw["game_urls"]],
            steam_sim_url=str(raw["steam_sim_url"]),
            redis=str(raw["redis"]),
            database=str(raw["database"]),
            namespace=str(raw["namespace"]),
            log_dir=str(raw["log_dir"]),
            endpoints=[str(url) for url in raw.get("endpoints", [])],
        )
    except (ValueError, TypeError, KeyError):
        return None


def newest_first(states: list[StackState]) -> list[StackState]:
    return sorted(states, key=lambda state: state.started, reverse=True)


def pick(states: list[StackState]) -> tuple[StackState | None, str]:
    """The stack a tool should use when not told, and a notice when that was a choice: the
    newest, since the one just started is the one people mean."""
    if not states:
        return None, ""
    chosen = newest_first(states)[0]
    if len(states) == 1:
        return chosen, ""
    return chosen, (
        f"{len(states)} stacks run; using the newest, {chosen.instance} "
        f"(auth {chosen.auth_url}); `cardgame stacks` lists them"
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def path_for(instance: str, directory: Path = STATE_DIR) -> Path:
    return directory / f"{instance}.json"


def write(state: StackState, directory: Path = STATE_DIR) -> Path:
    """Write atomically (rename), so a reader never sees half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = path_for(state.instance, directory)
    partial = path.with_suffix(".json.partial")
    partial.write_text(state.to_json())
    partial.replace(path)
    return path


def remove(instance: str, directory: Path = STATE_DIR) -> None:
    path_for(instance, directory).unlink(missing_ok=True)


def running(
    directory: Path = STATE_DIR, alive: Callable[[int], bool] = pid_alive
) -> list[StackState]:
    """The stacks whose process still runs, newest first; stale files are removed."""
    found: list[StackState] = []
    for path in directory.glob("*.json"):
        try:
            state = parse(path.read_text())
        except OSError:  # removed by its stack while we listed
            continue
        if state is None:
            continue
        if alive(state.pid):
            found.append(state)
        else:
            path.unlink(missing_ok=True)
    return newest_first(found)
