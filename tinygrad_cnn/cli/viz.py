"""``tinygrad-cnn graph | summary | filters | features``: pictures and tables of the models."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from ..models import MODELS

_MODEL_NAMES = tuple(MODELS)  # simpleconvnet, lenet5, lenet5-classic, alexnet-small, deepconvnet, alexnet
_LARGE_GRAPH = 400  # tensors; above this a hint suggests --group/--depth


# --------------------------------------------------------------------------- checkpoints


def load_checkpoint(path: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``(state_dict, meta)`` from a training checkpoint or a plain state-dict ``.npz``.

    Training checkpoints keep the weights under ``model.<param>`` and strings such as the
    model name under ``meta.<key>``; a plain state dict (``conv1.weight``, ...) has no meta.
    """
    from ..serialization import load

    arrays = load(path)
    meta = {k[5:]: _as_str(v) for k, v in arrays.items() if k.startswith("meta.")}
    if any(k.startswith("model.") for k in arrays):
        state = {k[6:]: v for k, v in arrays.items() if k.startswith("model.")}
    else:
        state = {k: v for k, v in arrays.items() if k.split(".", 1)[0] not in ("meta", "optim")}
    return state, meta


def _as_str(v: Any) -> str:
    """A ``meta.*`` string: a NumPy string array, or UTF-8 bytes stored as a 1-D uint8 array."""
    if v.dtype == np.uint8 and v.ndim == 1:
        return v.tobytes().decode("utf-8", errors="replace")
    item = v.item() if v.size == 1 else v
    return item.decode("utf-8", errors="replace") if isinstance(item, bytes) else str(item)


def _meta_value(meta: dict[str, str], key: str) -> str | None:
    """``meta.<key>``, else the ``key`` entry of the JSON ``meta.config``, else None."""
    if key in meta:
        return meta[key]
    try:
        value = json.loads(meta.get("config", "{}")).get(key)
    except (ValueError, AttributeError):
        return None
    return None if value is None else str(value)


def _first_conv_weight(state: dict[str, Any], path: str, name: str | None) -> tuple[str, Any]:
    if name is not None:
        if name not in state:
            raise SystemExit(f"filters: {path} has no parameter {name!r}; it has: {', '.join(state)}")
        return name, state[name]
    for k, v in state.items():
        if getattr(v, "ndim", 0) == 4:
            return k, v
    raise SystemExit(f"filters: {path} holds no 4-D (conv) weight; its arrays: "
                     + ", ".join(f"{k} {tuple(v.shape)}" for k, v in state.items()))


# --------------------------------------------------------------------------- graph


def add_graph_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="simpleconvnet", choices=_MODEL_NAMES, help="which model (default %(default)s)")
    p.add_argument("--group", action="store_true", help="cluster ops by the module that ran them")
    p.add_argument("--depth", type=int, default=None, metavar="N",
                   help="draw each module N levels below the model as one box (1: one box per layer)")
    p.add_argument("--format", choices=("svg", "png", "pdf", "dot"), default=None,
                   help="output format (default: from the -o suffix, else svg)")
    p.add_argument("--backward", action="store_true",
                   help="also draw the backward pass (the gradients' graph, via backward(create_graph=True))")
    p.add_argument("--show-saved", action="store_true", help="show the arrays each op saved for backward")
    p.add_argument("--rankdir", default="TB", choices=("TB", "LR", "BT", "RL"), help="layout direction")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the random example")
    p.add_argument("-o", "--output", default=None, help="output file (default <model>-graph.<format>)")


def run_graph(args: argparse.Namespace) -> int:
    import numpy as np

    from .. import functional as F
    from .. import models
    from ..random import manual_seed
    from ..tensor import Tensor
    from ..viz import GraphvizNotFoundError, collect_graph, draw_graph, save_graph

    fmt = args.format or (args.output.rsplit(".", 1)[-1].lower() if args.output and "." in args.output else "svg")
    out = args.output or f"{args.model}-graph.{fmt}"
    rng = manual_seed(args.seed)
    model = models.get_model(args.model)  # training mode: the loss graph backward() walks, dropout included
    shape = (1, *models.input_shape(args.model))
    x = Tensor(rng.standard_normal(shape, dtype=np.float32), name="input")
    logits = model(x)
    label = rng.integers(0, logits.shape[1], size=1)
    loss = F.softmax_cross_entropy(logits, label)
    loss.name = "loss"
    outputs = [loss]
    if args.backward:
        loss.backward(create_graph=True)
        for name, p in model.named_parameters():
            if p.grad is not None:
                p.grad.name = f"{name}.grad"
                outputs.append(p.grad)
    graph = draw_graph(outputs, params=model, group_by_module=args.group, depth=args.depth,
                       show_saved=args.show_saved, rankdir=args.rankdir)
    rec = collect_graph(outputs)
    try:
        path = save_graph(graph, out, format=fmt)
    except GraphvizNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"wrote {path}: {args.model}{' forward+backward' if args.backward else ''} graph, "
          f"{len(rec.functions)} ops, {len(rec.tensors)} tensors")
    if len(rec.tensors) > _LARGE_GRAPH and args.depth is None:
        print("hint: a large graph; --group --depth 1 draws one box per layer")
    return 0


# --------------------------------------------------------------------------- summary


def add_summary_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="simpleconvnet", choices=_MODEL_NAMES, help="which model (default %(default)s)")
    p.add_argument("--input-shape", type=int, nargs=3, default=None, metavar=("C", "H", "W"),
                   help="input shape without the batch axis (default: the model's own)")


def run_summary(args: argparse.Namespace) -> int:
    from .. import models
    from ..viz import summary

    model = models.get_model(args.model)
    print(summary(model, args.input_shape or models.input_shape(args.model)))
    return 0


# --------------------------------------------------------------------------- filters / features


def add_filters_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a training checkpoint or state-dict .npz")
    p.add_argument("--param", default=None, help="which conv weight (default: the first 4-D parameter)")
    p.add_argument("--title", default=None, help="title above the grid")
    p.add_argument("--ncols", type=int, default=None, help="filters per row (default 8)")
    p.add_argument("-o", "--output", required=True, help="output PNG")


def run_filters(args: argparse.Namespace) -> int:
    from ..viz import plot_filters

    state, meta = load_checkpoint(args.checkpoint)
    name, weight = _first_conv_weight(state, args.checkpoint, args.param)
    title = args.title if args.title is not None else \
        f"{_meta_value(meta, 'model') or 'model'} {name} {tuple(weight.shape)}"
    path = plot_filters(weight, args.output, title=title, ncols=args.ncols)
    print(f"wrote {path}: {weight.shape[0]} filters of {name} {tuple(weight.shape)}")
    return 0


def add_features_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a training checkpoint or state-dict .npz")
    p.add_argument("--index", type=int, default=0, help="which image of the dataset split (default 0)")
    p.add_argument("--model", default=None, choices=_MODEL_NAMES,
                   help="the model (default: the checkpoint's meta.model; needed for a plain state dict)")
    p.add_argument("--dataset", default=None, help="dataset (default: the checkpoint's meta.dataset or mnist-sample)")
    p.add_argument("--split", default="test", choices=("train", "test"), help="which split (default test)")
    p.add_argument("--max-channels", type=int, default=16, help="channels shown per layer (default 16)")
    p.add_argument("-o", "--output", required=True, help="output PNG")


def run_features(args: argparse.Namespace) -> int:
    from .. import models
    from ..data import load_dataset
    from ..viz import plot_feature_maps

    state, meta = load_checkpoint(args.checkpoint)
    model_name = args.model or _meta_value(meta, "model")
    if model_name is None:
        raise SystemExit(f"features: {args.checkpoint} has no meta.model; pass --model NAME "
                         f"({', '.join(_MODEL_NAMES)})")
    model = models.get_model(model_name)
    model.load_state_dict(state)
    dataset = args.dataset or _meta_value(meta, "dataset") or "mnist-sample"
    (x_train, y_train), (x_test, y_test) = load_dataset(dataset)
    xs, ys = (x_train, y_train) if args.split == "train" else (x_test, y_test)
    if not -len(xs) <= args.index < len(xs):
        raise SystemExit(f"features: --index {args.index} is out of range for {dataset} {args.split} "
                         f"({len(xs)} images)")
    title = f"{model_name}: {dataset} {args.split}[{args.index}], label {int(ys[args.index])}"
    path = plot_feature_maps(model, xs[args.index], args.output, max_channels=args.max_channels, title=title)
    print(f"wrote {path}")
    return 0


COMMANDS = {
    "graph": ("draw a model's computation graph (Graphviz: svg, png, pdf or dot)", add_graph_arguments, run_graph),
    "summary": ("print a table of layers, output shapes, parameters and MACs", add_summary_arguments, run_summary),
    "filters": ("plot a checkpoint's first-layer conv filters as a PNG grid", add_filters_arguments, run_filters),
    "features": ("plot the conv feature maps of one dataset image as a PNG", add_features_arguments, run_features),
}
