"""``tinygrad-cnn graph | summary | filters | features``: pictures and tables of the models."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from ..models import MODELS
from ._common import (
    PICTURE_FORMATS,
    CLIError,
    UsageError,
    add_input_shape_argument,
    build_model,
    load_weights,
    non_negative_int,
    picture_format,
    positive_int,
    resolve_checkpoint,
    shape_error,
    shape_kwargs,
    write_picture,
)

_MODEL_NAMES = tuple(MODELS)  # simpleconvnet, lenet5, lenet5-classic, alexnet-small, deepconvnet, alexnet
_LARGE_GRAPH = 400  # tensors; above this a hint suggests --group/--depth
_GRAPH_FORMATS = ("svg", "png", "pdf", "dot")  # what viz.save_graph renders


# --------------------------------------------------------------------------- checkpoints


def load_checkpoint(path: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``(state_dict, meta)`` from a training checkpoint (or its run directory) or a plain state-dict ``.npz``.

    Training checkpoints keep the weights under ``model.<param>`` and strings such as the
    model name under ``meta.<key>``; a plain state dict (``conv1.weight``, ...) has no meta.
    """
    from ..serialization import load

    arrays = load(resolve_checkpoint(path))
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


def _model_kwargs(meta: dict[str, str]) -> Any:
    """The constructor arguments ``train`` stored (``model_kwargs`` of the JSON ``meta.config``), else {};
    :func:`build_model` refuses a value that is not a dict, as ``evaluate`` does."""
    try:
        value = json.loads(meta.get("config", "{}")).get("model_kwargs")
    except (ValueError, AttributeError):
        return {}
    return {} if value is None else value


def _first_conv_weight(state: dict[str, Any], path: str, name: str | None) -> tuple[str, Any]:
    if name is not None:
        if name not in state:
            raise SystemExit(f"tinygrad-cnn filters: error: {path} has no parameter {name!r}; it has: "
                             f"{', '.join(state)}")
        if getattr(state[name], "ndim", 0) != 4:
            convs = [k for k, v in state.items() if getattr(v, "ndim", 0) == 4]
            raise CLIError(f"--param {name} has shape {tuple(state[name].shape)}, not a conv filter bank "
                           f"(out_channels, in_channels, kh, kw); the 4-D parameters of {path}: "
                           f"{', '.join(convs) or 'none'}")
        return name, state[name]
    for k, v in state.items():
        if getattr(v, "ndim", 0) == 4:
            return k, v
    raise SystemExit(f"tinygrad-cnn filters: error: {path} holds no 4-D (conv) weight; its arrays: "
                     + ", ".join(f"{k} {tuple(v.shape)}" for k, v in state.items()))


# --------------------------------------------------------------------------- graph


def add_graph_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="simpleconvnet", choices=_MODEL_NAMES, help="which model (default %(default)s)")
    p.add_argument("--group", action="store_true", help="cluster ops by the module that ran them")
    p.add_argument("--depth", type=non_negative_int, default=None, metavar="N",
                   help="draw each module N levels below the model as one box (1: one box per layer)")
    p.add_argument("--format", choices=_GRAPH_FORMATS, default=None,
                   help="output format (default: from the -o suffix, else svg)")
    p.add_argument("--backward", action="store_true",
                   help="also draw the backward pass (the gradients' graph, via backward(create_graph=True))")
    p.add_argument("--show-saved", action="store_true", help="show the arrays each op saved for backward")
    p.add_argument("--rankdir", default="TB", choices=("TB", "LR", "BT", "RL"), help="layout direction")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the random example")
    p.add_argument("-o", "--output", default=None, help="output file (default <model>-graph.<format>)")


def run_graph(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from .. import functional as F
    from .. import models
    from ..random import manual_seed
    from ..tensor import Tensor
    from ..viz import GraphvizNotFoundError, collect_graph, draw_graph, save_graph

    fmt = args.format or (Path(args.output).suffix.lstrip(".").lower() if args.output else "") or "svg"
    fmt = "dot" if fmt == "gv" else fmt
    if fmt not in _GRAPH_FORMATS:
        raise UsageError(f"cannot write a .{fmt} graph ({args.output}); use a "
                         + ", ".join(f".{f}" for f in _GRAPH_FORMATS) + " file name or --format")
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
        print(f"tinygrad-cnn graph: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}: {args.model}{' forward+backward' if args.backward else ''} graph, "
          f"{len(rec.functions)} ops, {len(rec.tensors)} tensors")
    if len(rec.tensors) > _LARGE_GRAPH and args.depth is None:
        print("hint: a large graph; --group --depth 1 draws one box per layer")
    return 0


# --------------------------------------------------------------------------- summary


def add_summary_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="simpleconvnet", choices=_MODEL_NAMES, help="which model (default %(default)s)")
    add_input_shape_argument(p, "one input's shape without the batch axis (default: the model's own); the model "
                                "is built for it where its constructor allows (in_channels, input_size, input_dim)")


def run_summary(args: argparse.Namespace) -> int:
    from .. import models
    from ..viz import summary

    if args.input_shape is None:
        print(summary(models.get_model(args.model), models.input_shape(args.model)))
        return 0
    shape = args.input_shape
    model = models.get_model(args.model, **shape_kwargs(args.model, shape))
    try:
        table = summary(model, shape)
    except ValueError as exc:
        raise shape_error(args.model, shape, exc) from None
    print(table)
    return 0


# --------------------------------------------------------------------------- filters / features


def add_filters_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True,
                   help="a training checkpoint (or its run directory) or a state-dict .npz")
    p.add_argument("--param", default=None, help="which conv weight (default: the first 4-D parameter)")
    p.add_argument("--title", default=None, help="title above the grid")
    p.add_argument("--ncols", type=positive_int, default=None, help="filters per row (default 8)")
    p.add_argument("-o", "--output", required=True,
                   help=f"output picture, its format from the suffix: {', '.join(PICTURE_FORMATS)}")


def run_filters(args: argparse.Namespace) -> int:
    from ..viz import plot_filters

    picture_format(args.output)
    state, meta = load_checkpoint(args.checkpoint)
    name, weight = _first_conv_weight(state, args.checkpoint, args.param)
    title = args.title if args.title is not None else \
        f"{_meta_value(meta, 'model') or 'model'} {name} {tuple(weight.shape)}"
    path = write_picture(lambda p: plot_filters(weight, p, title=title, ncols=args.ncols), args.output)
    print(f"wrote {path}: {weight.shape[0]} filters of {name} {tuple(weight.shape)}")
    return 0


def add_features_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True,
                   help="a training checkpoint (or its run directory) or a state-dict .npz")
    p.add_argument("--index", type=int, default=0, help="which image of the dataset split (default 0)")
    p.add_argument("--model", default=None, choices=_MODEL_NAMES,
                   help="the model (default: the checkpoint's meta.model; needed for a plain state dict)")
    p.add_argument("--dataset", default=None, help="dataset: mnist-sample, mnist or fashion-mnist (default: the "
                   "checkpoint's meta.dataset or mnist-sample)")
    p.add_argument("--data-dir", default=None, help="directory holding the IDX files")
    p.add_argument("--split", default="test", choices=("train", "test"), help="which split (default test)")
    p.add_argument("--max-channels", type=positive_int, default=16, help="channels shown per layer (default 16)")
    p.add_argument("-o", "--output", required=True,
                   help=f"output picture, its format from the suffix: {', '.join(PICTURE_FORMATS)}")


def run_features(args: argparse.Namespace) -> int:
    from ..data import load_dataset
    from ..viz import plot_feature_maps

    picture_format(args.output)
    state, meta = load_checkpoint(args.checkpoint)
    trained_as = _meta_value(meta, "model")
    model_name = args.model or trained_as
    if model_name is None:
        raise SystemExit(f"tinygrad-cnn features: error: {args.checkpoint} has no meta.model; pass --model NAME "
                         f"({', '.join(_MODEL_NAMES)})")
    same = trained_as is not None and trained_as.lower().replace("_", "-") == model_name.lower().replace("_", "-")
    model = build_model(model_name, _model_kwargs(meta) if same else {}, args.checkpoint)
    load_weights(model, state, model_name, args.checkpoint, trained_as)
    dataset = args.dataset or _meta_value(meta, "dataset") or "mnist-sample"
    (x_train, y_train), (x_test, y_test) = load_dataset(dataset, root=args.data_dir)
    xs, ys = (x_train, y_train) if args.split == "train" else (x_test, y_test)
    if not -len(xs) <= args.index < len(xs):
        raise SystemExit(f"tinygrad-cnn features: error: --index {args.index} is out of range for {dataset} "
                         f"{args.split} ({len(xs)} images)")
    title = f"{model_name}: {dataset} {args.split}[{args.index}], label {int(ys[args.index])}"
    path = write_picture(lambda p: plot_feature_maps(model, xs[args.index], p, max_channels=args.max_channels,
                                                     title=title), args.output)
    print(f"wrote {path}")
    return 0


COMMANDS = {
    "graph": ("draw the graph of one training step of a model, loss included (Graphviz: svg, png, pdf or dot)",
              add_graph_arguments, run_graph),
    "summary": ("print a table of layers, output shapes, parameters and MACs", add_summary_arguments, run_summary),
    "filters": ("plot a checkpoint's first-layer conv filters as a grid (png, svg or pdf)", add_filters_arguments,
                run_filters),
    "features": ("plot the conv feature maps of one dataset image (png, svg or pdf)", add_features_arguments,
                 run_features),
}
