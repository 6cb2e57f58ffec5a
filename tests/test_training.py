"""Tests for tinygrad_cnn.training: a real run on mnist-sample, checkpoints, exact resume, NaN stop, evaluate."""

from __future__ import annotations

import csv
import json
import shutil
import sys

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import nn, optim, training
from tinygrad_cnn.data import DataLoader, load_dataset


@pytest.fixture(scope="module")
def sample():
    return load_dataset("mnist-sample")


class TinyNet(nn.Module):
    """Conv + pool + dropout + linear: small enough for fast tests, with dropout so the global RNG matters."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 5)
        self.pool = nn.MaxPool2d(4)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(4 * 6 * 6, 10)

    def forward(self, x):
        return self.fc(self.drop(self.pool(F.relu(self.conv1(x))).flatten(1)))


def make_run(sample, n=300, seed=0, batch_size=50):
    (x, y), (xt, yt) = sample
    tc.manual_seed(seed)
    model = TinyNet()
    opt = optim.Adam(model.parameters(), lr=0.01)
    loader = DataLoader(x[:n], y[:n], batch_size=batch_size, shuffle=True, seed=seed)
    return model, opt, loader, (xt[:200], yt[:200])


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ----------------------------------------------------------------------------- a real run

def test_simpleconvnet_learns_mnist_sample(sample):
    """One epoch of the CLI's recipe (He init, SGD momentum) on the 4,000 real digits: > 90% on the 1,000 test ones."""
    (x, y), test = sample
    tc.manual_seed(0)
    model = tc.models.SimpleConvNet(weight_init_std="he")
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    before = training.evaluate(model, test)
    assert before.accuracy < 0.3  # untrained: about chance
    hist = training.fit(model, opt, DataLoader(x, y, batch_size=50, shuffle=True, seed=0), test, epochs=1,
                        progress_bar=False, log=None)
    assert len(hist) == 1 and hist.column("epoch") == [1]
    assert hist.test_acc[-1] > 0.90, hist.epochs
    assert hist.epochs[-1]["test_loss"] < before.loss / 3
    res = training.evaluate(model, test)
    assert res.accuracy == hist.test_acc[-1] and res.n == 1000


def test_seeded_runs_are_bitwise_reproducible(sample):
    a = make_run(sample)
    training.fit(a[0], a[1], a[2], epochs=2, progress_bar=False, log=None)
    b = make_run(sample)
    training.fit(b[0], b[1], b[2], epochs=2, progress_bar=False, log=None)
    assert_same_weights(weights(a[0]), weights(b[0]))
    c = make_run(sample, seed=1)
    training.fit(c[0], c[1], c[2], epochs=2, progress_bar=False, log=None)
    assert not np.array_equal(weights(a[0])["fc.weight"], weights(c[0])["fc.weight"])


# ----------------------------------------------------------------------------- run directory and checkpoints

def test_run_directory_contents(sample, tmp_path, capsys):
    model, opt, loader, test = make_run(sample)
    hist = training.fit(model, opt, loader, test, epochs=2, out_dir=tmp_path, progress_bar=False,
                        config={"model": "tiny", "lr": 0.01})
    printed = capsys.readouterr().out
    assert "epoch 1/2" in printed and "epoch 2/2" in printed and "test loss" in printed and "acc" in printed

    data = json.loads((tmp_path / "history.json").read_text())
    assert [r["epoch"] for r in data["epochs"]] == [1, 2]
    assert data["epochs"] == hist.epochs
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert list(rows[0]) == list(training.History.FIELDS)
    assert [float(r["test_acc"]) for r in rows] == hist.test_acc
    assert json.loads((tmp_path / "config.json").read_text()) == {"model": "tiny", "lr": 0.01}

    with np.load(tmp_path / "checkpoint.npz", allow_pickle=False) as z:  # plain npz, no pickle needed
        keys = set(z.files)
        assert z["meta.epoch"] == 2 and z["meta.rng"].dtype == np.uint8
    assert {"model.conv1.weight", "model.fc.bias", "optim.state.0.exp_avg", "optim.group.lr",
            "optim.step_count", "meta.epoch", "meta.rng", "meta.loader", "meta.history", "meta.config"} <= keys
    ck = training.load_checkpoint(tmp_path)
    assert ck.epoch == 2 and ck.config["model"] == "tiny"
    assert ck.rng["bit_generator"] == "PCG64" and ck.loader["epoch"] == 2
    assert ck.history.epochs == hist.epochs
    assert_same_weights(ck.model, weights(model))

    pytest.importorskip("matplotlib")
    for name in ("learning_curves.png", "filters_before.png", "filters_after.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    before = (tmp_path / "filters_before.png").read_bytes()
    assert before != (tmp_path / "filters_after.png").read_bytes()
    if shutil.which("dot"):
        svg = (tmp_path / "graph.svg").read_text()
        assert "<svg" in svg and "Conv2d" in svg
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_resume_gives_bitwise_the_same_weights(sample, tmp_path):
    straight = make_run(sample)
    h2 = training.fit(straight[0], straight[1], straight[2], epochs=2, out_dir=tmp_path / "a", progress_bar=False,
                      pictures=False, log=None)

    first = make_run(sample)
    training.fit(first[0], first[1], first[2], epochs=1, out_dir=tmp_path / "b", progress_bar=False,
                 pictures=False, log=None)
    # a fresh process would start from other weights and another RNG state: imitate that
    tc.manual_seed(12345)
    model, opt, loader, _ = make_run(sample, seed=7)
    tc.manual_seed(999)
    h = training.fit(model, opt, loader, epochs=2, out_dir=tmp_path / "b", resume=True, progress_bar=False,
                     pictures=False, log=None)
    assert_same_weights(weights(straight[0]), weights(model))
    sa, sb = straight[1].state_dict(), opt.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    assert [r["train_loss"] for r in h.epochs] == [r["train_loss"] for r in h2.epochs]
    assert tc.random.get_state() == straight_state_after(sample)


def straight_state_after(sample):
    """The global RNG state after a straight 2-epoch run (resume must leave it the same)."""
    model, opt, loader, _ = make_run(sample)
    training.fit(model, opt, loader, epochs=2, progress_bar=False, log=None)
    return tc.random.get_state()


def test_resume_without_checkpoint_or_when_done(sample, tmp_path):
    model, opt, loader, _ = make_run(sample)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        training.fit(model, opt, loader, epochs=1, out_dir=tmp_path, resume=True, log=None)
    with pytest.raises(ValueError, match="out_dir"):
        training.fit(model, opt, loader, epochs=1, resume=True, log=None)
    training.fit(model, opt, loader, epochs=1, out_dir=tmp_path, pictures=False, progress_bar=False, log=None)
    before = weights(model)
    msgs = []
    h = training.fit(model, opt, loader, epochs=1, out_dir=tmp_path, resume=True, log=msgs.append)
    assert len(h) == 1 and "nothing to do" in msgs[-1]
    assert_same_weights(before, weights(model))


def test_resume_without_config_keeps_the_runs_config(sample, tmp_path):
    """evaluate rebuilds the model from the checkpoint's config: a resume must not erase it."""
    cfg = {"model": "tinynet", "dataset": "mnist-sample", "lr": 0.01}
    model, opt, loader, _ = make_run(sample)
    training.fit(model, opt, loader, epochs=1, out_dir=tmp_path, config=cfg, progress_bar=False, pictures=False,
                 log=None)
    model, opt, loader, _ = make_run(sample)
    training.fit(model, opt, loader, epochs=2, out_dir=tmp_path, resume=True, progress_bar=False, pictures=False,
                 log=None)
    assert training.load_checkpoint(tmp_path).config == cfg
    assert json.loads((tmp_path / "config.json").read_text()) == cfg


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_refused_resume_changes_neither_model_nor_optimizer(sample, tmp_path):
    model, opt, loader, _ = make_run(sample)  # Adam
    training.fit(model, opt, loader, epochs=1, out_dir=tmp_path, progress_bar=False, pictures=False, log=None)
    # the optimizer refuses (an Adam checkpoint into SGD): the model must not have been loaded
    tc.manual_seed(3)
    net = TinyNet()
    sgd = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net_before, sgd_before = weights(net), sgd.state_dict()
    with pytest.raises(ValueError, match="group.betas"):
        training.fit(net, sgd, loader, epochs=2, out_dir=tmp_path, resume=True, log=None)
    assert_same_weights(net_before, weights(net))
    assert _same_state(sgd_before, sgd.state_dict())
    # the optimizer takes it (same parameter shapes) but the model refuses (other names): the optimizer
    # must be as it was
    class Renamed(TinyNet):
        def __init__(self):
            super().__init__()
            self.first, self.last = self.conv1, self.fc
            del self.conv1, self.fc

        def forward(self, x):  # pragma: no cover - never run
            raise AssertionError

    other = Renamed()
    other_opt = optim.Adam(other.parameters(), lr=0.01)
    before = other_opt.state_dict()
    with pytest.raises(ValueError, match="conv1.weight|first.weight"):
        training.fit(other, other_opt, loader, epochs=2, out_dir=tmp_path, resume=True, log=None)
    assert _same_state(before, other_opt.state_dict())


def test_load_checkpoint_rejects_plain_state_dict(tmp_path):
    path = tc.save(TinyNet().state_dict(), tmp_path / "plain.npz")
    with pytest.raises(tc.CheckpointError, match="plain state dict"):
        training.load_checkpoint(path)


# ----------------------------------------------------------------------------- NaN / inf

class PoisonAt:
    """Wrap a DataLoader; in epoch ``epoch`` (1-based) batch ``batch`` comes with a NaN pixel."""

    def __init__(self, loader, epoch, batch):
        self.loader, self.epoch, self.batch, self.seen = loader, epoch, batch, 0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.seen += 1
        for b, (xb, yb) in enumerate(self.loader, 1):
            if self.seen == self.epoch and b == self.batch:
                xb = xb.copy()
                xb[0, 0, 3, 3] = np.nan
            yield xb, yb

    def state_dict(self):
        return self.loader.state_dict()

    def load_state_dict(self, s):
        self.loader.load_state_dict(s)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(sample, tmp_path, capsys):
    model, opt, loader, test = make_run(sample)
    poisoned = PoisonAt(loader, epoch=2, batch=3)
    with pytest.raises(training.NonFiniteLossError) as exc:
        training.fit(model, opt, poisoned, test, epochs=3, out_dir=tmp_path, progress_bar=False, pictures=False)
    err = exc.value
    msg = str(err)
    assert "nan" in msg and "epoch 2, batch 3" in msg and "checkpoint.npz (epoch 1) was kept" in msg
    assert msg in capsys.readouterr().out
    assert err.epoch == 2 and err.batch == 3 and err.checkpoint == tmp_path / "checkpoint.npz"
    ck = training.load_checkpoint(tmp_path)
    assert ck.epoch == 1 and len(ck.history) == 1
    assert len(json.loads((tmp_path / "history.json").read_text())["epochs"]) == 1
    # the bad step was not applied: the weights are finite
    assert all(np.isfinite(p.data).all() for p in model.parameters())

    # the kept checkpoint is the one an unpoisoned epoch-1 run writes, and resuming from it works
    clean = make_run(sample)
    training.fit(clean[0], clean[1], clean[2], test, epochs=1, out_dir=tmp_path / "clean", progress_bar=False,
                 pictures=False, log=None)
    assert_same_weights(ck.model, training.load_checkpoint(tmp_path / "clean").model)
    model2, opt2, loader2, _ = make_run(sample)
    h = training.fit(model2, opt2, loader2, test, epochs=2, out_dir=tmp_path, resume=True, progress_bar=False,
                     pictures=False, log=None)
    assert len(h) == 2 and np.isfinite(h.epochs[-1]["train_loss"])


def test_nan_in_a_fresh_run_does_not_claim_an_older_runs_checkpoint(sample, tmp_path):
    """A new run (no resume) into a directory that holds another run's checkpoint, stopped by NaN
    before its first epoch ends: it wrote no checkpoint, and must not name the old one as its own."""
    model, opt, loader, test = make_run(sample)
    training.fit(model, opt, loader, epochs=1, out_dir=tmp_path, progress_bar=False, pictures=False, log=None)
    model, opt, loader, test = make_run(sample, seed=1)
    with pytest.raises(training.NonFiniteLossError, match="no checkpoint had been written yet") as exc:
        training.fit(model, opt, PoisonAt(loader, epoch=1, batch=2), test, epochs=2, out_dir=tmp_path,
                     progress_bar=False, pictures=False, log=None)
    assert exc.value.checkpoint is None


@pytest.mark.filterwarnings("error::RuntimeWarning")  # NumPy's overflow warnings stay quiet, as PyTorch is
def test_diverging_lr_stops_before_any_checkpoint(sample, tmp_path):
    (x, y), _ = sample
    tc.manual_seed(0)
    model = tc.models.SimpleConvNet(weight_init_std="he")
    opt = optim.SGD(model.parameters(), lr=1e12)
    loader = DataLoader(x[:200], y[:200], batch_size=20, shuffle=True, seed=0)
    with pytest.raises(training.NonFiniteLossError, match=r"loss is (nan|inf).*no checkpoint had been written"):
        training.fit(model, opt, loader, epochs=2, out_dir=tmp_path, progress_bar=False, pictures=False, log=None)
    assert not (tmp_path / "checkpoint.npz").exists()


# ----------------------------------------------------------------------------- evaluate

def test_evaluate_eval_mode_no_grad_batched(sample):
    _, (xt, yt) = sample
    tc.manual_seed(0)
    model = TinyNet()
    seen = []

    def loss_fn(logits, y):
        seen.append((logits.creator is None, model.drop.training, len(y)))
        return F.softmax_cross_entropy(logits, y)

    res = training.evaluate(model, (xt[:230], yt[:230]), loss_fn=loss_fn, batch_size=100)
    assert [s[2] for s in seen] == [100, 100, 30]
    assert all(no_graph and not training_mode for no_graph, training_mode, _ in seen)
    assert model.training and model.drop.training  # restored
    model.eval()
    with tc.no_grad():
        logits = model(tc.Tensor(xt[:230])).data
    assert res.accuracy == pytest.approx(float((logits.argmax(1) == yt[:230]).mean()))
    assert res.loss == pytest.approx(float(F.softmax_cross_entropy(tc.Tensor(logits), yt[:230]).data), rel=1e-5)
    assert res.n == 230
    model.train()
    one = training.evaluate(model, DataLoader(xt[:230], yt[:230], batch_size=230))
    assert one.accuracy == res.accuracy
    onehot = np.eye(10, dtype=np.float32)[yt[:230]]
    assert training.evaluate(model, (xt[:230], onehot)).accuracy == res.accuracy
    with pytest.raises(ValueError, match="empty"):
        training.evaluate(model, (xt[:0], yt[:0]))
    # the pair as Tensors, or as a list, is the same data
    assert training.evaluate(model, (tc.Tensor(xt[:230]), tc.Tensor(yt[:230])), batch_size=100) == res
    assert training.evaluate(model, [xt[:230], yt[:230]], batch_size=100) == res
    with pytest.raises(ValueError, match="230 inputs but 229 labels"):
        training.evaluate(model, (xt[:230], yt[:229]))


# ----------------------------------------------------------------------------- pictures

def test_plot_history_png(tmp_path):
    mpl_image = pytest.importorskip("matplotlib.image")
    h = training.History()
    for e, (tr, te) in enumerate([(0.8, 0.85), (0.9, 0.91), (0.95, 0.93)], 1):
        h.append(epoch=e, train_loss=1 - tr, train_acc=tr, test_loss=1 - te, test_acc=te)
    path = training.plot_history(h, tmp_path / "curves.png", title="demo")
    img = mpl_image.imread(path)
    assert img.shape[:2] == (400, 600)
    assert img[..., :3].std() > 0.05  # something was drawn


def test_picture_failures_are_notes_not_crashes(sample, tmp_path, monkeypatch):
    class NoConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            return self.fc(x.flatten(1))

    (x, y), test = sample
    tc.manual_seed(0)
    model = NoConv()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the viz extra were not installed
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    notes = []
    rng_before = tc.random.get_state()
    h = training.fit(model, optim.SGD(model.parameters(), lr=0.1), DataLoader(x[:100], y[:100], 50), test, epochs=1,
                     out_dir=tmp_path, progress_bar=False, log=notes.append)
    assert len(h) == 1 and (tmp_path / "checkpoint.npz").exists()
    skipped = [n for n in notes if n.startswith("note: skipped")]
    assert any("first-layer filters" in n and "no Conv2d" in n for n in skipped)
    assert any("learning curves" in n and "matplotlib" in n for n in skipped)
    assert not (tmp_path / "learning_curves.png").exists()
    assert tc.random.get_state() == rng_before  # no dropout here, and pictures never touch the RNG


# ----------------------------------------------------------------------------- the book's script

def test_train_convnet_example(tmp_path, monkeypatch, capsys):
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "train_convnet.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--epochs", "1", "--out", str(tmp_path)])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "epoch 1/1" in out and "Final Test Accuracy" in out
    acc = float(out.split("test acc:")[1].split()[0])
    model = tc.models.SimpleConvNet()
    model.load_state_dict(tc.load(tmp_path / "params.npz"))
    _, (xt, yt) = load_dataset("mnist-sample")
    assert training.evaluate(model, (xt, yt)).accuracy == pytest.approx(acc, abs=1e-4)
    assert acc > 0.5  # one epoch of the book's recipe on 4,000 digits: ~79%
    assert training.load_checkpoint(tmp_path).epoch == 1
