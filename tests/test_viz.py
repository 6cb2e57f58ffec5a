"""tc.viz: graph drawing (golden DOT, counts, grouping, depth, rendering with the real `dot`, no-`dot`
error), summary tables, filter/feature-map PNGs, forward hooks, and the graph/summary/filters/features CLI."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, nn
from tinygrad_cnn.cli import main as cli_main
from tinygrad_cnn.viz import GraphvizNotFoundError, collect_graph, draw_graph, draw_model, save_graph, summary

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")

NODE = re.compile(r"^\t+([tfm]\d+) \[", re.M)
EDGE = re.compile(r"^\t+(\w+) -> (\w+)$", re.M)
CLUSTER = re.compile(r"subgraph cluster_\d+ \{")


def node_ids(source: str) -> list[str]:
    return NODE.findall(source)


def edges(source: str) -> list[tuple[str, str]]:
    return EDGE.findall(source)


def png_size(path) -> tuple[int, int]:
    head = open(path, "rb").read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def small_expr() -> Tensor:
    x = Tensor(np.ones((2, 3), np.float32), name="x")
    w = Tensor(np.full((2, 3), 2.0, np.float32), requires_grad=True, name="w")
    b = Tensor(np.zeros(3, np.float32), requires_grad=True, name="b")
    return (x * w + b).relu().sum()


def simpleconvnet_loss(seed: int = 0):
    tc.manual_seed(seed)
    model = tc.models.SimpleConvNet()
    x = Tensor(np.random.default_rng(seed).random((1, 1, 28, 28), dtype=np.float32))
    return model, F.softmax_cross_entropy(model(x), np.array([3]))


GOLDEN = """// tinygrad_cnn graph: 4 ops, 7 tensors
digraph "graph" {
\tgraph [fontname=Helvetica fontsize=10 nodesep=0.25 rankdir=TB ranksep=0.3]
\tnode [fontname=Helvetica fontsize=10 height=0.3 margin="0.08,0.03"]
\tedge [arrowsize=0.6 color="#555555"]
\tt0 [label="x\\n(2, 3) float32" shape=box style="filled,bold" fillcolor="#a6cee3"]
\tt1 [label="w\\n(2, 3) float32" shape=box style=filled fillcolor="#b2df8a"]
\tf0 [label="Mul" shape=oval style=filled fillcolor="#e0e0e0"]
\tt2 [label="(2, 3) float32" shape=box style="rounded,filled" fillcolor="#f2f2f2" color="#999999" fontsize=9]
\tt3 [label="b\\n(3,) float32" shape=box style=filled fillcolor="#b2df8a"]
\tf1 [label="Add" shape=oval style=filled fillcolor="#e0e0e0"]
\tt4 [label="(2, 3) float32" shape=box style="rounded,filled" fillcolor="#f2f2f2" color="#999999" fontsize=9]
\tf2 [label="ReLU" shape=oval style=filled fillcolor="#ffff99"]
\tt5 [label="(2, 3) float32" shape=box style="rounded,filled" fillcolor="#f2f2f2" color="#999999" fontsize=9]
\tf3 [label="Sum" shape=oval style=filled fillcolor="#e0e0e0"]
\tt6 [label="() float32" shape=box style="filled,bold" fillcolor="#fb9a99" peripheries=2]
\tt0 -> f0
\tt1 -> f0
\tf0 -> t2
\tt2 -> f1
\tt3 -> f1
\tf1 -> t4
\tt4 -> f2
\tf2 -> t5
\tt5 -> f3
\tf3 -> t6
}
"""


# --------------------------------------------------------------------------- draw_graph


def test_golden_dot_source_is_stable():
    first = draw_graph(small_expr(), legend=False).source
    assert first == GOLDEN
    assert draw_graph(small_expr(), legend=False).source == first  # ids do not depend on id()


def test_counts_match_recorded_ops_and_tensors():
    _, loss = simpleconvnet_loss()
    src = draw_graph(loss, legend=False).source
    ids = node_ids(src)
    # conv, relu, maxpool, reshape, linear, relu, linear, cross-entropy
    assert sum(i.startswith("f") for i in ids) == 8
    # x, conv1.{weight,bias}, 4 activations, fc1.{weight,bias}, 2, fc2.{weight,bias}, logits, loss
    assert sum(i.startswith("t") for i in ids) == 15
    assert len(ids) == len(set(ids))
    # every op: one edge per input (conv/linear take 3) and one per output
    assert len(edges(src)) == (3 + 1) + 2 + 2 + 2 + (3 + 1) + 2 + (3 + 1) + 2
    rec = collect_graph(loss)
    assert [f.name for f in rec.functions] == ["Conv2d", "ReLU", "MaxPool2d", "Reshape", "Linear", "ReLU", "Linear",
                                               "SoftmaxCrossEntropy"]
    assert len(rec.tensors) == 15
    assert {a for a, b in edges(src)} | {b for a, b in edges(src)} == set(ids)


def test_shapes_attrs_and_parameter_names():
    model, loss = simpleconvnet_loss()
    for params in (model, dict(model.named_parameters()), list(model.named_parameters()), None):
        src = draw_graph(loss, params=params).source
        assert "conv1.weight\\n(30, 1, 5, 5) float32" in src
        assert "fc2.bias\\n(10,) float32" in src
    src = draw_graph(loss).source
    assert "Conv2d\\nkernel 5x5, stride 1, pad 0" in src
    assert "MaxPool2d\\nkernel 2x2, stride 2, pad 0" in src
    assert "(1, 30, 12, 12) float32" in src and "(1, 4320) float32" in src
    assert "1 ops" not in src and "8 ops, 15 tensors" in src  # the legend counts
    bare = draw_graph(loss, show_shapes=False, show_attrs=False).source
    assert "float32" not in bare.replace("legend", "") and "kernel" not in bare
    assert "conv1.weight" in bare


def test_several_outputs_and_dropout_attribute():
    x = Tensor(np.ones((4, 5), np.float32), requires_grad=True, name="x")
    tc.manual_seed(0)
    a = F.dropout(x, 0.25)
    b = x.exp()
    src = draw_graph([a, b], legend=False).source
    assert "Dropout\\np 0.25" in src
    assert src.count("peripheries=2") == 2  # both outputs styled as outputs
    assert sum(i.startswith("f") for i in node_ids(src)) == 2


def test_multi_output_op_and_nothing_recorded():
    class Split(tc.Function):  # two outputs; the second is dropped by the caller
        def forward(self, a):
            return a[:2], a[2:]

    x = Tensor(np.arange(3.0, dtype=np.float32), requires_grad=True, name="x")
    head, tail = Split()(x)
    src = draw_graph([head, tail], legend=False).source
    assert edges(src) == [("t0", "f0"), ("f0", "t1"), ("f0", "t2")]
    head2 = Split()(x)[0]  # the unused output is garbage-collected: only live outputs are drawn
    assert edges(draw_graph(head2, legend=False).source) == [("t0", "f0"), ("f0", "t1")]

    with tc.no_grad():
        y = (x * 2).sum()
    src = draw_graph(y).source
    assert node_ids(src) == ["t0"] and "no recorded ops" in src


def test_show_saved_lists_arrays_then_freed():
    _, loss = simpleconvnet_loss()
    src = draw_graph(loss, show_saved=True).source
    assert re.search(r"Conv2d[^\"]*saved: none", src) or not re.search(r"Conv2d[^\"]*saved ", src)
    assert "ReLU\\nsaved bits (2160,) uint8" in src  # 1 x 30 x 24 x 24 mask bits, 8 per byte
    assert "MaxPool2d\\nkernel 2x2, stride 2, pad 0\\nsaved argmax (1, 30, 12, 12) uint8" in src
    loss.backward()
    after = draw_graph(loss, show_saved=True).source
    assert "saved bits" not in after and after.count("saved: freed") == 8


def test_backward_graph_with_create_graph():
    x = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True, name="x")
    y = (x * x).sum()
    (gx,) = tc.grad(y, x, create_graph=True)
    gx.name = "dy/dx"
    src = draw_graph([y, gx], legend=False).source
    assert "dy/dx\\n(2,) float32" in src
    ops = re.findall(r'\[label="(\w+)', src)
    assert ops.count("Mul") >= 3  # the forward x*x and the backward gy*x terms


def test_ten_thousand_op_chain_draws_without_recursion():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # any recursive walk would fail long before 10,000
    try:
        src = draw_graph(y, legend=False).source
    finally:
        sys.setrecursionlimit(old)
    ids = node_ids(src)
    assert sum(i.startswith("f") for i in ids) == 10_000
    assert sum(i.startswith("t") for i in ids) == 20_001  # the chain plus one constant per Mul
    assert len(edges(src)) == 30_000
    assert '[label="1.0001" shape=plaintext' in src


def test_group_by_module_one_cluster_per_module():
    model, loss = simpleconvnet_loss()
    src = draw_graph(loss, group_by_module=True, legend=False).source
    # the model itself (relu/pool/flatten run in its forward) and conv1, fc1, fc2
    assert len(CLUSTER.findall(src)) == 4
    for label in ("label=SimpleConvNet", 'label="conv1 (Conv2d)"', 'label="fc1 (Linear)"', 'label="fc2 (Linear)"'):
        assert label in src
    # clusters nest: the model's cluster closes last, after its children
    root = src.index("label=SimpleConvNet")
    assert all(src.index(f'label="{n} (') > root for n in ("conv1", "fc1", "fc2"))
    # the parameter sits in its layer's cluster
    conv_block = src[src.index('label="conv1 (Conv2d)"'):]
    conv_block = conv_block[:conv_block.index("}")]
    assert "conv1.weight" in conv_block and "Conv2d\\nkernel" in conv_block

    lenet = tc.models.LeNet5()
    src = draw_model(lenet, np.zeros((1, 1, 28, 28), np.float32), legend=False).source
    n_modules = sum(1 for _ in lenet.modules())  # every layer ran an op, plus the model's cluster
    assert len(CLUSTER.findall(src)) == n_modules == 13


def test_depth_collapses_modules_one_box_per_call():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 96, 11, stride=4)
            self.relu = nn.ReLU()
            self.fc = nn.Linear(96 * 6 * 6, 10)

        def forward(self, x):
            return self.fc(self.relu(self.conv1(x)).flatten(1))

    net = Net()
    src = draw_model(net, np.zeros((1, 3, 32, 32), np.float32), depth=1, legend=False).source
    assert '"Conv2d conv1 (96@11x11/4)\\n34,944 params"' in src
    assert '"Linear fc (3456→10)\\n34,570 params"' in src
    assert "conv1.weight" not in src  # parameters live inside their box
    assert len(re.findall(r"^\t+m\d+ \[", src, re.M)) == 3

    # DeepConvNet calls its one `relu` module 7 times and `pool` 3 times: one box per call
    deep = tc.models.DeepConvNet()
    src = draw_model(deep, np.zeros((1, 1, 28, 28), np.float32), depth=1, legend=False).source
    assert src.count('"ReLU relu"') == 7
    assert src.count('"MaxPool2d pool (2x2/2)"') == 3
    es = edges(src)
    assert len(es) == len(set(es))
    # the collapsed graph is still a chain: every box has one tensor in and one out (convs: same)
    boxes = re.findall(r"^\t+(m\d+) \[", src, re.M)
    assert all(sum(b == dst for _, dst in es) == 1 and sum(b == s for s, _ in es) == 1 for b in boxes)

    whole = draw_model(deep, np.zeros((1, 1, 28, 28), np.float32), depth=0, legend=False).source
    assert len(re.findall(r"^\t+m\d+ \[", whole, re.M)) == 1 and "DeepConvNet (" not in whole
    assert '"DeepConvNet\\n123,552 params"' in whole
    with pytest.raises(ValueError, match="depth"):
        draw_graph(small_expr(), depth=-1)


def test_draw_model_uses_eval_mode_and_restores_it():
    model = tc.models.get_model("alexnet-small")
    model.fc1.eval()  # a mixed state must come back as it was
    src = draw_model(model, (1, 1, 28, 28), group_by_module=False).source
    assert "Dropout" not in src.replace("legend", "")  # eval mode: dropout records nothing
    assert "LocalResponseNorm\\nsize 5, alpha 0.0001, beta 0.75, k 2" in src
    assert model.training and model.drop1.training and not model.fc1.training


@pytest.mark.parametrize("bad", ["loss", 3, None, []], ids=["str", "int", "none", "empty"])
def test_bad_output_argument(bad):
    with pytest.raises(TypeError, match="draw_graph: expected a Tensor or a list of Tensors"):
        draw_graph(bad)


def test_bad_rankdir():
    y = (Tensor(np.ones(2, np.float32), requires_grad=True) * 2).sum()
    with pytest.raises(ValueError, match="rankdir must be one of TB, LR, BT, RL, got 'XX'"):
        draw_graph(y, rankdir="XX")
    assert 'rankdir=LR' in draw_graph(y, rankdir="LR").source


# --------------------------------------------------------------------------- rendering


@needs_dot
def test_save_graph_renders_valid_svg_png_pdf_and_dot(tmp_path):
    _, loss = simpleconvnet_loss()
    g = draw_graph(loss, group_by_module=True)
    svg = save_graph(g, tmp_path / "g.svg")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    texts = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert "conv1.weight" in texts and "SoftmaxCrossEntropy" in texts
    assert open(save_graph(loss, tmp_path / "g.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert open(save_graph(g, tmp_path / "g.pdf"), "rb").read(5) == b"%PDF-"
    assert (save_graph(g, tmp_path / "g.dot")).read_text() == g.source
    assert png_size(save_graph(g, tmp_path / "noext", format="png"))[0] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.dot", "g.pdf", "g.png", "g.svg", "noext"]  # no temps
    with pytest.raises(ValueError, match="format"):
        save_graph(g, tmp_path / "g.jpeg2")


def test_missing_dot_gives_clear_error_and_writes_dot_source(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    g = draw_graph(small_expr())
    target = tmp_path / "out" / "graph.svg"
    with pytest.raises(GraphvizNotFoundError) as info:
        save_graph(g, target)
    msg = str(info.value)
    for needle in ("apt install graphviz", "brew install graphviz", "conda install graphviz",
                   "https://graphviz.org/download/", str(target.with_suffix(".dot"))):
        assert needle in msg
    assert isinstance(info.value, RuntimeError)
    assert target.with_suffix(".dot").read_text() == g.source
    assert not target.exists()
    assert save_graph(g, tmp_path / "plain.dot").read_text() == g.source  # .dot needs no binary

    # the CLI says the same and fails, keeping the DOT source
    assert cli_main(["graph", "--model", "simpleconvnet", "-o", str(tmp_path / "cli.png")]) == 1
    err = capsys.readouterr().err
    assert "apt install graphviz" in err and err.startswith("tinygrad-cnn graph: error: ")
    assert (tmp_path / "cli.dot").read_text().startswith("// tinygrad_cnn graph: 8 ops, 15 tensors")


# --------------------------------------------------------------------------- summary


def test_summary_simpleconvnet_macs_and_totals():
    model = tc.models.SimpleConvNet()
    s = summary(model, (1, 28, 28))
    assert [(r.name, r.type, r.output_shape, r.params, r.macs) for r in s.rows] == [
        ("conv1", "Conv2d", (1, 30, 24, 24), 780, 24 * 24 * 30 * 25),
        ("fc1", "Linear", (1, 100), 432_100, 4320 * 100),
        ("fc2", "Linear", (1, 10), 1_010, 100 * 10),
    ]
    assert s.total_macs == 432_000 + 432_000 + 1_000
    assert s.total_params == s.trainable_params == model.num_parameters() == 433_890
    text = str(s)
    assert "Total params: 433,890" in text and "865,000" in text and "conv1 (Conv2d)" in text
    # per example: a batch of 4 gives the same MACs
    assert summary(model, (4, 1, 28, 28)).total_macs == s.total_macs
    assert model.training and not model.conv1._forward_hooks  # mode restored, hooks removed


def test_summary_conv_transpose_macs_are_those_of_the_conv_it_is_the_adjoint_of():
    """A transposed conv does the multiply-adds of the conv2d whose input gradient it is (weight shared)."""
    up = nn.ConvTranspose2d(6, 4, (3, 2), stride=(2, 3), padding=(1, 0), output_padding=(1, 2))
    s = summary(up, (6, 5, 7))
    (row,) = s.rows
    assert row.output_shape == (1, 4, 10, 22)
    down = nn.Conv2d(4, 6, (3, 2), stride=(2, 3), padding=(1, 0))
    (back,) = summary(down, (4, 10, 22)).rows
    assert back.output_shape == (1, 6, 5, 7) and row.macs == back.macs == 6 * 5 * 7 * 4 * 3 * 2


@pytest.mark.parametrize("name", ["lenet5", "lenet5-classic", "alexnet-small", "deepconvnet"])
def test_summary_totals_equal_num_parameters(name):
    model = tc.models.get_model(name)
    s = summary(model, tc.models.input_shape(name))
    assert s.total_params == model.num_parameters() == sum(r.params for r in s.rows)
    if name.startswith("lenet5"):
        assert s.total_params == 61_706
        # conv1 6@28x28 from 1x5x5, conv2 16@10x10 from 6x5x5, FC 400-120-84-10
        assert s.total_macs == 6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + 400 * 120 + 120 * 84 + 84 * 10
    if name == "deepconvnet":
        assert sum(r.name == "relu" for r in s.rows) == 7  # one row per call of the shared module


def test_forward_hook_sees_calls_and_can_replace_output():
    lin = nn.Linear(3, 2)
    seen = []
    h1 = lin.register_forward_hook(lambda m, args, out: seen.append((m, args[0].shape, out.shape)))
    h2 = lin.register_forward_hook(lambda m, args, out: out * 0.0)
    y = lin(Tensor(np.ones((4, 3), np.float32)))
    assert seen == [(lin, (4, 3), (4, 2))] and np.all(y.data == 0)
    h2.remove()
    with h1:
        assert np.any(lin(Tensor(np.ones((1, 3), np.float32))).data != 0)
    lin(Tensor(np.ones((1, 3), np.float32)))
    assert len(seen) == 2  # removed on leaving the with block


# --------------------------------------------------------------------------- pictures


def test_pictures_are_saved_in_the_format_their_suffix_names(tmp_path):
    pytest.importorskip("matplotlib")
    from tinygrad_cnn.viz import plot_filters

    w = np.random.default_rng(0).standard_normal((4, 1, 3, 3)).astype(np.float32)
    assert (plot_filters(w, tmp_path / "f.svg")).read_bytes().lstrip().startswith(b"<?xml")
    assert (plot_filters(w, tmp_path / "f.pdf")).read_bytes().startswith(b"%PDF-")
    assert (plot_filters(w, tmp_path / "f")).read_bytes().startswith(b"\x89PNG")  # no suffix: png
    with pytest.raises(ValueError, match=r"cannot write a \.jpeg picture .*use a \.png, \.svg, \.pdf file name"):
        plot_filters(w, tmp_path / "f.jpeg")
    assert not (tmp_path / "f.jpeg").exists()


def test_plot_filters_pixel_size_and_scaling(tmp_path):
    pytest.importorskip("matplotlib")
    from tinygrad_cnn.viz import plot_filters

    w = np.random.default_rng(0).standard_normal((30, 1, 5, 5)).astype(np.float32)
    assert png_size(plot_filters(w, tmp_path / "f.png")) == (800, 400)  # 8 columns x 4 rows of 100 px
    assert png_size(plot_filters(Tensor(w), tmp_path / "t.png", title="before", ncols=10)) == (1000, 350)
    assert png_size(plot_filters(w, tmp_path / "wide.png", ncols=100)) == (3000, 100)  # no empty columns
    rgb = np.random.default_rng(1).standard_normal((6, 3, 11, 11)).astype(np.float32)
    assert png_size(plot_filters(rgb, tmp_path / "rgb.png", cell_size=0.5, dpi=80)) == (240, 40)

    # min-max per filter, dark = large (the book's gray_r): quadrant brightness falls as the weight rises
    import matplotlib.image as mpimg

    ramp = np.array([[[[0.0, 1.0], [2.0, 3.0]]]], np.float32) * 1e-3
    img = mpimg.imread(plot_filters(ramp, tmp_path / "ramp.png"))[..., :3].mean(axis=2)
    centers = [img[28, 28], img[28, 72], img[72, 28], img[72, 72]]
    assert centers[0] > 0.95 and centers[3] < 0.05 and centers[0] > centers[1] > centers[2] > centers[3]
    with pytest.raises(ValueError, match=r"\(30, 25\)"):
        plot_filters(w.reshape(30, 25), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_plot_feature_maps_pixel_size(tmp_path):
    pytest.importorskip("matplotlib")
    from tinygrad_cnn.viz import plot_feature_maps

    x = np.random.default_rng(0).random((1, 28, 28), dtype=np.float32)
    # one conv layer of 30 channels, 16 shown + the label column, 80 px cells
    assert png_size(plot_feature_maps(tc.models.SimpleConvNet(), x, tmp_path / "s.png")) == (17 * 80, 80)
    lenet = tc.models.LeNet5()
    assert png_size(plot_feature_maps(lenet, x[None], tmp_path / "l.png", title="LeNet")) == (17 * 80, 2 * 80 + 50)
    assert png_size(plot_feature_maps(lenet, x, tmp_path / "l4.png", max_channels=4)) == (5 * 80, 160)
    with pytest.raises(ValueError, match="one image"):
        plot_feature_maps(lenet, np.zeros((2, 1, 28, 28), np.float32), tmp_path / "bad.png")


def test_import_viz_does_not_import_matplotlib():
    code = "import sys, tinygrad_cnn as tc; tc.viz.draw_graph; assert 'matplotlib' not in sys.modules, 'matplotlib'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))


# --------------------------------------------------------------------------- CLI


@needs_dot
def test_cli_graph_svg_grouped_and_backward(tmp_path, capsys):
    out = tmp_path / "g.svg"
    assert cli_main(["graph", "--model", "lenet5", "--group", "-o", str(out)]) == 0
    root = ET.parse(out).getroot()
    titles = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert "conv1 (Conv2d)" in titles and "conv1.weight" in titles and "loss" in titles
    assert "13 ops, 24 tensors" in capsys.readouterr().out

    dot = tmp_path / "bw.dot"
    assert cli_main(["graph", "--model", "simpleconvnet", "--backward", "--format", "dot", "-o", str(dot)]) == 0
    src = dot.read_text()
    assert "conv1.weight.grad\\n(30, 1, 5, 5) float32" in src and "Conv2dWeightGrad" in src


def test_cli_graph_depth_dot(tmp_path):
    out = tmp_path / "alex.dot"
    assert cli_main(["graph", "--model", "alexnet-small", "--depth", "1", "-o", str(out)]) == 0
    src = out.read_text()
    assert '"Conv2d conv1 (32@5x5)\\n832 params"' in src and "Dropout" in src  # training-mode loss graph


def test_cli_summary(capsys):
    assert cli_main(["summary", "--model", "simpleconvnet"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 433,890" in out and "Total MACs per example: 865,000" in out


def _checkpoints(tmp_path):
    """A training checkpoint (``model.*`` weights, ``meta.model`` as UTF-8 bytes in a uint8 array, as
    tinygrad_cnn.training writes it) and a plain state dict of the same LeNet5."""
    tc.manual_seed(0)
    model = tc.models.LeNet5()
    training = tmp_path / "run.npz"
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    text = np.frombuffer(b"lenet5", dtype=np.uint8)
    tc.save({**state, "meta.model": text, "optim.step": np.array(3)}, training)
    plain = tc.save(model.state_dict(), tmp_path / "plain.npz")
    return model, training, plain


def test_load_checkpoint_layouts(tmp_path):
    from tinygrad_cnn.cli.viz import load_checkpoint

    model, training, plain = _checkpoints(tmp_path)
    for path in (training, plain):
        state, meta = load_checkpoint(str(path))
        assert list(state) == list(model.state_dict())
        assert np.array_equal(state["conv1.weight"], model.conv1.weight.data)
    assert load_checkpoint(str(training))[1]["model"] == "lenet5" and load_checkpoint(str(plain))[1] == {}
    unicode = tc.save({"model.conv1.weight": np.zeros((2, 1, 3, 3), np.float32), "meta.model": np.array("lenet5"),
                       "meta.config": np.array('{"dataset": "mnist"}')}, tmp_path / "u.npz")
    state, meta = load_checkpoint(str(unicode))
    assert list(state) == ["conv1.weight"] and meta["model"] == "lenet5" and '"mnist"' in meta["config"]


def test_cli_filters_both_checkpoint_layouts(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    _, training, plain = _checkpoints(tmp_path)
    assert cli_main(["filters", "--checkpoint", str(training), "-o", str(tmp_path / "a.png")]) == 0
    assert "6 filters of conv1.weight (6, 1, 5, 5)" in capsys.readouterr().out
    assert png_size(tmp_path / "a.png") == (600, 150)  # 6 columns, one row, title band
    assert cli_main(["filters", "--checkpoint", str(plain), "--param", "conv2.weight", "-o",
                     str(tmp_path / "b.png")]) == 0
    assert png_size(tmp_path / "b.png") == (800, 250)  # 16 filters: 8 x 2 + title
    with pytest.raises(SystemExit, match="no parameter 'conv9.weight'"):
        cli_main(["filters", "--checkpoint", str(plain), "--param", "conv9.weight", "-o", str(tmp_path / "c.png")])
    vec = tc.save({"fc.weight": np.zeros((3, 4), np.float32)}, tmp_path / "fc.npz")
    with pytest.raises(SystemExit, match=r"no 4-D .*fc.weight \(3, 4\)"):
        cli_main(["filters", "--checkpoint", str(vec), "-o", str(tmp_path / "d.png")])


def test_cli_features(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    _, training, plain = _checkpoints(tmp_path)
    out = tmp_path / "fm.png"
    assert cli_main(["features", "--checkpoint", str(training), "--index", "5", "-o", str(out)]) == 0
    assert png_size(out) == (17 * 80, 2 * 80 + 50)  # LeNet: 2 conv rows, up to 16 maps, title
    assert cli_main(["features", "--checkpoint", str(plain), "--model", "lenet5", "--max-channels", "6",
                     "-o", str(tmp_path / "p.png")]) == 0
    assert png_size(tmp_path / "p.png") == (7 * 80, 2 * 80 + 50)
    with pytest.raises(SystemExit, match="no meta.model; pass --model"):
        cli_main(["features", "--checkpoint", str(plain), "-o", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit, match="out of range"):
        cli_main(["features", "--checkpoint", str(training), "--index", "99999", "-o", str(tmp_path / "y.png")])
