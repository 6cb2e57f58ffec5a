"""Training loop: ``fit`` / ``evaluate``, one-file checkpoints with exact resume, learning curves.

>>> from tinygrad_cnn import models, optim, training
>>> from tinygrad_cnn.data import DataLoader, load_dataset
>>> (x, y), (xt, yt) = load_dataset("mnist-sample")
>>> model = models.SimpleConvNet()
>>> opt = optim.Adam(model.parameters(), lr=1e-3)
>>> history = training.fit(model, opt, DataLoader(x, y, 100, shuffle=True, seed=0),
...                        DataLoader(xt, yt, 500), epochs=2, out_dir="runs/demo")  # doctest: +SKIP

A run directory (``out_dir``) receives after every epoch ``checkpoint.npz`` (model + optimizer +
epoch + RNG states, one plain ``.npz``, written atomically), ``history.json`` / ``history.csv``
and ``learning_curves.png``; once, ``graph.svg`` and ``filters_before.png`` / ``filters_after.png``.
``fit(..., resume=True)`` continues from the checkpoint bit for bit.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from . import functional as F
from . import random as _random
from .nn import Module
from .optim import Optimizer
from .serialization import CheckpointError, atomic_write, load, save
from .tensor import Tensor, no_grad

__all__ = [
    "CHECKPOINT", "EvalResult", "History", "NonFiniteLossError", "evaluate", "fit", "load_checkpoint",
    "plot_history", "save_checkpoint", "text_array", "array_text",
]

CHECKPOINT = "checkpoint.npz"
FORMAT_VERSION = 1
_FIELDS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "images_per_s")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf; the run stopped and the last good checkpoint was kept."""

    def __init__(self, message: str, history: History, epoch: int, batch: int, checkpoint: Path | None):
        super().__init__(message)
        self.history, self.epoch, self.batch, self.checkpoint = history, epoch, batch, checkpoint


class EvalResult(NamedTuple):
    """Mean loss and accuracy over ``n`` samples."""

    loss: float
    accuracy: float
    n: int


@dataclass
class History:
    """One dict per finished epoch with the keys in ``History.FIELDS`` (test_* are None without a test set)."""

    epochs: list[dict[str, Any]] = field(default_factory=list)
    FIELDS = _FIELDS

    def append(self, **row: Any) -> None:
        self.epochs.append({k: row.get(k) for k in _FIELDS})

    def column(self, key: str) -> list[Any]:
        return [row[key] for row in self.epochs]

    @property
    def train_acc(self) -> list[float]:
        return self.column("train_acc")

    @property
    def test_acc(self) -> list[float | None]:
        return self.column("test_acc")

    def __len__(self) -> int:
        return len(self.epochs)

    def to_json(self) -> str:
        return json.dumps({"epochs": self.epochs}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> History:
        return cls([{k: row.get(k) for k in _FIELDS} for row in json.loads(text)["epochs"]])

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(_FIELDS), lineterminator="\n")
        w.writeheader()
        for row in self.epochs:
            w.writerow({k: "" if v is None else v for k, v in row.items()})
        return buf.getvalue()

    def save(self, out_dir: str | os.PathLike) -> None:
        """Write ``history.json`` and ``history.csv`` into ``out_dir``, atomically."""
        out_dir = Path(out_dir)
        atomic_write(out_dir / "history.json", lambda f: f.write(self.to_json()), mode="w")
        atomic_write(out_dir / "history.csv", lambda f: f.write(self.to_csv()), mode="w")


# --------------------------------------------------------------------------- evaluation

def _batches(data: Any, batch_size: int) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """A loader is iterated as is; an ``(x, y)`` pair (arrays or Tensors, a tuple or a list) is cut into
    ``batch_size`` slices."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(d, (np.ndarray, Tensor)) for d in data):
        x, y = (d.data if isinstance(d, Tensor) else d for d in data)
        if len(x) != len(y):
            raise ValueError(f"the (x, y) pair has {len(x)} inputs but {len(y)} labels")
        return ((x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size))
    return data


def evaluate(model: Module, data: Any, loss_fn: Callable[[Tensor, Any], Tensor] = F.softmax_cross_entropy,
             batch_size: int = 500) -> EvalResult:
    """Mean loss and accuracy of ``model`` on ``data`` (a DataLoader or an ``(x, y)`` pair), in batches.

    Runs in eval mode (dropout off) under ``no_grad``; the model's train/eval flags are
    restored afterwards. ``y``: int labels ``(N,)`` or one-hot ``(N, K)``.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    total_loss, correct, n = 0.0, 0, 0
    try:
        with no_grad():
            for xb, yb in _batches(data, batch_size):
                logits = model(Tensor._wrap(xb) if not isinstance(xb, Tensor) else xb)
                labels = np.asarray(yb.data if isinstance(yb, Tensor) else yb)
                k = len(labels)
                total_loss += float(loss_fn(logits, labels).data) * k
                correct += _num_correct(logits.data, labels)
                n += k
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    if n == 0:
        raise ValueError("evaluate: the data is empty")
    return EvalResult(total_loss / n, correct / n, n)


def _num_correct(logits: np.ndarray, labels: np.ndarray) -> int:
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    return int((np.asarray(logits).argmax(axis=1) == labels).sum())


# --------------------------------------------------------------------------- checkpoints

def text_array(text: str) -> np.ndarray:
    """A string as a uint8 array, so it fits in an ``.npz`` without pickle."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def array_text(arr: np.ndarray) -> str:
    """Inverse of :func:`text_array`."""
    return np.asarray(arr, dtype=np.uint8).tobytes().decode("utf-8")


def save_checkpoint(path: str | os.PathLike, model: Module, optimizer: Optimizer | None = None, epoch: int = 0,
                    loader: Any = None, history: History | None = None,
                    config: Mapping[str, Any] | None = None) -> Path:
    """Write one ``.npz``: ``model.<param>``, ``optim.<key>``, ``meta.*`` (RNG/loader/history/config as JSON text).

    The global ``tinygrad_cnn.random`` state and ``loader.state_dict()`` (when it has one) are
    stored so that a resumed run draws exactly the same dropout masks and batches.
    """
    state: dict[str, Any] = {f"model.{k}": v for k, v in model.state_dict().items()}
    if optimizer is not None:
        state.update({f"optim.{k}": v for k, v in optimizer.state_dict().items()})
        state["meta.optimizer"] = text_array(type(optimizer).__name__)
    state["meta.format"] = np.asarray(FORMAT_VERSION)
    state["meta.epoch"] = np.asarray(int(epoch))
    state["meta.rng"] = text_array(json.dumps(_random.get_state()))
    if loader is not None and hasattr(loader, "state_dict"):
        state["meta.loader"] = text_array(json.dumps(loader.state_dict()))
    if history is not None:
        state["meta.history"] = text_array(history.to_json())
    cfg = dict(config or {})
    state["meta.config"] = text_array(json.dumps(cfg))
    if "model" in cfg:
        state["meta.model"] = text_array(str(cfg["model"]))
    return save(state, path)


@dataclass
class Checkpoint:
    """A checkpoint read back: state dicts, epoch, JSON metadata (``rng``/``loader`` None when absent)."""

    model: dict[str, np.ndarray]
    optim: dict[str, np.ndarray]
    epoch: int
    config: dict[str, Any]
    history: History
    rng: dict[str, Any] | None
    loader: dict[str, Any] | None
    path: Path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a :func:`save_checkpoint` file (or a run directory holding ``checkpoint.npz``)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    sd = load(path)
    if "meta.epoch" not in sd or not any(k.startswith("model.") for k in sd):
        raise CheckpointError(f"load_checkpoint: {path} is a plain state dict, not a training checkpoint "
                              f"(no meta.epoch / model.* keys); load it with model.load_state_dict(tc.load(...))")

    def meta(key: str, parse: Callable[[Any], Any], json_text: bool = True) -> Any:
        """``meta.<...>`` parsed, or a CheckpointError naming the file and the key."""
        if key not in sd:
            return None
        try:
            return parse(array_text(sd[key]) if json_text else sd[key])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CheckpointError(f"load_checkpoint: {path}: {key} is not readable ({type(exc).__name__}: "
                                  f"{exc})") from None

    config = meta("meta.config", json.loads)
    if config is not None and not isinstance(config, dict):
        raise CheckpointError(f"load_checkpoint: {path}: meta.config is not a JSON object")
    return Checkpoint(
        model={k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")},
        optim={k[len("optim."):]: v for k, v in sd.items() if k.startswith("optim.")},
        epoch=meta("meta.epoch", lambda a: int(np.asarray(a).item()), json_text=False),
        config=config or {},
        history=meta("meta.history", History.from_json) or History(),
        rng=meta("meta.rng", json.loads),
        loader=meta("meta.loader", json.loads),
        path=path,
    )


# --------------------------------------------------------------------------- pictures

def plot_history(history: History, path: str | os.PathLike, title: str | None = None) -> Path:
    """Train/test accuracy per epoch as a PNG (like the book's chapter-7 plot), written atomically.

    Needs matplotlib (the ``viz`` extra); uses ``matplotlib.figure.Figure`` directly, so no
    global pyplot state or GUI backend is involved.
    """
    from .viz.plots import _figure  # names the viz extra when matplotlib is missing

    epochs = history.column("epoch")
    fig = _figure(6, 4, 100)
    ax = fig.add_subplot()
    ax.plot(epochs, history.train_acc, marker="o", label="train")
    test = history.test_acc
    if any(v is not None for v in test):
        ax.plot(epochs, [np.nan if v is None else v for v in test], marker="s", linestyle="--", label="test")
    ax.set_xlabel("epochs")
    ax.set_ylabel("accuracy")
    lo = min([v for v in history.train_acc + test if v is not None] or [0.0])
    ax.set_ylim(max(0.0, math.floor(lo * 10) / 10 - 0.05), 1.0)
    if epochs:
        ax.set_xticks(epochs if len(epochs) <= 20 else epochs[:: math.ceil(len(epochs) / 20)])
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return atomic_write(Path(path), lambda f: fig.savefig(f, format="png"))


#: The extra that brings a package a picture needs.
_EXTRAS = {"matplotlib": "viz"}


def _try_picture(what: str, make: Callable[[], Any], log: Callable[[str], None]) -> bool:
    """Run one picture-making call; a failure prints a one-line note instead of stopping training.

    The global RNG state is restored afterwards, so pictures never change a seeded run.
    """
    rng_state = _random.get_state()
    try:
        make()
        return True
    except ImportError as exc:
        extra = _EXTRAS.get((exc.name or "").split(".")[0])
        hint = f": pip install 'tinygrad-cnn[{extra}]'" if extra else ""
        log(f"note: skipped {what} ({exc.name or exc} is not installed{hint})")
    except Exception as exc:  # noqa: BLE001 - a picture must never crash training
        if type(exc).__name__ == "GraphvizNotFoundError":
            log(f"note: skipped {what}: the Graphviz `dot` program is not installed (DOT source kept)")
        else:
            log(f"note: skipped {what}: {type(exc).__name__}: {exc}")
    finally:
        _random.set_state(rng_state)
    return False


def _first_conv_weight(model: Module) -> Tensor | None:
    from .nn import Conv2d

    return next((m.weight for m in model.modules() if isinstance(m, Conv2d)), None)


def _draw_graph(model: Module, example_input: Any, path: Path) -> None:
    from . import viz

    viz.save_graph(viz.draw_model(model, example_input, group_by_module=True), path)


def _plot_filters(model: Module, path: Path, title: str) -> None:
    from . import viz

    w = _first_conv_weight(model)
    if w is None:
        raise ValueError("the model has no Conv2d layer")
    viz.plot_filters(w, path, title=title)


# --------------------------------------------------------------------------- the loop

def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.2f}%" if pct else f"{v:.4f}"


def fit(model: Module, optimizer: Optimizer, train_loader: Any, test_loader: Any = None, epochs: int = 1,
        out_dir: str | os.PathLike | None = None, resume: bool = False,
        loss_fn: Callable[[Tensor, Any], Tensor] = F.softmax_cross_entropy, config: Mapping[str, Any] | None = None,
        lr_schedule: Callable[[int], float] | None = None, progress_bar: bool = True, pictures: bool = True,
        example_input: Any = None, log: Callable[[str], None] | None = print) -> History:
    """Train ``model`` for ``epochs`` epochs in total; return the :class:`History`.

    train_loader: yields ``(xb (N, C, H, W), yb (N,))`` NumPy batches (a ``DataLoader``; its
    ``state_dict()`` goes into the checkpoint). test_loader: a loader or ``(x, y)``, evaluated
    after each epoch in eval mode. out_dir: the run directory (nothing is written when None).
    resume: continue from ``out_dir/checkpoint.npz`` (model, optimizer, RNG, loader, history) up
    to ``epochs`` in total, giving bitwise the weights an uninterrupted run would have; a checkpoint
    that the model or the optimizer refuses changes neither. lr_schedule: ``epoch (1-based) -> lr``,
    set before each epoch. config: JSON-able run settings stored in the checkpoint (``model`` there
    lets ``evaluate`` rebuild the net); a resume without ``config`` keeps the checkpoint's.

    A NaN/inf loss stops training before the bad step is applied: history is written, the last
    good checkpoint stays as it was, and :class:`NonFiniteLossError` is raised.
    """
    from .progress import progress

    say = log or (lambda s: None)
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = out / CHECKPOINT if out is not None else None
    history, start = History(), 0
    if resume:
        if ckpt_path is None:
            raise ValueError("fit: resume=True needs out_dir (the run directory holding checkpoint.npz)")
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"fit: cannot resume, no checkpoint at {ckpt_path}")
        ck = load_checkpoint(ckpt_path)
        before = optimizer.state_dict()
        if ck.optim:
            optimizer.load_state_dict(ck.optim)  # checked before anything changes
        try:
            model.load_state_dict(ck.model)
        except Exception:
            optimizer.load_state_dict(before)  # all or nothing: the model refused, so the optimizer is as it was
            raise
        if ck.rng is not None:
            _random.set_state(ck.rng)
        if ck.loader is not None and hasattr(train_loader, "load_state_dict"):
            train_loader.load_state_dict(ck.loader)
        history, start = ck.history, ck.epoch
        say(f"resumed from {ckpt_path} at epoch {start}")
        if start >= epochs:
            say(f"nothing to do: the checkpoint is at epoch {start}, training was asked to reach epoch {epochs}")
            return history

    # a resume without config= keeps the run's (evaluate rebuilds the model from its "model")
    cfg = dict(config if config is not None else ck.config if resume and ck.config else {})
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "config.json", lambda f: f.write(json.dumps(cfg, indent=2)), mode="w")
        if pictures and not resume:
            if example_input is None:
                first = next(iter(_batches(test_loader, 1)), None) if test_loader is not None else None
                example_input = first[0][:1] if first is not None else None
            if example_input is not None:
                _try_picture("the model graph", lambda: _draw_graph(model, example_input, out / "graph.svg"), say)
            else:
                say("note: skipped the model graph (no test data and no example_input to run it on)")
            _try_picture("the first-layer filters", lambda: _plot_filters(
                model, out / "filters_before.png", "first-layer filters before training"), say)

    model.train()
    n_batches = len(train_loader) if hasattr(train_loader, "__len__") else None
    for epoch in range(start + 1, epochs + 1):
        if lr_schedule is not None:
            optimizer.lr = float(lr_schedule(epoch))
        t0 = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = progress(train_loader, desc=f"epoch {epoch}/{epochs}", unit="batch", disable=not progress_bar,
                       leave=False)
        for b, (xb, yb) in enumerate(bar, 1):
            # NumPy's overflow/invalid warnings stay quiet, as PyTorch is: a loss that turns inf/NaN stops
            # the run below with one message that says where and what to do
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                logits = model(Tensor._wrap(xb))
                loss = loss_fn(logits, yb)
            lv = float(loss.data)
            if not math.isfinite(lv):
                if hasattr(bar, "close"):
                    bar.close()
                if out is not None:
                    history.save(out)
                # only a checkpoint of this run: one this call wrote, or the one it resumed from
                good = history.epochs[-1]["epoch"] if len(history) else start
                kept = ckpt_path if ckpt_path is not None and good > 0 and ckpt_path.is_file() else None
                where = f"the last good checkpoint {kept} (epoch {good}) was kept" if kept else (
                    "no checkpoint had been written yet")
                msg = (f"training stopped: the loss is {lv} at epoch {epoch}, batch {b} (lr {optimizer.lr:g}); "
                       f"the step was not applied and {where}. Lower the learning rate or check the input data "
                       f"for NaN/inf.")
                say(msg)
                raise NonFiniteLossError(msg, history, epoch, b, kept)
            optimizer.zero_grad()
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                loss.backward()
                optimizer.step()
            k = len(yb)
            loss_sum += lv * k
            correct += _num_correct(logits.data, np.asarray(yb))
            seen += k
            if progress_bar and (b % 5 == 0 or b == 1 or b == n_batches):  # the last one too: no stale numbers
                bar.set_postfix({"loss": f"{loss_sum / seen:.4f}", "acc": f"{correct / seen:.4f}",
                                 "img/s": f"{seen / (time.perf_counter() - t0):.0f}"}, refresh=False)
        seconds = time.perf_counter() - t0
        if seen == 0:
            raise ValueError("fit: the training loader yielded no batches")
        test = evaluate(model, test_loader, loss_fn) if test_loader is not None else None  # restores train mode
        history.append(epoch=epoch, train_loss=loss_sum / seen, train_acc=correct / seen,
                       test_loss=test.loss if test else None, test_acc=test.accuracy if test else None,
                       lr=float(optimizer.lr), seconds=round(seconds, 3), images_per_s=round(seen / seconds, 1))
        say(f"epoch {epoch}/{epochs}  train loss {_fmt(loss_sum / seen)} acc {_fmt(correct / seen, True)}  "
            f"test loss {_fmt(test.loss if test else None)} acc {_fmt(test.accuracy if test else None, True)}  "
            f"{seconds:.1f}s {seen / seconds:.0f} img/s")
        if out is not None:
            save_checkpoint(ckpt_path, model, optimizer, epoch, train_loader, history, cfg)
            history.save(out)
            if pictures:
                _try_picture("the learning curves", lambda: plot_history(
                    history, out / "learning_curves.png", title=cfg.get("title")), say)

    if out is not None and pictures:
        _try_picture("the first-layer filters", lambda: _plot_filters(
            model, out / "filters_after.png", "first-layer filters after training"), say)
    return history
