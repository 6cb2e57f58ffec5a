"""Bar chart of the benchmark JSON files: time ratio to PyTorch CPU per workload, before vs after.

    python benchmarks/plot.py benchmarks/results/baseline.json benchmarks/results/after.json \\
        [--labels before,after] [--out docs/img/performance.png]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGETS = {"W1": 1.0, "W2": 1.0, "W3a": 1.5, "W3b": 1.5, "W3c": 1.5, "W3d": 1.5, "W4": 0.75}


def markdown_table(run: dict) -> str:
    """The run as a Markdown table: medians (ms), ratios to PyTorch, targets."""
    has_before = any("before" in r for r in run["workloads"].values())
    head = "| workload | " + ("before ms | " if has_before else "") + "after ms | PyTorch ms | " + \
        ("before / PyTorch | " if has_before else "") + "after / PyTorch | target |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]

    def ms(d):
        return f"{d['median_ms']:.1f}" if d and "median_ms" in d else "-"

    def ratio(row, key):
        return f"{row[key]:.2f}x" if key in row else "-"

    for name, row in run["workloads"].items():
        cells = [f"{name} {row['desc']}"]
        if has_before:
            cells.append(ms(row.get("before")))
        cells += [ms(row.get("ours")), ms(row.get("torch"))]
        if has_before:
            cells.append(ratio(row, "ratio_before"))
        cells += [f"**{ratio(row, 'ratio')}**", f"<= {TARGETS.get(name, float('nan')):.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="+", type=Path, help="result files written by benchmarks/run.py --json")
    ap.add_argument("--labels", default=None, help="comma-separated legend labels (default: file stems)")
    ap.add_argument("--out", type=Path, default=Path("docs/img/performance.png"))
    ap.add_argument("--markdown", action="store_true", help="print each file as a Markdown table instead")
    args = ap.parse_args()
    if args.markdown:
        for p in args.json:
            print(markdown_table(json.loads(p.read_text())))
            print()
        return 0

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from tinygrad_cnn.serialization import atomic_write

    runs = [json.loads(p.read_text()) for p in args.json]
    labels = args.labels.split(",") if args.labels else [p.stem for p in args.json]
    fig, axes = plt.subplots(1, len(runs), figsize=(6.5 * len(runs), 4.2), dpi=110, squeeze=False)
    for ax, run, label in zip(axes[0], runs, labels):
        names = [w for w in TARGETS if w in run["workloads"]]
        series = [("ratio", "after")]
        if any("ratio_before" in run["workloads"][w] for w in names):
            series.insert(0, ("ratio_before", "before"))
        width = 0.8 / len(series)
        xs = np.arange(len(names))
        for i, (key, name) in enumerate(series):
            ratios = [run["workloads"][w].get(key, np.nan) for w in names]
            bars = ax.bar(xs + (i - (len(series) - 1) / 2) * width, ratios, width, label=name,
                          color="tab:gray" if name == "before" else "tab:blue")
            for bar, r in zip(bars, ratios):
                if np.isfinite(r):
                    ax.annotate(f"{r:.2f}", (bar.get_x() + bar.get_width() / 2, r), ha="center", va="bottom",
                                fontsize=7)
        for j, w in enumerate(names):
            ax.hlines(TARGETS[w], j - 0.45, j + 0.45, colors="tab:red", linestyles="dashed", linewidth=1)
        ax.axhline(1.0, color="k", linewidth=0.5)
        ax.set_yscale("log")
        ax.set_xticks(xs, names)
        ax.set_ylabel("median time / PyTorch median (log)")
        m = run["machine"]
        ax.set_title(f"{label}: {m.get('blas_threads')} BLAS/torch thread(s); red dashes: targets", fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle("tinygrad_cnn vs PyTorch CPU, same run (lower is faster)", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write(args.out, lambda f: f.write(buf.getvalue()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
