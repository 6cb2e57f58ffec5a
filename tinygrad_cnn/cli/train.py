"""``tinygrad-cnn train`` and ``tinygrad-cnn evaluate``: train a model into a run directory, score a checkpoint."""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from ._common import CLIError, build_model, load_weights, positive_int

TRAIN_MODELS = ("simpleconvnet", "lenet5", "lenet5-classic", "alexnet-small", "deepconvnet")
DATASETS = ("mnist-sample", "mnist", "fashion-mnist")
OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam")
# Learning rates per update rule: the book's chapter-6 values, except momentum (0.05, tuned on mnist-sample).
DEFAULT_LR = {"sgd": 0.01, "momentum": 0.05, "adagrad": 0.01, "rmsprop": 0.001, "adam": 0.001}
# Settings that define a run: on --resume they come from the checkpoint (an explicit, different value is an error).
# The defaults are the README's main job: SimpleConvNet on mnist-sample, 97.8% test accuracy in well under 2 minutes
# on 2 cores (docs/results.md): SGD momentum 0.9, lr 0.05 with cosine decay, L2 1e-3, batch 50, 12 epochs, and
# random shifts of up to 2 pixels (augmentation: 97.8% instead of 96.9% on the 4,000 sample digits).
DEFAULTS: dict[str, Any] = {"model": "simpleconvnet", "dataset": "mnist-sample", "batch_size": 50, "lr": None,
                            "optimizer": "momentum", "weight_decay": 1e-3, "schedule": "cosine", "seed": 0,
                            "limit": None, "random_shift": 2}
DEFAULT_EPOCHS = 12
# Constructor arguments the CLI passes (stored in the checkpoint, so `evaluate` rebuilds the same net). He init
# for SimpleConvNet: the book's chapter-6 advice for ReLU nets; its 0.01 default learns far slower on 4,000 digits.
MODEL_KWARGS: dict[str, dict[str, Any]] = {"simpleconvnet": {"weight_init_std": "he"}}


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=TRAIN_MODELS, help=f"network to train (default {DEFAULTS['model']})")
    p.add_argument("--dataset", choices=DATASETS, help=f"data set (default {DEFAULTS['dataset']})")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                   help=f"total epochs; with --resume, train until this many (default {DEFAULT_EPOCHS})")
    p.add_argument("--batch-size", type=int, help=f"mini-batch size (default {DEFAULTS['batch_size']})")
    p.add_argument("--lr", type=float, help="learning rate (default per optimizer: "
                   + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help=f"update rule (default {DEFAULTS['optimizer']}; "
                   "momentum = SGD with momentum 0.9)")
    p.add_argument("--weight-decay", type=float, help=f"L2 weight decay (default {DEFAULTS['weight_decay']:g})")
    p.add_argument("--schedule", choices=("constant", "cosine"),
                   help=f"learning-rate schedule over the epochs (default {DEFAULTS['schedule']})")
    p.add_argument("--seed", type=int, help=f"seed for init, shuffling and dropout (default {DEFAULTS['seed']})")
    p.add_argument("--out", help="run directory (default runs/<model>-<dataset>-<timestamp>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.npz")
    p.add_argument("--random-shift", type=int, metavar="PIXELS",
                   help=f"augment: shift each training image by up to PIXELS (default {DEFAULTS['random_shift']}; "
                        "0 turns augmentation off)")
    p.add_argument("--limit", type=int, help="use only the first N training samples (smoke runs)")
    p.add_argument("--data-dir", help="directory holding the IDX files (searched before the default places)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-pictures", action="store_true", help="skip the graph, filter and learning-curve pictures")


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint.npz written by `train` (or its run directory)")
    p.add_argument("--dataset", choices=DATASETS, help="data set (default: the one the model was trained on)")
    p.add_argument("--split", choices=("test", "train"), default="test", help="which split to score (default test)")
    p.add_argument("--batch-size", type=positive_int, default=500, help="evaluation batch size (default 500)")
    p.add_argument("--data-dir", help="directory holding the IDX files")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings: explicit arguments over defaults, or over the checkpoint's on --resume."""
    explicit = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}
    base = dict(DEFAULTS)
    if args.resume:
        from ..training import CHECKPOINT, load_checkpoint

        if not args.out:
            raise SystemExit("train: --resume needs --out DIR (the run directory to continue)")
        from pathlib import Path

        path = Path(args.out) / CHECKPOINT
        if not path.is_file():
            raise SystemExit(f"train: cannot resume, no checkpoint at {path}")
        ck = load_checkpoint(path)
        saved = ck.config
        missing = [k for k in _RUN_SETTINGS if k not in saved and k not in explicit]
        if missing:  # a run made with fit() in Python: its settings are unknown here, so no defaults are assumed
            flags = ", ".join("--" + k.replace("_", "-") for k in missing)
            raise SystemExit(f"train: cannot resume {path}: it was not written by `tinygrad-cnn train` and its config "
                             f"does not record {flags}{_optimizer_hint(ck.optim)}; pass them to continue with "
                             "those settings, or resume it with fit(..., resume=True) in Python")
        for k, v in explicit.items():
            if k in saved and saved[k] != v:
                raise SystemExit(f"train: --{k.replace('_', '-')} {v} differs from the checkpoint's {saved[k]!r}; "
                                 f"a resumed run keeps its settings")
        base.update({k: saved[k] for k in DEFAULTS if k in saved})
        if "random_shift" not in saved:  # written before --random-shift existed: trained without augmentation
            base["random_shift"] = 0
    base.update(explicit)
    if base["lr"] is None:
        base["lr"] = DEFAULT_LR[base["optimizer"]]
    return base


# What a resumed run must know; `train` records them all in the checkpoint's config.
_RUN_SETTINGS = ("model", "dataset", "batch_size", "lr", "optimizer", "weight_decay", "schedule", "seed")


def _optimizer_hint(optim_state: dict[str, Any]) -> str:
    """`` (its optimizer state is Adam's)`` from the hyper-parameter keys of a saved optimizer, else ''."""
    keys = set(optim_state)
    for key, name in (("group.betas", "adam"), ("group.alpha", "rmsprop"), ("group.lr_decay", "adagrad")):
        if key in keys:
            return f" (its optimizer state is --optimizer {name}'s)"
    if "group.momentum" in keys:
        momentum = float(optim_state["group.momentum"])
        return f" (its optimizer state is --optimizer {'momentum' if momentum else 'sgd'}'s)"
    return ""


def make_optimizer(name: str, params: Any, lr: float, weight_decay: float = 0.0) -> Any:
    """Optimizer by CLI name; ``momentum`` is SGD with momentum 0.9."""
    from .. import optim

    if name == "sgd":
        return optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        return optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adagrad":
        return optim.AdaGrad(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")


def cosine_schedule(lr: float, epochs: int) -> Any:
    """``epoch (1-based) -> lr``: half a cosine from ``lr`` at epoch 1 down towards 0 at the end."""
    return lambda epoch: lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / max(epochs, 1)))


def _new_run_dir(base: str) -> Any:
    """Create and return ``base``, or ``base-2``, ``base-3``, ... if it exists: two runs started in the same
    second (the default name's resolution) never share a directory."""
    from pathlib import Path

    for n in range(1, 10_000):
        path = Path(base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise SystemExit(f"train: could not create a new run directory next to {base}")


def run_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    import tinygrad_cnn as tc

    from ..data import DataLoader, load_dataset
    from ..training import CHECKPOINT, NonFiniteLossError, fit

    s = _settings(args)
    if args.epochs < 1:
        raise SystemExit(f"train: --epochs must be >= 1, got {args.epochs}")
    if s["batch_size"] < 1:
        raise SystemExit(f"train: --batch-size must be >= 1, got {s['batch_size']}")
    out = Path(args.out) if args.out else None  # a default directory is made once the arguments are checked
    if out is not None and out.exists() and not out.is_dir():
        raise SystemExit(f"train: --out {out} is a file; it must be a run directory (new or existing)")
    if out is not None and not args.resume and (out / CHECKPOINT).exists():
        raise SystemExit(f"train: {out} already holds a run ({CHECKPOINT}); pass --resume to continue it, or choose "
                         "another --out (or delete that directory) to start afresh")
    (x_train, y_train), (x_test, y_test) = load_dataset(s["dataset"], root=args.data_dir)
    if s["limit"] is not None:
        if s["limit"] < 1:
            raise SystemExit(f"train: --limit must be >= 1, got {s['limit']}")
        x_train, y_train = x_train[: s["limit"]], y_train[: s["limit"]]

    tc.manual_seed(s["seed"])
    model_kwargs = MODEL_KWARGS.get(s["model"], {})
    model = tc.models.get_model(s["model"], **model_kwargs)
    opt = make_optimizer(s["optimizer"], model.parameters(), s["lr"], s["weight_decay"])
    if s["random_shift"] < 0:
        raise SystemExit(f"train: --random-shift must be >= 0, got {s['random_shift']}")
    train_loader = DataLoader(x_train, y_train, batch_size=s["batch_size"], shuffle=True, seed=s["seed"],
                              random_shift=s["random_shift"])
    if out is None:
        out = _new_run_dir(f"runs/{s['model']}-{s['dataset']}-{time.strftime('%Y%m%d-%H%M%S')}")
    test_loader = DataLoader(x_test, y_test, batch_size=500)
    schedule = cosine_schedule(s["lr"], args.epochs) if s["schedule"] == "cosine" else None
    config = dict(s, model_kwargs=model_kwargs, epochs=args.epochs, title=f"{s['model']} on {s['dataset']}")
    print(f"training {s['model']} ({model.num_parameters():,} parameters) on {s['dataset']} "
          f"({len(x_train):,} train / {len(x_test):,} test), {s['optimizer']} lr {s['lr']:g} "
          f"({s['schedule']}), batch {s['batch_size']}, shifts <= {s['random_shift']} px, {args.epochs} epochs, "
          f"seed {s['seed']} -> {out}")
    t0 = time.perf_counter()
    try:
        history = fit(model, opt, train_loader, test_loader, epochs=args.epochs, out_dir=out, resume=args.resume,
                      config=config, lr_schedule=schedule, progress_bar=not args.no_progress,
                      pictures=not args.no_pictures, example_input=x_test[:1])
    except NonFiniteLossError:
        return 1  # fit already printed why and which checkpoint was kept
    last = history.epochs[-1] if len(history) else None
    if last is None or last["test_acc"] is None:
        return 0
    print(f"final test accuracy: {100 * last['test_acc']:.2f}% (loss {last['test_loss']:.4f}) after "
          f"{last['epoch']} epoch{'s' if last['epoch'] != 1 else ''}, {time.perf_counter() - t0:.1f}s; "
          f"run directory: {out}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ..data import DataLoader, load_dataset
    from ..serialization import CheckpointError
    from ..training import evaluate, load_checkpoint

    try:
        ck = load_checkpoint(args.checkpoint)
    except (FileNotFoundError, CheckpointError) as exc:
        print(f"tinygrad-cnn evaluate: error: {exc}", file=sys.stderr)
        return 2
    name = ck.config.get("model")
    if not name:
        print(f"tinygrad-cnn evaluate: error: {ck.path} does not say which model it holds (no 'model' in "
              "meta.config)", file=sys.stderr)
        return 2
    try:  # stored constructor arguments that do not fit: a broken file too
        model = build_model(name, ck.config.get("model_kwargs") or {}, str(ck.path))
    except CLIError as exc:
        print(f"tinygrad-cnn evaluate: error: {exc}", file=sys.stderr)
        return 2
    load_weights(model, ck.model, name, str(ck.path), None)
    dataset = args.dataset or ck.config.get("dataset", "mnist-sample")
    train, test = load_dataset(dataset, root=args.data_dir)
    x, y = test if args.split == "test" else train
    res = evaluate(model, DataLoader(x, y, batch_size=args.batch_size))
    print(f"{name} (epoch {ck.epoch}) on {dataset} {args.split}: accuracy {100 * res.accuracy:.2f}% "
          f"({round(res.accuracy * res.n)}/{res.n}), loss {res.loss:.4f}")
    return 0


COMMANDS = {
    "train": ("train a CNN and write checkpoint, metrics and pictures to a run directory",
              add_train_arguments, run_train),
    "evaluate": ("score a training checkpoint on a data set", add_evaluate_arguments, run_evaluate),
}
