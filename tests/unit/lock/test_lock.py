"""The dependency lock (lock/lock.py): current with pyproject.toml, and the check can fail."""

from __future__ import annotations

import importlib.util
import sys

from tests.support import ROOT

_spec = importlib.util.spec_from_file_location("lock_tool", ROOT / "lock" / "lock.py")
assert _spec is not None and _spec.loader is not None
lock = importlib.util.module_from_spec(_spec)
sys.modules["lock_tool"] = lock
_spec.loader.exec_module(lock)


def test_every_lock_was_made_from_the_current_pyproject() -> None:
    assert lock.stale_locks() == [], "run: make lock"


def test_a_changed_dependency_makes_the_lock_stale() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    changed = text.replace('"msgspec>=0.19"', '"msgspec>=0.20"')
    assert changed != text
    assert lock.inputs_digest(changed) != lock.inputs_digest(text)


def test_edits_outside_the_dependency_tables_keep_the_lock() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert lock.inputs_digest(
        text.replace("line-length = 100", "line-length = 99")
    ) == lock.inputs_digest(text)


def test_each_lock_pins_every_package_with_a_hash() -> None:
    for target in lock.TARGETS:
        text = target.path.read_text()
        assert lock.recorded_digest(text) is not None
        requirements = [
            line for line in text.splitlines() if line and not line.startswith((" ", "#"))
        ]
        assert requirements, target.path
        for line in requirements:
            assert "==" in line and line.rstrip().endswith("\\"), line  # hashes follow
