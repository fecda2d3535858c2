"""Draw docs/dashboard.png: the generated Grafana dashboard's layout with made-up data.

There is no Grafana to screenshot on a build machine, so this draws each panel of a rendered
dashboard (resources/enadu/grafana/<service>.json) at its gridPos with matplotlib, filled with a
deterministic mock of a blue -> green deploy (and the deploy annotation as a dashed line). The
panel titles, positions and the annotation layer come from the JSON; the curves are invented.

    python3 -m pip install matplotlib   # not a dependency of the project
    python3 scripts/dashboard-picture.py resources/enadu/grafana/backend.json docs/dashboard.png
"""

from __future__ import annotations

import json
import math
import random
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"blue": "#3274d9", "green": "#56a64b"}
SWITCH = 60  # minute of the mock deploy, out of 120


def series(kind: str, colour: str, rng: random.Random) -> tuple[list[int], list[float]]:
    minutes = list(range(120))
    live = (lambda t: t < SWITCH) if colour == "blue" else (lambda t: t >= SWITCH)
    values = []
    for t in minutes:
        noise = rng.uniform(0.9, 1.1)
        wave = 1 + 0.2 * math.sin(t / 9)
        on = live(t) or (colour == "blue" and SWITCH <= t < SWITCH + 1)
        base = {"rate": 40 * wave, "errors": 0.002, "latency": 0.12, "codes": 38 * wave,
                "cpu": 0.35 * wave, "memory": 420e6}[kind]
        values.append(base * noise if on else (float("nan") if kind in ("errors", "latency") else 0.0))
    return minutes, values


def main(source: str, target: str) -> None:
    board = json.load(open(source, encoding="utf-8"))
    rng = random.Random(7)
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"])
    fig = plt.figure(figsize=(14, rows * 0.42), facecolor="#111217")
    fig.suptitle(board["title"], color="white", x=0.01, y=0.995, ha="left", fontsize=13)
    kinds = {2: "rate", 3: "errors", 4: "latency", 5: "codes", 7: "cpu", 8: "memory"}
    for panel in board["panels"]:
        g = panel["gridPos"]
        left, width = g["x"] / 24, g["w"] / 24
        bottom, height = 0.97 - (g["y"] + g["h"]) / (rows + 2), g["h"] / (rows + 2)
        if panel["type"] == "row":
            fig.text(left + 0.01, bottom + height / 2, panel["title"], color="#ccccdc", fontsize=11, weight="bold")
            continue
        ax = fig.add_axes((left + 0.03, bottom + 0.03, width - 0.045, height - 0.07), facecolor="#181b1f")
        ax.set_title(panel["title"], color="#ccccdc", fontsize=9, loc="left")
        for colour, hue in COLOURS.items():
            x, y = series(kinds[panel["id"]], colour, rng)
            ax.plot(x, y, color=hue, linewidth=1.2, label=colour)
        ax.axvline(SWITCH, color="#b877d9", linestyle="--", linewidth=1)
        ax.text(SWITCH + 1, ax.get_ylim()[1] * 0.92, "deploy green", color="#b877d9", fontsize=7)
        ax.tick_params(colors="#8e8e8e", labelsize=7)
        for side in ax.spines.values():
            side.set_color("#2c3235")
        ax.legend(fontsize=7, facecolor="#181b1f", labelcolor="#ccccdc", edgecolor="#2c3235", loc="lower left")
    fig.savefig(target, dpi=80, facecolor=fig.get_facecolor())


if __name__ == "__main__":
    main(*sys.argv[1:3])
