"""Regenerate the graph gallery: docs/graphs.md and every picture it shows (docs/img/).

    python examples/make_gallery.py [--epochs 1] [--out docs]

Draws the computation graphs of a small expression (forward and backward), SimpleConvNet,
LeNet5 and AlexNet (grouped by module, and collapsed to one box per layer) as SVG through the
real Graphviz ``dot``; trains SimpleConvNet briefly on the packaged MNIST sample and plots its
first-layer filters before and after (the book's figure 7-24) and its feature maps as PNG.
Also writes docs/img/autograd_graph.svg, the figure docs/autograd.md uses. Deterministic:
fixed seeds, stable node ids, so a rerun changes no file unless the code changed.
Needs the ``viz`` extra (matplotlib) and Graphviz (``apt install graphviz``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, optim
from tinygrad_cnn.data import DataLoader, load_dataset
from tinygrad_cnn.serialization import atomic_write
from tinygrad_cnn.viz import collect_graph, draw_graph, draw_model, plot_feature_maps, plot_filters, save_graph, summary

ROOT = Path(__file__).resolve().parents[1]


def autograd_example() -> tuple[Tensor, Tensor, Tensor]:
    """``y = (x * w + b).relu().sum()``, the expression of docs/autograd.md (same data and names): (y, x, w)."""
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True, name="x")
    w = Tensor(np.array([0.5, 0.5, -1.0]), requires_grad=True, name="w")
    b = Tensor(np.array([0.1]), requires_grad=True, name="b")
    y = (x * w + b).relu().sum()
    y.name = "y"
    return y, x, w


def train_simpleconvnet(epochs: int, log) -> tuple[tc.nn.Module, np.ndarray, float, np.ndarray]:
    """The book's SimpleConvNet, Adam(lr=1e-3), batch 100: returns (model, initial conv1 weights, test acc, x_test)."""
    tc.manual_seed(0)
    model = tc.models.SimpleConvNet()
    before = model.conv1.weight.data.copy()
    (x_train, y_train), (x_test, y_test) = load_dataset("mnist-sample")
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(x_train, y_train, batch_size=100, shuffle=True, seed=0)
    for epoch in range(epochs):
        for xb, yb in loader:
            loss = F.softmax_cross_entropy(model(Tensor(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        log(f"epoch {epoch + 1}: last batch loss {loss.item():.3f}")
    model.eval()
    acc = float((model.predict(x_test) == y_test).mean())
    return model, before, acc, x_test


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="training epochs for the filter pictures")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="docs folder (pictures go to <out>/img)")
    args = parser.parse_args(argv)
    img = args.out / "img"
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:5.1f}s] {msg}")

    def wrote(path: Path) -> str:
        log(f"wrote {path}")
        return path.relative_to(args.out).as_posix()

    stats: dict[str, str] = {}

    # -- the small expression: forward, and backward via create_graph ------------------------
    y, x, w = autograd_example()
    fwd = wrote(save_graph(draw_graph(y), img / "autograd_graph.svg"))
    gx, gw = tc.grad(y, [x, w], create_graph=True)
    gx.name, gw.name = "dy/dx", "dy/dw"
    bwd = wrote(save_graph(draw_graph([y, gx, gw]), img / "backward_graph.svg"))

    # -- models --------------------------------------------------------------------------------
    tc.manual_seed(0)
    net = tc.models.SimpleConvNet()
    xin = Tensor(tc.random.get_rng().random((1, 1, 28, 28), dtype=np.float32), name="input")
    loss = F.softmax_cross_entropy(net(xin), np.array([7]))
    loss.name = "loss"
    rec = collect_graph(loss)
    stats["simple_counts"] = f"{len(rec.functions)} ops, {len(rec.tensors)} tensors"
    simple = wrote(save_graph(draw_graph(loss, params=net), img / "simpleconvnet_graph.svg"))
    simple_saved = wrote(save_graph(draw_graph(loss, params=net, show_saved=True, group_by_module=True),
                                    img / "simpleconvnet_saved.svg"))

    lenet = wrote(save_graph(draw_model(tc.models.LeNet5(), (1, 1, 28, 28)), img / "lenet5_grouped.svg"))

    alexnet = tc.models.AlexNet()
    t = time.perf_counter()
    g = draw_model(alexnet, (1, 3, 224, 224))
    log(f"draw_model(AlexNet) took {time.perf_counter() - t:.2f} s (forward pass included)")
    alex = wrote(save_graph(g, img / "alexnet_grouped.svg"))
    alex1 = wrote(save_graph(draw_model(alexnet, (1, 3, 224, 224), depth=1), img / "alexnet_depth1.svg"))
    stats["alexnet_summary"] = str(summary(alexnet, (3, 224, 224)))
    del alexnet, g

    # -- the book's figure 7-24: filters before and after training ------------------------
    model, before, acc, x_test = train_simpleconvnet(args.epochs, log)
    f_before = wrote(plot_filters(before, img / "filters_before.png", title="conv1 filters before training"))
    f_after = wrote(plot_filters(model.conv1.weight, img / "filters_after.png",
                                 title=f"after {args.epochs} epoch{'s' if args.epochs > 1 else ''} "
                                       f"(test acc {acc:.1%})"))
    fmaps = wrote(plot_feature_maps(model, x_test[0], img / "feature_maps.png",
                                    title="trained SimpleConvNet: conv1 outputs for test image 0"))
    stats["simple_summary"] = str(summary(model, (1, 28, 28)))
    log(f"SimpleConvNet test accuracy after {args.epochs} epoch(s) on mnist-sample: {acc:.3f}")

    md = PAGE.format(fwd=fwd, bwd=bwd, simple=simple, simple_saved=simple_saved, lenet=lenet, alex=alex,
                     alex1=alex1, f_before=f_before, f_after=f_after, fmaps=fmaps, epochs=args.epochs,
                     acc=f"{acc:.1%}", **stats)
    wrote(atomic_write(args.out / "graphs.md", lambda f: f.write(md), mode="w"))
    return 0


PAGE = """\
# Graphs and pictures

Generated by `python examples/make_gallery.py` (every picture on this page; rerun it after
changing the drawing code). Graphs are drawn by `tinygrad_cnn.viz` from the graph that the ops
*recorded* — nothing is traced or re-run — and rendered by the real Graphviz `dot`.

```python
import numpy as np
import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor

model = tc.models.SimpleConvNet()
loss = F.softmax_cross_entropy(model(Tensor(np.zeros((1, 1, 28, 28), np.float32))), np.array([7]))
g = tc.viz.draw_graph(loss)                        # a graphviz.Digraph: ops, tensors, shapes
tc.viz.save_graph(g, "loss.svg")                   # svg / png / pdf / dot, from the suffix
tc.viz.save_graph(tc.viz.draw_model(model, (1, 1, 28, 28), depth=1), "model.svg")
print(tc.viz.summary(model, (1, 28, 28)))          # layers, output shapes, params, MACs
tc.viz.plot_filters(model.conv1.weight, "filters.png")
```

From the shell: `tinygrad-cnn graph --model alexnet --group --depth 1 -o alexnet.svg` (the graph
`backward()` walks in one training step: training mode, so dropout is drawn, and the loss on a
random label; the pictures on this page are drawn from Python, some in eval mode),
`tinygrad-cnn summary --model lenet5`, `tinygrad-cnn filters --checkpoint run.npz -o f.png`,
`tinygrad-cnn features --checkpoint run.npz --index 0 -o maps.png`.

## How to read a graph

* **Ovals are ops** (`Function`s) with their attributes: `kernel 5x5, stride 1, pad 0`, `p 0.5`.
  Colour says the kind: conv/pool orange, linear/matmul purple, activation/normalization
  yellow, loss red, arithmetic and shape ops grey.
* **Boxes are tensors** with shape and dtype: inputs blue, parameters (and any other leaf that
  requires grad) green with their dotted names (`conv1.weight`), intermediates grey, outputs red
  with a double border. Scalar constants (the `2` of `x * 2`) are plain text.
* Edges point forward, tensor → op → tensor; `backward()` walks them in reverse.
* Node ids are `t0, t1, f0, ...` in forward order, so the DOT text of the same code is
  identical from run to run (it can be diffed, or kept as a golden file as the tests do).
* `show_saved=True` adds what each op saved for backward (`saved bits ...`, `saved argmax ...`),
  or `saved: freed` once `backward()` released it.

Large graphs stay readable with `group_by_module=True` (a cluster per module, from
`Function.modules`, which `nn.Module.__call__` records) and `depth=N` (every module N levels below
the model becomes one box; the model is level 0). The walk is iterative, so a 10,000-op chain draws
(in about 0.3 s) without touching the recursion limit. Without Graphviz installed, `save_graph`
raises `GraphvizNotFoundError` saying how to install it, and still writes the `.dot` source.

## A small expression: forward

`y = (x * w + b).relu().sum()` — the example of [autograd.md](autograd.md).

![forward graph of y = (x * w + b).relu().sum()]({fwd})

## ... and its backward pass

`tc.grad(y, [x, w], create_graph=True)` records the backward pass as ops too, so the gradients
have a graph of their own (which `gradgradcheck` differentiates again). Drawn with
`draw_graph([y, dy_dx, dy_dw])`: each gradient is a `Mul` of the other factor (`w` for `dy/dx`,
`x` for `dy/dw`) and the upstream gradient. That upstream gradient (blue) is ones sent back
through `Sum` and `ReLU`'s 0/1 mask; it depends on no leaf that requires grad, so nothing
recorded it and it enters the graph as a constant input.

![backward graph]({bwd})

## SimpleConvNet (the book's chapter 7)

The training graph of one example's loss ({simple_counts}): conv 30@5x5 → ReLU → max-pool 2/2 →
flatten → Affine 100 → ReLU → Affine 10 → softmax cross-entropy.

![SimpleConvNet loss graph]({simple})

The same graph grouped by module, with what each op keeps for backward (the ReLU mask as bits,
the max-pool argmax, the loss's softmax):

![SimpleConvNet with saved arrays]({simple_saved})

```
{simple_summary}
```

## LeNet-5, grouped by module

`draw_model(LeNet5(), (1, 1, 28, 28))`: one forward pass in eval mode, each layer a cluster.

![LeNet-5 grouped]({lenet})

## AlexNet, grouped, and one box per layer

`draw_model(AlexNet(), (1, 3, 224, 224))` (eval mode: dropout records nothing); drawing it,
forward pass included, takes well under a second.

![AlexNet grouped]({alex})

`depth=1` collapses each layer into one box labelled with its type, name and geometry
(`Conv2d conv1 (96@11x11/4)`) and parameter count:

![AlexNet, one box per layer]({alex1})

```
{alexnet_summary}
```

## First-layer filters before and after training (the book's figure 7-24)

SimpleConvNet trained for {epochs} epoch(s) on the packaged 4,000-image MNIST sample (Adam,
lr 1e-3, batch 100; test accuracy {acc}). Each 5x5 filter is min-max scaled on its own; dark
means a large weight, as the book draws them. Before training the filters are noise; after
one short epoch several already show the structure the book points out — dark/light bands
that respond to horizontal and vertical edges (more epochs: `--epochs 5`).

![filters before training]({f_before})

![filters after training]({f_after})

What they detect, on a test digit — each conv1 output channel (`plot_feature_maps`, up to 16
channels per conv layer, one row per layer):

![feature maps]({fmaps})
"""


if __name__ == "__main__":
    sys.exit(main())
