"""The issue-#6 workloads (defined in ``tinygrad_cnn/cli/bench.py``, so ``tinygrad-cnn bench`` has
them too), plus a per-op profile of one of them with ``tc.profile()``.

    python benchmarks/workloads.py W1 [--steps 15]     # per-op table of the median step
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinygrad_cnn.cli.bench import WORKLOADS, _ours, _torch, blas_threads  # noqa: E402

__all__ = ["WORKLOADS", "build", "build_torch", "profile_workload"]

build, build_torch = _ours, _torch


def profile_workload(name: str, steps: int = 15, warmup: int = 3):
    """Profile ``steps`` steps of workload ``name``; returns the Profile of the median step."""
    import tinygrad_cnn as tc

    step = build(name)
    for _ in range(warmup):
        step()
    profs = []
    for _ in range(steps):
        with tc.profile(verbose=False) as prof:
            step()
        profs.append(prof)
    walls = [p.wall for p in profs]
    return profs[walls.index(statistics.median_low(walls))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", choices=list(WORKLOADS))
    ap.add_argument("--steps", type=int, default=15)
    args = ap.parse_args()
    prof = profile_workload(args.workload, args.steps)
    print(f"{args.workload}: {WORKLOADS[args.workload]}; {blas_threads()} BLAS threads; median of {args.steps} steps")
    print(prof.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
