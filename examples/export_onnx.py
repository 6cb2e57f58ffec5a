"""Export SimpleConvNet to ONNX, run it in onnxruntime, compare, and load it back.

Trains the book's SimpleConvNet for a hundred steps on the MNIST digits packaged with the
library (so the comparison is between real, confident predictions), exports it with a symbolic
batch axis, runs the file in onnxruntime on a batch of a different size, compares the logits
with this engine's, then imports the file back with ``tc.onnx.load`` and checks that the
imported module gives the same logits and the same gradients.

    pip install ".[onnx]" && python examples/export_onnx.py [--steps 100] [-o simpleconvnet.onnx]

Exits with status 1 if any comparison fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, optim
from tinygrad_cnn.data import DataLoader, load_dataset
from tinygrad_cnn.models import SimpleConvNet


def train(model: SimpleConvNet, x: np.ndarray, y: np.ndarray, steps: int) -> float:
    """A few Adam steps on mini-batches of 100; returns the last loss."""
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss, step = None, 0
    while step < steps:
        for xb, yb in DataLoader(x, y, batch_size=100, shuffle=True, seed=step):
            loss = F.softmax_cross_entropy(model(Tensor(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step == steps:
                break
    return float(loss.item()) if loss is not None else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps before export (default 100)")
    parser.add_argument("-o", "--output", default=None, help="where to write the .onnx (default: a temp dir)")
    args = parser.parse_args(argv)
    try:
        import onnxruntime as ort
    except ImportError:
        print("this example needs the onnx extra: pip install 'tinygrad-cnn[onnx]'", file=sys.stderr)
        return 2

    tc.manual_seed(0)
    (x_train, y_train), (x_test, y_test) = load_dataset("mnist-sample")
    model = SimpleConvNet(weight_init_std="he")
    loss = train(model, x_train, y_train, args.steps)
    print(f"trained SimpleConvNet for {args.steps} steps, last loss {loss:.3f}")

    # 1. export: one traced forward pass (batch 1); the file accepts any batch size
    out = Path(args.output) if args.output else Path(tempfile.mkdtemp()) / "simpleconvnet.onnx"
    path = tc.onnx.export(model, Tensor(x_test[:1]), out)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")

    # 2. run it in onnxruntime on 500 test digits and compare with this engine
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = x_test[:500]
    ort_logits = sess.run(None, {"input": x})[0]
    model.eval()
    with tc.no_grad():
        ref = model(Tensor(x)).data
    err = float(np.abs(ort_logits - ref).max())
    same = float((ort_logits.argmax(1) == ref.argmax(1)).mean())
    acc = float((ort_logits.argmax(1) == y_test[:500]).mean())
    print(f"onnxruntime vs engine: max |logit diff| {err:.2e}, same prediction {same:.1%}, "
          f"onnxruntime accuracy {acc:.1%}")

    # 3. load it back: a Module on this engine, with the same parameter names
    loaded = tc.onnx.load(path)
    print(f"loaded {type(loaded).__name__}({loaded.extra_repr()}); parameters: "
          f"{', '.join(n for n, _ in loaded.named_parameters())}")
    grads = []
    for m in (model, loaded):
        xt = Tensor(x[:8], requires_grad=True)
        F.softmax_cross_entropy(m(xt), y_test[:8]).backward()
        grads.append(xt.grad.data)
    with tc.no_grad():
        err_loaded = float(np.abs(loaded(Tensor(x)).data - ref).max())
    err_grad = float(np.abs(grads[0] - grads[1]).max())
    print(f"loaded vs original: max |logit diff| {err_loaded:.2e}, max |input-gradient diff| {err_grad:.2e}")

    ok = err <= 1e-4 * max(1.0, float(np.abs(ref).max())) and err_loaded <= 1e-6 and err_grad <= 1e-6
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
