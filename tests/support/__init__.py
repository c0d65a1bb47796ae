"""What the tests share: driving a running stack (`helpers`), the two-pod PvP scenario (`pvp`),
in-process match servers against Redis (`match_servers`), the metric families the servers expose
(`metric_families`), and the tools some tests need (`kustomize`, `promtool`, `fuzz_report`)."""

from __future__ import annotations

from pathlib import Path

# The repository's root (the tests read docs/, deploy/, lock/ and the source tree).
ROOT = Path(__file__).resolve().parents[2]
