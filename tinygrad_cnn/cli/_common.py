"""Helpers the command modules share: user errors, argument types, checkpoints, model shapes, pictures.

Light at import time (``--help`` imports every command module): heavy imports stay inside the functions.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..viz.plots import PICTURE_FORMATS


class CLIError(Exception):
    """A problem with the user's input found while a command runs.

    ``main`` prints it as ``tinygrad-cnn CMD: error: MESSAGE`` on stderr and exits 1, without a traceback.
    """


class UsageError(CLIError):
    """A bad combination of arguments: ``main`` reports it through the subcommand's ``parser.error`` (exit 2)."""


# Library exceptions that mean "the user's input is wrong", not "the program is wrong": ``main`` prints them in
# one line too. ValueError covers the library's CheckpointError, DatasetError and StateDictError and the ops'
# shape errors; OSError covers missing files, directories and permissions; ImportError a missing extra.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, ImportError)


def build_model(name: str, kwargs: Any, source: str | None = None) -> Any:
    """``models.get_model(name, **kwargs)``; constructor arguments that do not fit (a checkpoint's stored
    ``model_kwargs``: not a dict, unknown names, bad values) are a CLIError naming where they came from."""
    from .. import models

    cls = models.model_class(name)  # an unknown name is the library's own ValueError, not the kwargs' fault
    where = f" (the model_kwargs stored in {source})" if source else ""
    if not isinstance(kwargs, dict):
        raise CLIError(f"cannot build {name}: its constructor arguments{where} are {type(kwargs).__name__} "
                       f"{kwargs!r:.60}, not a dict of names to values")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"cannot build {name} with {kwargs}{where}: {exc}") from None


# --------------------------------------------------------------------------- argument types


def _int_at_least(minimum: int):
    """An argparse ``type=`` for an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    return parse


positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)


def parse_shape(tokens: str | Sequence[str]) -> tuple[int, int, int]:
    """``(C, H, W)`` from ``"3,32,32"``, ``"3x32x32"`` or the tokens ``["3", "32", "32"]`` (mixed forms too)."""
    parts = [tokens] if isinstance(tokens, str) else list(tokens)
    text = " ".join(parts)
    fields = [f for f in text.lower().replace("x", " ").replace(",", " ").split() if f]
    try:
        shape = tuple(int(f) for f in fields)
    except ValueError:
        raise ValueError(f"must look like C,H,W or C H W (e.g. 1,28,28), got {text!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"must be three positive sizes C,H,W or C H W (e.g. 1,28,28), got {text!r}")
    return shape  # type: ignore[return-value]


class ShapeAction(argparse.Action):
    """``--input-shape C,H,W`` or ``--input-shape C H W`` (use with ``nargs='+'``): stores a ``(C, H, W)`` tuple."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        try:
            setattr(namespace, self.dest, parse_shape(values))
        except ValueError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None


def add_input_shape_argument(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--input-shape", nargs="+", action=ShapeAction, default=None, metavar="SHAPE",
                   help=f"{help_text}; C,H,W or C H W, e.g. 3,32,32")


# --------------------------------------------------------------------------- checkpoints


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """``path``, or ``path/checkpoint.npz`` when ``path`` is a training run directory (as ``evaluate`` reads it)."""
    from ..training import CHECKPOINT

    path = Path(path)
    return path / CHECKPOINT if path.is_dir() else path


def load_weights(model: Any, state: dict[str, Any], name: str, checkpoint: str, trained_as: str | None) -> None:
    """``model.load_state_dict(state)``, or a CLIError naming the checkpoint and the keys / shapes that do not fit."""
    from ..nn.module import StateDictError

    try:
        model.load_state_dict(state)
    except StateDictError as exc:
        was = f" (it holds a {trained_as})" if trained_as and _key(trained_as) != _key(name) else ""
        raise CLIError(f"{checkpoint} does not fit {name}{was}: {exc}") from None


def _key(name: str) -> str:
    return name.lower().replace("_", "-")


# --------------------------------------------------------------------------- models for an input shape


def shape_kwargs(name: str, shape: Sequence[int]) -> dict[str, Any]:
    """Constructor arguments that build model ``name`` for inputs of ``shape`` (C, H, W), where it allows.

    ``input_dim`` (SimpleConvNet) takes the whole shape; ``in_channels`` the channels; ``input_size``
    (AlexNetSmall) a square side. A model whose other sizes are fixed (LeNet5: 28x28) gets what it takes,
    and running it on another size fails with the op's shape error.
    """
    import inspect

    from ..models import MODELS

    ctor = MODELS[_key(name)][0]
    try:
        params = inspect.signature(ctor).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return {}
    c, h, w = (int(v) for v in shape)
    if "input_dim" in params:
        return {"input_dim": (c, h, w)}
    kwargs: dict[str, Any] = {}
    # a registry wrapper such as lenet5-classic's ``lambda **kw: LeNet5(classic=True, **kw)`` passes kwargs on;
    # in_channels is the one argument every registry model takes
    if "in_channels" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs["in_channels"] = c
    if "input_size" in params and h == w:
        kwargs["input_size"] = h
    return kwargs


def shape_error(name: str, shape: Sequence[int], exc: BaseException) -> CLIError:
    """The CLIError for a model that cannot run on ``shape``: names the model, both shapes and the op's error."""
    from ..models import input_shape

    built = "x".join(map(str, input_shape(name)))
    return CLIError(f"{name} cannot take an input of shape {'x'.join(map(str, shape))} (its default input is "
                    f"{built}): {exc}")


def check_input_shape(model: Any, name: str, shape: Sequence[int]) -> None:
    """Run ``model`` once (eval mode, no autograd) on one zero input of ``shape``; a shape_error if it cannot."""
    import numpy as np

    from ..tensor import Tensor, no_grad

    was_training = model.training
    model.eval()
    try:
        with no_grad():
            model(Tensor(np.zeros((1, *shape), dtype=np.float32)))
    except ValueError as exc:
        raise shape_error(name, shape, exc) from None
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- pictures


def picture_format(output: str) -> str:
    """The format an output path's suffix names (no suffix: png); a UsageError for one we cannot write."""
    suffix = Path(output).suffix.lower().lstrip(".")
    fmt = suffix or "png"
    if fmt not in PICTURE_FORMATS:
        raise UsageError(f"cannot write a .{suffix} picture ({output}); use a "
                         + ", ".join(f".{f}" for f in PICTURE_FORMATS) + " file name")
    return fmt


def write_picture(draw: Callable[[Path], Path], output: str) -> Path:
    """``draw(path)`` (the library's plots save in the format the suffix names), after checking the suffix."""
    picture_format(output)
    return draw(Path(output))
