"""Draw docs/img/autograd_graph.svg: the recorded graph of ``y = (x * w + b).relu().sum()``.

    python docs/make_autograd_figure.py [OUT.svg] [--walk]

Uses ``tinygrad_cnn.viz.draw_graph`` when the package has it; ``--walk`` (or a build without
``viz``) uses the twenty-line walk below instead, which shows how little it takes to read a
recorded graph: every Tensor knows its ``creator`` Function, every Function its ``inputs``.
Rendering needs the Graphviz ``dot`` program; the file is written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import graphviz
import numpy as np

from tinygrad_cnn import Tensor
from tinygrad_cnn.serialization import atomic_write

DEFAULT_OUT = Path(__file__).resolve().parent / "img" / "autograd_graph.svg"


def example() -> Tensor:
    """The graph of the docs: two multiplies' worth of ops, a ReLU and a sum."""
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True, name="x")
    w = Tensor(np.array([0.5, 0.5, -1.0]), requires_grad=True, name="w")
    b = Tensor(np.array([0.1]), requires_grad=True, name="b")
    y = (x * w + b).relu().sum()
    y.name = "y"
    return y


def walk_graph(y: Tensor) -> graphviz.Digraph:
    """Tensors as boxes, Functions as ovals (with their generation), edges in the forward direction."""
    g = graphviz.Digraph("autograd", graph_attr={"rankdir": "TB", "fontname": "Helvetica"},
                         node_attr={"fontname": "Helvetica", "fontsize": "11"})

    def tensor_node(t: Tensor) -> str:
        label = f"{t.name + chr(10) if t.name else ''}{tuple(t.shape)} {t.dtype}"
        colour = "lightblue" if t.creator is None else ("salmon" if t is y else "lightgrey")
        g.node(f"t{id(t)}", label, shape="box", style="filled", fillcolor=colour)
        return f"t{id(t)}"

    seen, stack = set(), [y]
    tensor_node(y)
    while stack:  # iterative, like backward itself: no recursion limit
        t = stack.pop()
        fn = t.creator
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        g.node(f"f{id(fn)}", f"{fn.name}\ngeneration {fn.generation}", shape="ellipse", style="filled",
               fillcolor="lightyellow")
        for ref in fn.outputs:
            out = ref()
            if out is not None:
                g.edge(f"f{id(fn)}", tensor_node(out))
        for inp in fn.inputs:
            g.edge(tensor_node(inp), f"f{id(fn)}")
            stack.append(inp)
    return g


def build(use_viz: bool = True) -> graphviz.Digraph:
    y = example()
    if use_viz:
        try:
            from tinygrad_cnn.viz import draw_graph
        except ImportError:
            pass
        else:
            return draw_graph(y)
    return walk_graph(y)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help="the .svg to write")
    parser.add_argument("--walk", action="store_true", help="use the walk in this script, not tinygrad_cnn.viz")
    args = parser.parse_args(argv)
    svg = build(use_viz=not args.walk).pipe(format="svg")  # the real `dot`
    atomic_write(args.out, lambda f: f.write(svg))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
