"""Train the models of docs/results.md and record epochs, wall time and test accuracy as JSON.

Each run is ``MODEL:DATASET:EPOCHS`` (optionally ``:OPTIMIZER:LR:BATCH``); results are merged into
``benchmarks/train_results.json`` (one entry per model/dataset, the latest run wins), so long runs
can be started one at a time::

    python benchmarks/train_results.py simpleconvnet:mnist-sample:10
    nohup python benchmarks/train_results.py lenet5:fashion-mnist:10 simpleconvnet:fashion-mnist:8 &

Every run also leaves a full run directory (checkpoint, history, learning curves) under
``runs/results/<model>-<dataset>``. Timings depend on the machine and its load: not asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tinygrad_cnn as tc  # noqa: E402
from tinygrad_cnn.cli.train import DEFAULT_LR, MODEL_KWARGS, cosine_schedule, make_optimizer  # noqa: E402
from tinygrad_cnn.data import DataLoader, load_dataset  # noqa: E402
from tinygrad_cnn.training import fit  # noqa: E402

# The goals of issue #3 (test accuracy).
GOALS = {("simpleconvnet", "mnist-sample"): 0.97, ("simpleconvnet", "fashion-mnist"): 0.90,
         ("lenet5", "fashion-mnist"): 0.89, ("alexnet-small", "fashion-mnist"): 0.91,
         ("deepconvnet", "fashion-mnist"): 0.92}


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_one(spec: str, out_root: Path, seed: int, schedule: str) -> dict:
    parts = spec.split(":")
    model_name, dataset, epochs = parts[0], parts[1], int(parts[2])
    optimizer = parts[3] if len(parts) > 3 else "adam"
    lr = float(parts[4]) if len(parts) > 4 else DEFAULT_LR[optimizer]
    batch = int(parts[5]) if len(parts) > 5 else 100
    (x, y), (xt, yt) = load_dataset(dataset)
    tc.manual_seed(seed)
    model_kwargs = MODEL_KWARGS.get(model_name, {})
    model = tc.models.get_model(model_name, **model_kwargs)
    opt = make_optimizer(optimizer, model.parameters(), lr)
    out = out_root / f"{model_name}-{dataset}"
    config = dict(model=model_name, model_kwargs=model_kwargs, dataset=dataset, batch_size=batch, lr=lr,
                  optimizer=optimizer, weight_decay=0.0, schedule=schedule, seed=seed, limit=None, epochs=epochs,
                  title=f"{model_name} on {dataset}")
    sched = cosine_schedule(lr, epochs) if schedule == "cosine" else None
    print(f"== {model_name} on {dataset}: {epochs} epochs, {optimizer} lr {lr:g} ({schedule}), batch {batch}",
          flush=True)
    t0 = time.perf_counter()
    hist = fit(model, opt, DataLoader(x, y, batch, shuffle=True, seed=seed), DataLoader(xt, yt, 500), epochs=epochs,
               out_dir=out, config=config, lr_schedule=sched, progress_bar=False, example_input=xt[:1])
    wall = time.perf_counter() - t0
    accs = hist.test_acc
    return {
        "model": model_name, "model_kwargs": model_kwargs, "dataset": dataset,
        "parameters": model.num_parameters(), "epochs": epochs,
        "optimizer": optimizer, "lr": lr, "batch_size": batch, "schedule": schedule, "seed": seed,
        "train_samples": len(x), "test_samples": len(xt),
        "final_test_acc": accs[-1], "best_test_acc": max(accs), "test_acc_per_epoch": accs,
        "final_train_acc": hist.train_acc[-1], "wall_seconds": round(wall, 1),
        "seconds_per_epoch": [r["seconds"] for r in hist.epochs],
        "goal": GOALS.get((model_name, dataset)),
        "machine": {"cpus": os.cpu_count(), "numpy": np.__version__, "python": platform.python_version(),
                    "load_avg_at_end": os.getloadavg()[0]},
        "commit": _commit(), "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run_dir": str(out),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="MODEL:DATASET:EPOCHS[:OPTIMIZER:LR:BATCH]")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "train_results.json"), help="results file to merge into")
    p.add_argument("--out-root", default=str(ROOT / "runs" / "results"), help="where run directories go")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--schedule", choices=("constant", "cosine"), default="cosine")
    args = p.parse_args(argv)
    path = Path(args.json)
    for spec in args.runs:
        result = run_one(spec, Path(args.out_root), args.seed, args.schedule)
        results = json.loads(path.read_text()) if path.exists() else []
        results = [r for r in results if (r["model"], r["dataset"]) != (result["model"], result["dataset"])]
        results.append(result)
        tc.serialization.atomic_write(path, lambda f, rs=results: f.write(json.dumps(rs, indent=2) + "\n"), mode="w")
        goal = result["goal"]
        print(f"-> {result['model']} on {result['dataset']}: test accuracy {100 * result['final_test_acc']:.2f}% "
              f"(best {100 * result['best_test_acc']:.2f}%) in {result['wall_seconds']:.0f}s"
              + (f"; goal {100 * goal:.0f}% {'met' if result['final_test_acc'] >= goal else 'missed'}" if goal else ""),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
