"""The book's chapter-7 gradient check, done with tinygrad_cnn.

A small SimpleConvNet (input 1x10x10, ten 3x3 filters, hidden 10, 10 classes) in float64:
the gradients from ``loss.backward()`` (backpropagation through im2col convolution, max-pooling,
affine layers and softmax-with-loss) are compared with numerical gradients from central
differences, parameter by parameter, as ``ch07/gradient_check.py`` does.

    python examples/gradient_check.py [--seed 0] [--batch 2] [--tol 1e-6]

Prints one line per parameter (name, shape, max |analytic - numeric|, relative error) and
exits with status 1 if any relative error exceeds ``--tol``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor
from tinygrad_cnn.models import SimpleConvNet


def numerical_gradient(loss_fn, param: Tensor, eps: float = 1e-5) -> np.ndarray:
    """Central differences of ``loss_fn()`` with respect to every element of ``param`` (in place, restored)."""
    grad = np.zeros_like(param.data)
    flat, gflat = param.data.reshape(-1), grad.reshape(-1)  # views of the parameter and the result
    with tc.no_grad():
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            plus = loss_fn().item()
            flat[i] = orig - eps
            minus = loss_fn().item()
            flat[i] = orig
            gflat[i] = (plus - minus) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / (||a|| + ||b||)``: about 1e-10 for a correct float64 gradient, O(1) for a wrong one."""
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / denom) if denom > 0 else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=2, help="number of random 1x10x10 inputs (the book uses 1)")
    parser.add_argument("--tol", type=float, default=1e-6, help="largest relative error that counts as a match")
    args = parser.parse_args(argv)

    tc.manual_seed(args.seed)
    net = SimpleConvNet(input_dim=(1, 10, 10),
                        conv_param={"filter_num": 10, "filter_size": 3, "pad": 0, "stride": 1},
                        hidden_size=10, output_size=10, weight_init_std=0.1)
    for p in net.parameters():  # the check runs in float64: central differences need the precision
        p.data = p.data.astype(np.float64)

    rng = np.random.default_rng(args.seed)
    x = Tensor(rng.random((args.batch, 1, 10, 10)))
    t = rng.integers(0, 10, size=args.batch)

    def loss_fn() -> Tensor:
        return F.softmax_cross_entropy(net(x), t)

    net.zero_grad()
    loss = loss_fn()
    loss.backward()
    print(f"SimpleConvNet 1x10x10, batch {args.batch}, float64, loss {loss.item():.6f}")
    print(f"{'parameter':12s} {'shape':16s} {'max abs diff':>13s} {'relative error':>15s}")
    worst = 0.0
    for name, p in net.named_parameters():
        num = numerical_gradient(loss_fn, p)
        ana = p.grad.data
        err = relative_error(ana, num)
        worst = max(worst, err)
        print(f"{name:12s} {str(tuple(p.shape)):16s} {np.max(np.abs(ana - num)):13.3e} {err:15.3e}")
    ok = worst <= args.tol
    print(f"{'OK' if ok else 'MISMATCH'}: largest relative error {worst:.3e} (tolerance {args.tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
