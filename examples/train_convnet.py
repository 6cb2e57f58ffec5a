"""The book's ch07/train_convnet.py, written with tinygrad_cnn.

SimpleConvNet (conv 30@5x5 - ReLU - pool - Affine 100 - ReLU - Affine 10), Adam lr 0.001,
mini-batch 100, 20 epochs, then the learning curves (train/test accuracy per epoch) and the
first-layer filters before and after training, all in the run directory.

    python examples/train_convnet.py                    # the 5,000 shipped MNIST digits
    python examples/train_convnet.py --dataset mnist    # the full MNIST, if the files are there
    python examples/train_convnet.py --epochs 3         # shorter
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import tinygrad_cnn as tc  # noqa: E402
from tinygrad_cnn import optim  # noqa: E402
from tinygrad_cnn.data import DataLoader, load_dataset  # noqa: E402
from tinygrad_cnn.training import evaluate, fit  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist-sample", choices=["mnist-sample", "mnist", "fashion-mnist"])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--out", default="runs/train_convnet")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    # load_mnist(flatten=False): x (N, 1, 28, 28) float32 in [0, 1], y (N,) int labels
    (x_train, t_train), (x_test, t_test) = load_dataset(args.dataset, download=args.dataset != "mnist-sample")

    tc.manual_seed(args.seed)
    network = tc.models.SimpleConvNet(input_dim=(1, 28, 28),
                                      conv_param={"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1},
                                      hidden_size=100, output_size=10, weight_init_std=0.01)
    optimizer = optim.Adam(network.parameters(), lr=0.001)
    train_loader = DataLoader(x_train, t_train, batch_size=100, shuffle=True, seed=args.seed)

    # The book's Trainer: mini-batch steps, per-epoch train/test accuracy, then the final test accuracy.
    history = fit(network, optimizer, train_loader, (x_test, t_test), epochs=args.epochs, out_dir=args.out,
                  config={"model": "simpleconvnet", "dataset": args.dataset, "title": "SimpleConvNet (ch07)"},
                  example_input=x_test[:1])
    result = evaluate(network, (x_test, t_test))
    print(f"=============== Final Test Accuracy ===============\ntest acc: {result.accuracy:.4f}")
    print(f"{len(history)} epochs; learning curves, filters and checkpoint in {args.out}/")
    # network.save_params("params.pkl") in the book; here a plain .npz without pickle:
    tc.save(network.state_dict(), Path(args.out) / "params.npz")


if __name__ == "__main__":
    main()
