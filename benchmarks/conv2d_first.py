"""Issue #2's first conv benchmark: one SimpleConvNet-sized conv2d forward+backward vs PyTorch CPU.

x (100, 1, 28, 28) float32 (a leaf, as the network's input), weight (30, 1, 5, 5) and bias
require grad; one step = forward + backward with a fixed upstream gradient. Both libraries run
in this process with the same thread count; median and min of ``--reps`` steps after warm-up.

    python benchmarks/conv2d_first.py [--reps 30] [--threads N] [--src ENGINE_ROOT] [--json PATH]

``--src`` times the engine in another source tree (e.g. an unmodified checkout: the "before").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def blas_threads() -> int:
    """NumPy's BLAS thread count: threadpoolctl's reading when installed, else OpenBLAS's environment
    variables, else the usable cores.

    The same as ``tinygrad_cnn.cli.bench.blas_threads``, kept here on purpose: this script must not
    import ``tinygrad_cnn`` before ``--src`` has chosen which engine tree to time (an older tree has
    no ``cli.bench``).
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        counts = []
    else:
        counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    if counts:
        return counts[0]
    for var in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def timeit(step, reps: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        step()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    return {"median_ms": statistics.median(ts) * 1e3, "min_ms": min(ts) * 1e3, "reps": reps}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1],
                    help="source root whose tinygrad_cnn to time (default: this checkout)")
    ap.add_argument("--threads", type=int, default=None, help="PyTorch threads (default: NumPy's BLAS threads)")
    args = ap.parse_args()
    sys.path.insert(0, str(args.src.resolve()))

    import tinygrad_cnn as tc
    import tinygrad_cnn.functional as F

    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((100, 1, 28, 28), dtype=np.float32)
    w_np = (rng.standard_normal((30, 1, 5, 5), dtype=np.float32) * 0.1).astype(np.float32)
    b_np = np.zeros(30, np.float32)
    gy_np = rng.standard_normal((100, 30, 24, 24), dtype=np.float32)

    x = tc.Tensor(x_np)
    w, b = tc.Tensor(w_np, requires_grad=True), tc.Tensor(b_np, requires_grad=True)
    gy = tc.Tensor(gy_np)

    def ours():
        w.grad = b.grad = None
        F.conv2d(x, w, b).backward(gy)

    threads = args.threads or blas_threads()
    results = {"threads": threads, "ours": timeit(ours, args.reps)}
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(threads)
        tx, tgy = torch.from_numpy(x_np), torch.from_numpy(gy_np)
        tw = torch.from_numpy(w_np.copy()).requires_grad_()
        tb = torch.from_numpy(b_np.copy()).requires_grad_()

        def theirs():
            tw.grad = tb.grad = None
            torch.nn.functional.conv2d(tx, tw, tb).backward(tgy)

        results["torch"] = timeit(theirs, args.reps)
        results["torch_version"] = torch.__version__
        # the two agree (a benchmark of wrong numbers is worthless)
        ours()
        theirs()
        np.testing.assert_allclose(w.grad.data, tw.grad.numpy(), rtol=1e-3, atol=1e-2)
    results["engine"] = str(Path(tc.__file__).resolve().parent)
    print(f"conv2d 100x1x28x28 * 30@5x5, forward+backward, float32, {threads} BLAS threads, {args.reps} reps")
    print(f"engine: {results['engine']}")
    print(f"{'impl':8s} {'median ms':>10s} {'min ms':>10s}")
    for k in ("ours", "torch"):
        if k in results:
            print(f"{k:8s} {results[k]['median_ms']:10.2f} {results[k]['min_ms']:10.2f}")
    if "torch" in results:
        results["ratio_median"] = results["ours"]["median_ms"] / results["torch"]["median_ms"]
        print(f"ratio ours/torch (median): {results['ratio_median']:.2f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
