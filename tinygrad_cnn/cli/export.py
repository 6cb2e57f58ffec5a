"""``tinygrad-cnn export``: write a model (optionally with trained weights) as an ONNX file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import (
    add_input_shape_argument,
    build_model,
    check_input_shape,
    load_weights,
    positive_int,
    resolve_checkpoint,
    shape_kwargs,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..models import MODELS

    p.add_argument("--model", default=None, choices=tuple(MODELS),
                   help="which model (default: the checkpoint's meta.model)")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="weights: a training checkpoint (model.<param>, meta.model) or its run directory, or a "
                        "plain state-dict .npz")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version (default %(default)s)")
    p.add_argument("--no-dynamic-batch", dest="dynamic_batch", action="store_false",
                   help="fix the batch size to --batch-size instead of a symbolic 'batch' dimension")
    p.add_argument("--batch-size", type=positive_int, default=1, help="batch size of the example input (default 1)")
    add_input_shape_argument(p, "one input's shape (default: the model's, e.g. 1,28,28; 3,224,224 for alexnet); "
                                "the model is built for it where its constructor allows (in_channels, input_size, "
                                "input_dim)")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="the .onnx file to write")


def _as_str(v: Any) -> str:
    """A string stored in an .npz: a 0-d unicode/bytes array or a uint8 array of UTF-8 bytes."""
    import numpy as np

    v = np.asarray(v)
    if v.dtype.kind in "iu":
        return bytes(v.astype(np.uint8).ravel().tolist()).decode()
    item = v.item() if v.ndim == 0 else v.ravel()[0]
    return item.decode() if isinstance(item, bytes) else str(item)


def read_checkpoint(path: str) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
    """``(state_dict, model name or None, model kwargs)`` from a training checkpoint (file or run directory)
    or a state-dict ``.npz``.

    Training checkpoints keep the weights under ``model.<param>``, the model name under
    ``meta.model`` and constructor arguments under ``model_kwargs`` of the JSON ``meta.config``.
    """
    import json

    from ..serialization import load

    arrays = load(resolve_checkpoint(path))
    name = _as_str(arrays["meta.model"]) if "meta.model" in arrays else None
    kwargs: dict[str, Any] = {}
    if "meta.config" in arrays:
        config = json.loads(_as_str(arrays["meta.config"]))
        name = name or config.get("model")
        kwargs = dict(config.get("model_kwargs") or {})
    if any(k.startswith("model.") for k in arrays):
        state = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
    else:
        state = {k: v for k, v in arrays.items() if k.split(".", 1)[0] not in ("meta", "optim")}
    return state, name, kwargs


def _input_shape(shape: tuple[int, ...] | None, default: tuple[int, ...], kwargs: dict[str, Any]) -> tuple[int, ...]:
    """``--input-shape`` (parsed), else the model's default adjusted by the checkpoint's model kwargs."""
    if shape:
        return tuple(shape)
    if "input_dim" in kwargs:
        return tuple(int(v) for v in kwargs["input_dim"])
    c, h, w = default
    size = kwargs.get("input_size")
    return int(kwargs.get("in_channels", c)), int(size or h), int(size or w)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except ImportError as exc:
        hint = ""  # the library's own message for a missing onnx already says what to install
        if "onnx" in str(exc.name) and "tinygrad-cnn[onnx]" not in str(exc):
            hint = "; install the ONNX extra: pip install 'tinygrad-cnn[onnx]'"
        print(f"tinygrad-cnn export: error: {exc}{hint}", file=sys.stderr)
    except (ValueError, KeyError, TypeError, OSError, NotImplementedError, RuntimeError) as exc:
        print(f"tinygrad-cnn export: error: {exc}", file=sys.stderr)
    return 1


def _run(args: argparse.Namespace) -> int:
    import os

    import numpy as np

    from .. import models
    from ..onnx import op_histogram, to_onnx, write_model
    from ..tensor import Tensor

    state, meta_name, kwargs = read_checkpoint(args.checkpoint) if args.checkpoint else ({}, None, {})
    name = args.model or meta_name
    if name is None:
        raise ValueError("pass --model NAME" + (f" ({args.checkpoint} has no meta.model)" if args.checkpoint else ""))
    if args.model and meta_name and args.model.replace("_", "-").lower() != meta_name.replace("_", "-").lower():
        print(f"tinygrad-cnn export: note: {args.checkpoint} was trained as {meta_name}; exporting it as {args.model}",
              file=sys.stderr)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    kwargs = kwargs if meta_name == name else {}
    if args.input_shape:  # build the model for that input where its constructor allows
        kwargs = {**kwargs, **shape_kwargs(name, args.input_shape)}
    model = build_model(name, kwargs, args.checkpoint if meta_name == name else None)
    if args.checkpoint:
        load_weights(model, state, name, args.checkpoint, meta_name)
    shape = _input_shape(args.input_shape, models.input_shape(name), kwargs)
    if args.input_shape:
        check_input_shape(model, name, shape)  # a model with fixed sizes (LeNet5: 28x28) names the op that fails
    x = Tensor(np.zeros((args.batch_size, *shape), dtype=np.float32))
    proto = to_onnx(model, x, dynamic_batch=args.dynamic_batch, opset=args.opset)
    path = write_model(proto, args.output)
    size = os.path.getsize(path)
    print(f"wrote {path}")
    print(f"model {name}, opset {args.opset}, input {'batch' if args.dynamic_batch else args.batch_size}x"
          f"{'x'.join(map(str, shape))}, {len(proto.graph.initializer)} initializers")
    print("ops: " + ", ".join(f"{op} {n}" for op, n in op_histogram(proto).most_common()))
    print(f"size: {size:,} bytes ({size / 2**20:.1f} MiB)")
    return 0


COMMANDS = {"export": ("export a model (and checkpoint weights) to an ONNX file that onnxruntime runs",
                       add_arguments, run)}
