"""The state files of running stacks: round trip, stale ones removed, which stack to pick."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from devtools import stack_state


def _state(instance: str, pid: int, started: float) -> stack_state.StackState:
    return stack_state.StackState(
        instance=instance,
        pid=pid,
        started=started,
        pods=1,
        auth_url="http://127.0.0.1:8000",
        game_urls=["ws://127.0.0.1:8100/ws"],
        steam_sim_url="",
        redis="redis://r",
        database="postgresql://d",
        namespace="cg",
        log_dir="/tmp/x",
    )


def test_state_files_round_trip_and_stale_ones_are_removed(tmp_path: Path) -> None:
    old, new, dead = _state("old", 11, 100.0), _state("new", 12, 200.0), _state("dead", 13, 300.0)
    for state in (old, new, dead):
        stack_state.write(state, tmp_path)
    (tmp_path / "junk.json").write_text("{not json")
    assert stack_state.parse(stack_state.path_for("old", tmp_path).read_text()) == old
    found = stack_state.running(tmp_path, alive=lambda pid: pid != 13)
    assert found == [new, old]
    assert not stack_state.path_for("dead", tmp_path).exists()
    assert (tmp_path / "junk.json").exists()  # not ours to judge: left alone
    stack_state.remove("old", tmp_path)
    assert stack_state.running(tmp_path, alive=lambda pid: True) == [new]
    assert stack_state.running(tmp_path / "none") == []


def test_pick_uses_the_only_stack_or_the_newest_and_says_so() -> None:
    old, new = _state("old", 1, 100.0), _state("new", 2, 200.0)
    assert stack_state.pick([]) == (None, "")
    assert stack_state.pick([old]) == (old, "")
    chosen, notice = stack_state.pick([old, new])
    assert chosen == new
    assert notice.startswith("2 stacks run; using the newest, new") and "cardgame stacks" in notice


def test_state_file_of_this_process_counts_as_running(tmp_path: Path) -> None:
    mine = _state("mine", os.getpid(), time.time())
    stack_state.write(mine, tmp_path)
    assert stack_state.running(tmp_path) == [mine]
    assert json.loads(stack_state.path_for("mine", tmp_path).read_text())["pid"] == os.getpid()
