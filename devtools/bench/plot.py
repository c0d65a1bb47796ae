"""Plot e2e results (throughput and p99 against clients, one line per pod count) as plain SVG.

    python -m devtools.bench.plot bench-results/matrix docs/performance.svg

Reads every `e2e-*.json` in the folder. Hand-written SVG: no plotting library needed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

W, H = 360, 260  # one panel
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 30, 45
COLOURS = {1: "#1f77b4", 2: "#d62728", 3: "#2ca02c", 4: "#9467bd"}


def load(folder: Path) -> dict[int, list[tuple[int, float, float]]]:
    series: dict[int, list[tuple[int, float, float]]] = {}
    for path in sorted(folder.glob("e2e-*.json")):
        r = json.loads(path.read_text())
        p99 = r["stages_ms"]["whole cycle"]["p99"] or 0.0
        series.setdefault(r["pods"], []).append((r["clients"], r["matches_per_s"], p99))
    return {pods: sorted(points) for pods, points in sorted(series.items())}


def _nice(top: float) -> float:
    step = 10 ** max(0, len(str(int(top))) - 1)
    return float((int(top / step) + 1) * step)


def panel(
    x0: int, title: str, ylabel: str, series: dict[int, list[tuple[float, float]]], xs: list[int]
) -> list[str]:
    ymax = _nice(max((y for pts in series.values() for _, y in pts), default=1.0))
    xmax = max(xs)

    def px(x: float) -> float:
        return x0 + LEFT + (x / xmax) * (W - LEFT - RIGHT)

    def py(y: float) -> float:
        return TOP + (1 - y / ymax) * (H - TOP - BOTTOM)

    out = [
        f'<text x="{x0 + W / 2}" y="18" text-anchor="middle" font-weight="bold">{title}</text>',
        f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(xmax)}" y2="{py(0)}" stroke="black"/>',
        f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(0)}" y2="{py(ymax)}" stroke="black"/>',
        f'<text x="{x0 + 14}" y="{TOP + (H - TOP - BOTTOM) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 {x0 + 14} {TOP + (H - TOP - BOTTOM) / 2})">{ylabel}</text>',
        f'<text x="{x0 + W / 2}" y="{H - 8}" text-anchor="middle">clients</text>',
    ]
    for i in range(5):
        y = ymax * i / 4
        out.append(f'<text x="{px(0) - 6}" y="{py(y) + 4}" text-anchor="end">{y:g}</text>')
        out.append(f'<line x1="{px(0)}" y1="{py(y)}" x2="{px(xmax)}" y2="{py(y)}" stroke="#ddd"/>')
    for x in xs:
        out.append(f'<text x="{px(x)}" y="{py(0) + 16}" text-anchor="middle">{x}</text>')
    for pods, pts in series.items():
        colour = COLOURS.get(pods, "black")
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out += [
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>' for x, y in pts
        ]
    return out


def svg(data: dict[int, list[tuple[int, float, float]]]) -> str:
    xs = sorted({c for pts in data.values() for c, _, _ in pts})
    throughput = {pods: [(float(c), m) for c, m, _ in pts] for pods, pts in data.items()}
    p99 = {pods: [(float(c), q) for c, _, q in pts] for pods, pts in data.items()}
    body: list[str] = []
    body += panel(0, "completed matches per second", "matches/s", throughput, xs)
    body += panel(W, "p99 enqueue -> battle result", "ms", p99, xs)
    for i, pods in enumerate(data):
        y = TOP + 4 + 16 * i
        body.append(
            f'<rect x="{2 * W - 90}" y="{y - 9}" width="10" height="10" '
            f'fill="{COLOURS.get(pods, "black")}"/>'
        )
        body.append(f'<text x="{2 * W - 75}" y="{y}">{pods} pod{"s" if pods > 1 else ""}</text>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H}" '
        f'font-family="sans-serif" font-size="11">\n'
        '<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n"
    )


def main(argv: list[str]) -> int:
    folder, out = Path(argv[0]), Path(argv[1])
    data: dict[int, Any] = load(folder)
    if not data:
        print(f"no e2e-*.json in {folder}", file=sys.stderr)
        return 1
    out.write_text(svg(data))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
