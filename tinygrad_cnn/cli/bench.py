"""``tinygrad-cnn bench``: the CNN workloads of issue #6 timed against PyTorch CPU.

Each (workload, library) pair runs in a fresh subprocess (this file run as a script with
``--child W1 ours``): build, warm up, then time ``--reps`` steps and report median and min.
PyTorch runs with ``torch.set_num_threads`` equal to NumPy's BLAS threads. ``--rounds`` repeats
the pairs interleaved (each keeps its best round: robust to bursts of load on a shared machine);
``--baseline SRC`` also times another source tree's engine (the "before"). The table shows the
ratio ours/torch (medians, same run), W1 as a fraction of this machine's float32 GEMM peak, and
the peak extra memory of a W1 step (tracemalloc, its own subprocess) next to its im2col buffer.
See docs/performance.md.

Workloads (float32, random data, plain SGD):

- W1  SimpleConvNet training step, batch 100, 1x28x28
- W2  LeNet-5 (modern) training step, batch 128
- W3a conv2d fwd+bwd 8x3x224x224 -> 96@11x11/4 pad 2 (input is a leaf: no input gradient)
- W3b conv2d fwd+bwd 8x96x27x27 -> 256@5x5 pad 2
- W3c conv2d fwd+bwd 8x256x13x13 -> 384@3x3 pad 1
- W3d max_pool2d 3/2 fwd+bwd on 8x96x55x55
- W4  SimpleConvNet inference, batch 1000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

# name -> description; the builders below return a zero-argument ``step`` to time.
WORKLOADS: dict[str, str] = {
    "W1": "SimpleConvNet train step, batch 100",
    "W2": "LeNet-5 train step, batch 128",
    "W3a": "conv 3->96 11x11/4 p2, 8x224x224, fwd+bwd",
    "W3b": "conv 96->256 5x5 p2, 8x27x27, fwd+bwd",
    "W3c": "conv 256->384 3x3 p1, 8x13x13, fwd+bwd",
    "W3d": "max_pool2d 3/2, 8x96x55x55, fwd+bwd",
    "W4": "SimpleConvNet inference, batch 1000",
}
# conv workloads: (x shape, out channels, kernel, stride, padding, input requires grad)
_CONVS = {
    "W3a": ((8, 3, 224, 224), 96, 11, 4, 2, False),
    "W3b": ((8, 96, 27, 27), 256, 5, 1, 2, True),
    "W3c": ((8, 256, 13, 13), 384, 3, 1, 1, True),
}
IM2COL_BYTES_W1 = 100 * 24 * 24 * 25 * 4  # the col buffer a W1 step needs: 5.76 MB


def blas_threads() -> int:
    """NumPy's BLAS thread count: threadpoolctl's reading when it is installed, else what OpenBLAS
    reads at start-up (``OPENBLAS_NUM_THREADS``, ``GOTO_NUM_THREADS``, ``OMP_NUM_THREADS``), else
    the cores this process may use. PyTorch gets the same count."""
    import numpy  # noqa: F401  (load the BLAS so threadpoolctl can see it)

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


def w1_gemm_flops() -> float:
    """Multiply-add FLOPs (x2) of the GEMMs a W1 step needs: conv fwd + weight grad, fc1/fc2 fwd + 2 grads."""
    conv = 2 * (100 * 24 * 24) * 25 * 30          # col (57600, 25) @ W.T (25, 30)
    fc1 = 2 * 100 * 4320 * 100
    fc2 = 2 * 100 * 100 * 10
    return 2 * conv + 3 * fc1 + 3 * fc2            # no input grad for the conv (its input is data)


def gemm_peak_gflops(n: int = 2048, reps: int = 7) -> float:
    """Best float32 GFLOP/s of an ``n x n`` np.matmul on this machine."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    np.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


# --------------------------------------------------------------------------- workload builders


def _ours(name: str):
    import numpy as np

    import tinygrad_cnn as tc
    import tinygrad_cnn.functional as F
    from tinygrad_cnn import Tensor, models, optim

    rng = np.random.default_rng(0)
    tc.manual_seed(0)
    if name in ("W1", "W2"):
        model = models.SimpleConvNet() if name == "W1" else models.LeNet5()
        n = 100 if name == "W1" else 128
        x = Tensor(rng.standard_normal((n, 1, 28, 28), dtype=np.float32))
        y = rng.integers(0, 10, n)
        opt = optim.SGD(model.parameters(), lr=0.01)

        def step():
            opt.zero_grad()
            F.softmax_cross_entropy(model(x), y).backward()
            opt.step()
        return step
    if name in _CONVS:
        shape, oc, k, s, p, xgrad = _CONVS[name]
        x = Tensor(rng.standard_normal(shape, dtype=np.float32), requires_grad=xgrad)
        w = Tensor(rng.standard_normal((oc, shape[1], k, k), dtype=np.float32) * 0.05, requires_grad=True)
        b = Tensor(np.zeros(oc, np.float32), requires_grad=True)
        oh = (shape[2] + 2 * p - k) // s + 1
        gy = Tensor(rng.standard_normal((shape[0], oc, oh, oh), dtype=np.float32))

        def step():
            x.grad = w.grad = b.grad = None
            F.conv2d(x, w, b, stride=s, padding=p).backward(gy)
        return step
    if name == "W3d":
        x = Tensor(rng.standard_normal((8, 96, 55, 55), dtype=np.float32), requires_grad=True)
        gy = Tensor(rng.standard_normal((8, 96, 27, 27), dtype=np.float32))

        def step():
            x.grad = None
            F.max_pool2d(x, 3, 2).backward(gy)
        return step
    if name == "W4":
        model = models.SimpleConvNet().eval()
        x = Tensor(rng.standard_normal((1000, 1, 28, 28), dtype=np.float32))

        def step():
            with tc.no_grad():
                model(x)
        return step
    raise ValueError(f"bench: unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")


def _torch(name: str):
    import numpy as np
    import torch
    from torch import nn

    F = torch.nn.functional
    rng = np.random.default_rng(0)
    torch.manual_seed(0)

    def simpleconvnet():
        return nn.Sequential(nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                             nn.Linear(4320, 100), nn.ReLU(), nn.Linear(100, 10))

    def lenet5():
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
                             nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                             nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))

    if name in ("W1", "W2"):
        model = simpleconvnet() if name == "W1" else lenet5()
        n = 100 if name == "W1" else 128
        x = torch.from_numpy(rng.standard_normal((n, 1, 28, 28), dtype=np.float32))
        y = torch.from_numpy(rng.integers(0, 10, n))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)

        def step():
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return step
    if name in _CONVS:
        shape, oc, k, s, p, xgrad = _CONVS[name]
        x = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)).requires_grad_(xgrad)
        w = (torch.from_numpy(rng.standard_normal((oc, shape[1], k, k), dtype=np.float32)) * 0.05).requires_grad_()
        b = torch.zeros(oc, requires_grad=True)
        oh = (shape[2] + 2 * p - k) // s + 1
        gy = torch.from_numpy(rng.standard_normal((shape[0], oc, oh, oh), dtype=np.float32))

        def step():
            x.grad = w.grad = b.grad = None
            F.conv2d(x, w, b, stride=s, padding=p).backward(gy)
        return step
    if name == "W3d":
        x = torch.from_numpy(rng.standard_normal((8, 96, 55, 55), dtype=np.float32)).requires_grad_()
        gy = torch.from_numpy(rng.standard_normal((8, 96, 27, 27), dtype=np.float32))

        def step():
            x.grad = None
            F.max_pool2d(x, 3, 2).backward(gy)
        return step
    if name == "W4":
        model = simpleconvnet().eval()
        x = torch.from_numpy(rng.standard_normal((1000, 1, 28, 28), dtype=np.float32))

        def step():
            with torch.no_grad():
                model(x)
        return step
    raise ValueError(f"bench: unknown workload {name!r}")


def time_step(step, reps: int, warmup: int = 3) -> dict[str, Any]:
    """Median and min (ms) of ``reps`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        ts.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(ts), "min_ms": min(ts), "reps": reps}


def w1_peak_memory() -> dict[str, Any]:
    """Memory of one W1 step above the resident state (parameters, batch), via tracemalloc.

    ``peak_extra_bytes``: the step's peak. ``saved_bytes``: what the recorded graph holds at the
    end of forward (activations, im2col columns, masks). ``transient_bytes``: peak minus that,
    the temporaries of the backward pass.
    """
    import tracemalloc

    import numpy as np

    import tinygrad_cnn as tc
    import tinygrad_cnn.functional as F
    from tinygrad_cnn import Tensor, models, optim

    tc.manual_seed(0)
    rng = np.random.default_rng(0)
    model = models.SimpleConvNet()
    x = Tensor(rng.standard_normal((100, 1, 28, 28), dtype=np.float32))
    y = rng.integers(0, 10, 100)
    opt = optim.SGD(model.parameters(), lr=0.01)

    def step(after_forward=None):
        opt.zero_grad()
        loss = F.softmax_cross_entropy(model(x), y)
        if after_forward:
            after_forward()
        loss.backward()
        opt.step()

    step()
    step()
    opt.zero_grad()  # gradients are not resident between steps
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    saved = []
    step(lambda: saved.append(tracemalloc.get_traced_memory()[0] - base))
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return {"peak_extra_bytes": peak, "saved_bytes": saved[0], "transient_bytes": peak - saved[0],
            "im2col_bytes": IM2COL_BYTES_W1}


def child(name: str, impl: str, reps: int, threads: int) -> dict[str, Any]:
    """Run one workload in this (fresh) process and return its timing."""
    if impl == "mem":
        return w1_peak_memory()
    if impl == "gemm":
        return {"gflops": gemm_peak_gflops()}
    if impl == "torch":
        import torch

        torch.set_num_threads(threads)
        return {**time_step(_torch(name), reps), "threads": torch.get_num_threads()}
    return {**time_step(_ours(name), reps), "threads": threads}


# --------------------------------------------------------------------------- driver

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _spawn(name: str, impl: str, reps: int, threads: int, timeout: float, src: str | None = None) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; ``src`` is the source root of the engine to time."""
    root = os.path.abspath(src or _PACKAGE_ROOT)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, impl, str(reps), str(threads)]
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=root)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _machine(threads: int) -> dict[str, Any]:
    import platform

    import numpy as np

    info: dict[str, Any] = {"numpy": np.__version__, "python": platform.python_version(), "blas_threads": threads,
                            "cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        info["cpu"] = platform.processor() or "?"
    try:
        from threadpoolctl import threadpool_info

        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if blas:
            info["blas"] = f"{blas[0].get('internal_api')} {blas[0].get('version')} ({blas[0].get('architecture')})"
    except ImportError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    try:
        info["loadavg"] = os.getloadavg()
    except OSError:
        pass
    return info


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the lowest median (rounds run interleaved, so load spikes hit one round)."""
    ok = [r for r in runs if "median_ms" in r]
    if not ok:
        return runs[0]
    best = min(ok, key=lambda r: r["median_ms"])
    return {**best, "rounds": [round(r["median_ms"], 3) for r in ok]}


def run_benchmarks(workloads: list[str], reps: int = 15, with_torch: bool = True, memory: bool = True,
                   timeout: float = 300.0, rounds: int = 1, baseline: str | None = None,
                   echo=print) -> dict[str, Any]:
    """Time every workload for this engine (and ``baseline``'s, and PyTorch) in fresh processes.

    The implementations alternate within each of ``rounds`` rounds; each keeps its best round
    (lowest median). Returns the JSON-able result that ``format_table`` prints.
    """
    import importlib.util

    threads = blas_threads()
    with_torch = with_torch and importlib.util.find_spec("torch") is not None
    impls = [("ours", "ours", None)]
    if baseline:
        impls.insert(0, ("before", "ours", baseline))
    if with_torch:
        impls.append(("torch", "torch", None))
    result: dict[str, Any] = {"machine": _machine(threads), "reps": reps, "rounds": rounds,
                              "baseline": baseline, "workloads": {}}
    result["gemm_peak_gflops"] = None  # only W1 is reported as a fraction of it
    if "W1" in workloads:
        result["gemm_peak_gflops"] = max(_spawn("-", "gemm", reps, threads, timeout).get("gflops", 0.0)
                                         for _ in range(max(rounds, 1))) or None
    for name in workloads:
        runs: dict[str, list[dict[str, Any]]] = {key: [] for key, _, _ in impls}
        for _ in range(max(rounds, 1)):
            for key, impl, src in impls:
                runs[key].append(_spawn(name, impl, reps, threads, timeout, src))
        row: dict[str, Any] = {"desc": WORKLOADS[name], **{key: _best(r) for key, r in runs.items()}}
        for key in ("ours", "before"):
            if key in row and "median_ms" in row[key] and "median_ms" in row.get("torch", {}):
                row["ratio" if key == "ours" else "ratio_before"] = row[key]["median_ms"] / row["torch"]["median_ms"]
        peak = result["gemm_peak_gflops"]
        for key in ("ours", "before"):
            if name == "W1" and peak and "median_ms" in row.get(key, {}):
                frac = w1_gemm_flops() / (row[key]["median_ms"] * 1e-3) / (peak * 1e9)
                row["gemm_peak_fraction" if key == "ours" else "gemm_peak_fraction_before"] = frac
                row["gemm_flops"] = w1_gemm_flops()
        result["workloads"][name] = row
        echo(_fmt_row(name, row))
    if memory and "W1" in workloads:
        result["w1_memory"] = _spawn("W1", "mem", reps, threads, timeout)
        if baseline:
            result["w1_memory_before"] = _spawn("W1", "mem", reps, threads, timeout, baseline)
    return result


def _ms(d: dict[str, Any] | None) -> str:
    if not d:
        return f"{'-':>9s} {'-':>9s}"
    if "error" in d:
        return f"{'error':>19s}"
    return f"{d['median_ms']:9.2f} {d['min_ms']:9.2f}"


def _fmt_row(name: str, row: dict[str, Any]) -> str:
    def ratio(key):
        return f"{row[key]:6.2f}x" if key in row else f"{'-':>7s}"
    before = f"{_ms(row.get('before'))} " if "before" in row else ""
    rb = f" {ratio('ratio_before')}" if "before" in row else ""
    return f"{name:5s} {row['desc']:42s} {before}{_ms(row['ours'])} {_ms(row.get('torch'))}{rb} {ratio('ratio')}"


def format_table(result: dict[str, Any]) -> str:
    m = result["machine"]
    has_before = any("before" in r for r in result["workloads"].values())
    head_before = f"{'before med':>9s} {'before min':>9s} " if has_before else ""
    ratio_before = f" {'before/t':>7s}" if has_before else ""
    lines = [
        f"machine: {m.get('cpu')}, {m.get('cpu_count')} cores; numpy {m.get('numpy')} ({m.get('blas', 'BLAS ?')}); "
        f"torch {m.get('torch')}; {m.get('blas_threads')} BLAS/torch threads; load {m.get('loadavg', '?')}",
        f"{result['reps']} reps per process after warm-up, {result.get('rounds', 1)} interleaved round(s), "
        "each keeps its best round; times in ms (median, min); ratio = median / torch median",
        f"{'':5s} {'workload':42s} {head_before}{'ours med':>9s} {'ours min':>9s} {'torch med':>9s} "
        f"{'torch min':>9s}{ratio_before} {'ours/t':>7s}",
    ]
    for name, row in result["workloads"].items():
        lines.append(_fmt_row(name, row))
        for key in ("before", "ours", "torch"):
            if "error" in row.get(key, {}):
                lines.append(f"      {key}: {row[key]['error']}")
    peak = result.get("gemm_peak_gflops")
    if peak:
        lines.append(f"float32 GEMM peak (2048^3 np.matmul, best): {peak:.1f} GFLOP/s")
    w1 = result["workloads"].get("W1", {})
    if "gemm_peak_fraction" in w1:
        before = (f" (before: {100 * w1['gemm_peak_fraction_before']:.1f}%)"
                  if "gemm_peak_fraction_before" in w1 else "")
        lines.append(f"W1: {w1['gemm_flops'] / 1e6:.0f} MFLOP of GEMM per step -> "
                     f"{100 * w1['gemm_peak_fraction']:.1f}% of GEMM peak{before}")
    for key, label in (("w1_memory_before", "before"), ("w1_memory", "ours")):
        mem = result.get(key)
        if not mem or "peak_extra_bytes" not in mem:
            continue
        col = mem["im2col_bytes"]
        lines.append(f"W1 peak extra memory per step ({label}): {mem['peak_extra_bytes'] / 1e6:.2f} MB "
                     f"({mem['peak_extra_bytes'] / col:.2f}x the {col / 1e6:.2f} MB im2col buffer)")
        if "saved_bytes" in mem:
            lines.append(f"   held by the graph after forward: {mem['saved_bytes'] / 1e6:.2f} MB "
                         f"({mem['saved_bytes'] / col:.2f}x); backward temporaries on top: "
                         f"{mem['transient_bytes'] / 1e6:.2f} MB ({mem['transient_bytes'] / col:.2f}x)")
    return "\n".join(lines)


def _workload_list(text: str) -> list[str]:
    """``--workloads``: comma-separated names of :data:`WORKLOADS` (argparse reports a bad one)."""
    names = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown workload(s) {', '.join(unknown) or '(none given)'}; "
                                         f"choose from {','.join(WORKLOADS)}")
    return names


def _source_tree(path: str) -> str:
    """``--baseline``: a directory holding a ``tinygrad_cnn`` package."""
    if not os.path.isdir(os.path.join(path, "tinygrad_cnn")):
        raise argparse.ArgumentTypeError(f"{path}: no tinygrad_cnn package there")
    return path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._common import positive_int  # not at module level: the --child processes run this file as a script

    p.add_argument("--workloads", type=_workload_list, default=list(WORKLOADS),
                   help=f"comma-separated subset of {','.join(WORKLOADS)} (default: all)")
    p.add_argument("--reps", type=positive_int, default=15, help="timed repetitions per workload after warm-up (>= 1)")
    p.add_argument("--rounds", type=positive_int, default=1,
                   help="interleaved rounds per workload (each implementation keeps its best); helps on busy machines")
    p.add_argument("--no-torch", action="store_true", help="time this engine only")
    p.add_argument("--no-memory", action="store_true", help="skip the W1 peak-memory measurement")
    p.add_argument("--baseline", metavar="SRC", type=_source_tree,
                   help="also time the engine in this source tree (e.g. an unmodified checkout) as 'before'")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per subprocess")


def run(args: argparse.Namespace) -> int:
    import importlib.util

    names = args.workloads
    if not args.no_torch and importlib.util.find_spec("torch") is None:
        print("tinygrad-cnn bench: note: PyTorch is not installed, so only this engine is timed (the torch "
              "columns stay empty); install a CPU build of torch to compare, or pass --no-torch", file=sys.stderr)
    result = run_benchmarks(names, args.reps, not args.no_torch, not args.no_memory, args.timeout,
                            args.rounds, args.baseline)
    print(format_table(result))
    if args.json:
        from tinygrad_cnn.serialization import atomic_write

        text = json.dumps(result, indent=2)
        atomic_write(args.json, lambda f: f.write(text), mode="w")
        print(f"wrote {args.json}")
    failed = any("error" in r["ours"] for r in result["workloads"].values())
    return 1 if failed else 0


COMMANDS = {"bench": ("time the CNN workloads against PyTorch CPU (each in a fresh process)", add_arguments, run)}


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        _, _, wname, wimpl, wreps, wthreads = sys.argv
        print(json.dumps(child(wname, wimpl, int(wreps), int(wthreads))))
        sys.exit(0)
    parser = argparse.ArgumentParser(prog="python -m tinygrad_cnn.cli.bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
