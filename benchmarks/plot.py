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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="+", type=Path, help="result files written by benchmarks/run.py --json")
    ap.add_argument("--labels", default=None, help="comma-separated legend labels (default: file stems)")
    ap.add_argument("--out", type=Path, default=Path("docs/img/performance.png"))
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from tinygrad_cnn.serialization import atomic_write

    runs = [json.loads(p.read_text()) for p in args.json]
    labels = args.labels.split(",") if args.labels else [p.stem for p in args.json]
    names = [w for w in TARGETS if any(w in r["workloads"] for r in runs)]
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=120)
    width = 0.8 / len(runs)
    xs = np.arange(len(names))
    for i, (run, label) in enumerate(zip(runs, labels)):
        ratios = [run["workloads"].get(w, {}).get("ratio", np.nan) for w in names]
        bars = ax.bar(xs + (i - (len(runs) - 1) / 2) * width, ratios, width, label=label)
        for b, r in zip(bars, ratios):
            if np.isfinite(r):
                ax.annotate(f"{r:.2f}", (b.get_x() + b.get_width() / 2, r), ha="center", va="bottom", fontsize=7)
    for j, w in enumerate(names):
        ax.hlines(TARGETS[w], j - 0.45, j + 0.45, colors="k", linestyles="dashed", linewidth=1)
    ax.axhline(1.0, color="grey", linewidth=0.6)
    ax.set_yscale("log")
    ax.set_xticks(xs, names)
    ax.set_ylabel("time / PyTorch CPU time (median, log)")
    m = runs[-1]["machine"]
    ax.set_title(f"tinygrad_cnn vs PyTorch CPU ({m.get('blas_threads')} threads; dashed: target)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write(args.out, lambda f: f.write(buf.getvalue()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
