"""What the fuzzers tried in this run; printed at the end of `make test` (see conftest)."""

from __future__ import annotations

# fuzzer name -> {"inputs": n, ...}; filled by tests/integration/stack/test_fuzz.py
COUNTS: dict[str, dict[str, int | str]] = {}
