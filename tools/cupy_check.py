"""Run the engine on CuPy arrays and compare with NumPy, op by op: what the array-module handle covers.

Every op picks its array module from its data (``tinygrad_cnn.backend.get_array_module``), so a
Tensor built from a CuPy array should run on the GPU with no other change. This script checks that
claim: each case runs forward and backward once on NumPy and once on CuPy arrays (float64), and
compares the output and every input gradient. A case that raises names the file and line of the
NumPy-only call. Needs a CUDA GPU and CuPy; ``--xp numpy`` runs both sides on NumPy (a self-test).

    python tools/cupy_check.py [--xp cupy|numpy] [--steps 20]
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinygrad_cnn as tc  # noqa: E402
from tinygrad_cnn import functional as F  # noqa: E402
from tinygrad_cnn.backend import as_numpy  # noqa: E402

CASES = {  # name -> (function of Tensors, input shapes; a shape of ("int", high, n) is an int label array)
    "relu": (lambda x: F.relu(x * 1.0), [(4, 5)]),
    "relu_inplace_after_conv": (lambda x, w: F.relu(F.conv2d(x, w, None, 1, 1), inplace=True),
                                [(2, 3, 6, 6), (4, 3, 3, 3)]),
    "sigmoid": (lambda x: F.sigmoid(x), [(4, 5)]),
    "tanh": (lambda x: F.tanh(x), [(4, 5)]),
    "linear": (lambda x, w, b: F.linear(x, w, b), [(4, 5), (3, 5), (3,)]),
    "softmax": (lambda x: F.softmax(x, -1), [(4, 5)]),
    "log_softmax": (lambda x: F.log_softmax(x, -1), [(4, 5)]),
    "cross_entropy": (lambda x, t: F.cross_entropy(x, t), [(6, 5), ("int", 5, 6)]),
    "cross_entropy_smoothing": (lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1),
                                [(6, 5), ("int", 5, 6)]),
    "nll_loss": (lambda x, t: F.nll_loss(F.log_softmax(x, -1), t), [(6, 5), ("int", 5, 6)]),
    "conv2d_per_image": (lambda x, w, b: F.conv2d(x, w, b, 1, 0), [(3, 1, 12, 12), (4, 1, 5, 5), (4,)]),
    "conv2d_long_rows": (lambda x, w, b: F.conv2d(x, w, b, 1, 2), [(3, 1, 28, 28), (6, 1, 5, 5), (6,)]),
    "conv2d_batch_inner": (lambda x, w, b: F.conv2d(x, w, b), [(32, 6, 14, 14), (16, 6, 5, 5), (16,)]),
    "conv2d_wide": (lambda x, w, b: F.conv2d(x, w, b, 1, 2), [(2, 32, 27, 27), (64, 32, 5, 5), (64,)]),
    "conv2d_strided": (lambda x, w: F.conv2d(x, w, None, 4, 2), [(2, 3, 63, 63), (8, 3, 11, 11)]),
    "conv2d_dilation_groups": (lambda x, w: F.conv2d(x, w, None, 1, 1, 2, 2), [(2, 4, 9, 9), (6, 2, 3, 3)]),
    "conv2d_reflect": (lambda x, w: F.conv2d(F.pad(x, (1, 1, 1, 1), "reflect"), w), [(2, 3, 7, 7), (4, 3, 3, 3)]),
    "conv_transpose2d": (lambda x, w: F.conv_transpose2d(x, w, None, 2, 1, 1), [(2, 4, 5, 5), (4, 3, 3, 3)]),
    "max_pool2d_2x2": (lambda x: F.max_pool2d(x, 2), [(2, 3, 8, 8)]),
    "max_pool2d_3s2": (lambda x: F.max_pool2d(x, 3, 2), [(2, 3, 11, 11)]),
    "max_pool2d_pad_ceil": (lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), [(2, 3, 10, 10)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1), [(2, 3, 9, 9)]),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (3, 2)), [(2, 3, 7, 5)]),
    "local_response_norm": (lambda x: F.local_response_norm(x, 5, 0.5, 0.75, 2.0), [(2, 7, 3, 4)]),
    "pad_constant": (lambda x: F.pad(x, (1, 2, 0, 1), value=0.5), [(2, 3, 4, 4)]),
    "pad_circular": (lambda x: F.pad(x, (1, 2, 2, 1), "circular"), [(2, 3, 4, 4)]),
    "cross_entropy_weight_ignore": (lambda x, t, w: F.cross_entropy(x, t, w.detach(), ignore_index=2),
                                    [(6, 5), ("int", 5, 6), (5,)]),
    "conv_transpose2d_groups": (lambda x, w: F.conv_transpose2d(x, w, None, 2, 1, 1, 2),
                                [(2, 4, 5, 5), (4, 3, 3, 3)]),
    "avg_pool2d_ceil_no_pad_count": (lambda x: F.avg_pool2d(x, 3, 2, 1, True, False), [(2, 3, 8, 8)]),
    "dropout": (lambda x: F.dropout(x, 0.3), [(4, 50)]),
    "reshape_transpose_index": (lambda x: x.reshape(2, 12).transpose(1, 0)[3:9:2], [(2, 3, 4)]),
    "flatten": (lambda x: tc.flatten(x, 1), [(2, 3, 4)]),
}


def _inputs(shapes, xp, rng):
    out = []
    for s in shapes:
        if s[0] == "int":
            out.append(xp.asarray(rng.integers(0, s[1], s[2])))
        else:
            out.append(tc.Tensor(xp.asarray(rng.standard_normal(s)), requires_grad=True))
    return out


def _run(fn, shapes, xp, seed):
    tc.manual_seed(seed)  # dropout draws its mask from the engine's (NumPy) generator on both sides
    rng = np.random.default_rng(seed)
    ins = _inputs(shapes, xp, rng)
    y = fn(*ins)
    seed_grad = xp.asarray(np.random.default_rng(seed + 1).standard_normal(y.shape))
    y.backward(tc.Tensor(seed_grad))
    grads = [None if t.grad is None else as_numpy(t.grad.data) for t in ins if isinstance(t, tc.Tensor)]
    return as_numpy(y.data), grads, type(y.data).__module__.split(".")[0]


def _where(exc: BaseException) -> str:
    """The innermost frame in tinygrad_cnn: the call that did not take the array module's path."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "tinygrad_cnn" in f.filename]
    f = frames[-1] if frames else traceback.extract_tb(exc.__traceback__)[-1]
    return f"{Path(f.filename).name}:{f.lineno} `{(f.line or '').strip()[:80]}`"


def _close(a, b) -> bool:
    """Equal up to float64 rounding; None (no gradient) only matches None."""
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-7, atol=1e-9)


def check_ops(xp) -> int:
    failed = 0
    for name, (fn, shapes) in CASES.items():
        try:
            ref_y, ref_g, _ = _run(fn, shapes, np, 0)
            y, g, module = _run(fn, shapes, xp, 0)
            ok = module == xp.__name__ and _close(y, ref_y) and all(map(_close, g, ref_g))
            status = "ok" if ok else f"MISMATCH (output module {module})"
        except Exception as exc:  # noqa: BLE001 - every failure is reported, and the next case runs
            ok, status = False, f"ERROR {type(exc).__name__}: {str(exc)[:120]} at {_where(exc)}"
        failed += not ok
        print(f"{name:28s} {status}", flush=True)
    print(f"ops: {len(CASES) - failed} of {len(CASES)} match NumPy on {xp.__name__}", flush=True)
    return failed


def _to(model, xp) -> None:
    for p in model.parameters():
        p.data = xp.asarray(p.data)


def check_training(xp, steps: int) -> int:
    """A few SGD steps of SimpleConvNet and LeNet-5 on both array modules; losses must agree."""
    failed = 0
    sgd = lambda ps: tc.optim.SGD(ps, lr=0.01, momentum=0.9, weight_decay=1e-4)  # noqa: E731
    adam = lambda ps: tc.optim.Adam(ps, lr=1e-3)  # noqa: E731
    for name, make, n, optimizer in (("SimpleConvNet", tc.models.SimpleConvNet, 100, sgd),
                                     ("LeNet5", tc.models.LeNet5, 128, adam)):
        losses, times = {}, {}
        for side, mod in (("numpy", np), ("test", xp)):
            try:
                tc.manual_seed(0)
                model = make()
                _to(model, mod)
                rng = np.random.default_rng(0)
                x = tc.Tensor(mod.asarray(rng.standard_normal((n, 1, 28, 28), dtype=np.float32)))
                t = mod.asarray(rng.integers(0, 10, n))
                opt = optimizer(model.parameters())
                ls, ts = [], []
                for _ in range(steps):
                    t0 = time.perf_counter()
                    opt.zero_grad()
                    loss = F.cross_entropy(model(x), t)
                    loss.backward()
                    opt.step()
                    ls.append(float(as_numpy(loss.data)))
                    if mod is not np:
                        mod.cuda.Device().synchronize()
                    ts.append(time.perf_counter() - t0)
                losses[side], times[side] = ls, 1e3 * float(np.median(ts[3:] or ts))
            except Exception as exc:  # noqa: BLE001
                print(f"train {name} on {mod.__name__}: ERROR {type(exc).__name__}: {str(exc)[:120]} at "
                      f"{_where(exc)}", flush=True)
                failed += 1
        if len(losses) == 2:
            a, b = losses["numpy"], losses["test"]
            ok = np.allclose(a, b, rtol=1e-3)
            failed += not ok
            print(f"train {name}: {steps} {type(opt).__name__} steps, float32, last loss numpy {a[-1]:.5f} vs "
                  f"{xp.__name__} {b[-1]:.5f} ({'ok' if ok else 'MISMATCH'}); median step numpy "
                  f"{times['numpy']:.2f} ms, {xp.__name__} {times['test']:.2f} ms", flush=True)
    return failed


def check_gradcheck(xp) -> int:
    """``tc.gradcheck`` (full and fast) and ``tc.gradgradcheck`` themselves on GPU arrays (float64)."""
    rng = np.random.default_rng(0)
    x = tc.Tensor(xp.asarray(rng.standard_normal((2, 2, 5, 5))), requires_grad=True)
    w = tc.Tensor(xp.asarray(rng.standard_normal((3, 2, 3, 3))), requires_grad=True)
    f = lambda x, w: F.max_pool2d(F.conv2d(x, w, None, 1, 1), 2)  # noqa: E731
    try:
        ok = tc.gradcheck(f, (x, w)) and tc.gradcheck(f, (x, w), fast_mode=True) and tc.gradgradcheck(
            lambda x, w: F.conv2d(x, w, None, 1, 1).tanh(), (x, w), fast_mode=True)
        print(f"gradcheck on {xp.__name__}: {'ok' if ok else 'FAILED'}", flush=True)
    except Exception as exc:  # noqa: BLE001
        ok = False
        print(f"gradcheck on {xp.__name__}: ERROR {type(exc).__name__}: {str(exc)[:120]} at {_where(exc)}", flush=True)
    return int(not ok)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--xp", choices=["cupy", "numpy"], default="cupy")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    if args.xp == "cupy":
        import cupy as xp

        print(f"cupy {xp.__version__}, {xp.cuda.runtime.getDeviceProperties(0)['name'].decode()}", flush=True)
    else:
        xp = np
    failed = check_ops(xp)
    failed += check_training(xp, args.steps)
    failed += check_gradcheck(xp)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
