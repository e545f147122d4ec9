"""The sweep report's pictures: best scores, validation curves, score against cost with its
Pareto front, and the score per spacecraft as a heat map."""

from __future__ import annotations

import math
from pathlib import Path

from spark_lightning.inference.writers import pyplot, save_figure


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, score) points no other point beats: none both at most as costly and
    at least as good, and better in one; cheapest first."""
    front = [i for i, (c, s) in enumerate(points)
             if not any(c2 <= c and s2 >= s and (c2, s2) != (c, s) for c2, s2 in points)]
    return sorted(front, key=lambda i: points[i])


def score_plots(rows: list[dict], out: Path, default_monitor: str) -> None:
    """best_score.png (a bar per run) and val_curves.png (the monitor and mean IoU per epoch)."""
    plt = pyplot()
    scored = [r for r in rows if r.get("score") is not None]
    monitor = scored[0]["monitor"] if scored else default_monitor
    fig, ax = plt.subplots(figsize=(8, 0.4 * max(3, len(scored)) + 1))
    ax.barh([r["label"] for r in scored][::-1], [r["score"] for r in scored][::-1])
    ax.set_xlabel(f"best {monitor}")
    ax.set_xlim(0, 1)
    fig.tight_layout()
    save_figure(fig, out / "best_score.png")

    fig, axes = plt.subplots(1, 2, figsize=(12, 4 + 0.25 * len(rows)))
    for ax, key in zip(axes, (monitor, "val/iou")):
        for r in rows:
            points = r["curves"].get(key)
            if points:
                ax.plot(*zip(*points), marker="o", markersize=4 if len(points) > 1 else 8, label=r["label"])
        if not ax.lines:
            ax.text(0.5, 0.5, "no per-epoch values logged (CSV logger off?)", ha="center", transform=ax.transAxes)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", fontsize="small")
    fig.tight_layout(rect=(0, 0.06 * len(rows) / (1 + 0.06 * len(rows)), 1, 1))
    save_figure(fig, out / "val_curves.png")


def cost_plot(rows: list[dict], out: Path) -> list[dict]:
    """score_vs_gflops.png: each run's best score against its network's GFLOPs, the Pareto front
    joined and labelled; returns the front's rows ([] and no file without costed runs)."""
    runs = [r for r in rows if r.get("score") is not None and r.get("gflops") is not None]
    if not runs:
        return []
    front = [runs[i] for i in pareto_front([(r["gflops"], r["score"]) for r in runs])]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter([r["gflops"] for r in runs], [r["score"] for r in runs], color="tab:gray", label="runs")
    ax.plot([r["gflops"] for r in front], [r["score"] for r in front], "o-", color="tab:red", label="Pareto front")
    for r in runs:
        ax.annotate(r["label"], (r["gflops"], r["score"]), fontsize="small", xytext=(4, 4), textcoords="offset points",
                    color="black" if r in front else "tab:gray")
    ax.set_xscale("log")
    ax.margins(x=0.25, y=0.1)
    ax.set_xlabel("GFLOPs per image (cost.size)")
    ax.set_ylabel(f"best {runs[0].get('monitor', 'score')}")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out / "score_vs_gflops.png")
    return front


def by_spacecraft_map(runs: list[dict], names: list[str], path: Path) -> None:
    plt = pyplot()
    grid = [[r["by_spacecraft"].get(n, math.nan) for n in names] for r in runs]
    fig, ax = plt.subplots(figsize=(1 + 0.9 * len(names), 1 + 0.4 * len(runs)))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(runs)), [r["label"] for r in runs])
    fig.colorbar(image, label="SPARK score")
    fig.tight_layout()
    save_figure(fig, path)
