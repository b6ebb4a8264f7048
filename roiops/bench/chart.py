"""speedup.png: one horizontal bar per case and dtype from the 1x line (parity) to torchvision's
time over roiops', on a log scale: right is faster, left is slower."""

from __future__ import annotations

from pathlib import Path

FASTER, SAME, SLOWER = "#2a9d5c", "#9a9a9a", "#d1495b"
PARITY = 0.05  # the 2-core CI machine's run-to-run noise on the same code


def speedup_chart(path: Path, header: dict, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    measured = [row for row in rows if "speedup" in row][::-1]  # the table's first case on top
    if not measured:
        return
    dtypes = {row["dtype"] for row in measured}
    labels = [row["case"] + (f" [{row['dtype']}]" if len(dtypes) > 1 else "") for row in measured]
    speedups = [row["speedup"] for row in measured]
    figure, axes = plt.subplots(figsize=(11, 0.32 * len(measured) + 1.6))
    colours = [FASTER if s > 1 + PARITY else SLOWER if s < 1 - PARITY else SAME for s in speedups]
    axes.barh(range(len(measured)), [s - 1 for s in speedups], left=1, color=colours)
    axes.set_xscale("log")
    low = min(0.5, min(speedups) / 1.3)
    high = max(2.0, max(speedups) * 1.6)
    axes.set_xlim(low, high)
    axes.axvline(1.0, color="black", linewidth=1)
    for y, s in enumerate(speedups):
        axes.text(max(s, 1) * 1.03, y, f"{s:.2f}x", va="center", fontsize=8)
    axes.set_yticks(range(len(measured)), labels, fontsize=8)
    ticks = [t for t in (0.5, 1, 2, 3, 5, 10, 20, 50, 100) if low <= t <= high]
    axes.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    axes.minorticks_off()
    axes.set_xlabel("speedup: torchvision time / roiops time (log scale; right of 1x is faster)")
    axes.set_title(
        f"roiops {header['roiops']} vs torchvision {header['torchvision']} on {header['device']}"
        f"\ntorch {header['torch']}, {header['date']}",
        fontsize=10,
    )
    axes.grid(axis="x", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in (FASTER, SAME, SLOWER)]
    names = ["roiops faster", f"within {PARITY:.0%} (noise)", "roiops slower"]
    axes.legend(handles, names, loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
