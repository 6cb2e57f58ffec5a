"""Recorded computation graphs as Graphviz pictures.

``draw_graph(loss)`` walks the graph that the ops recorded (``tensor.creator`` ->
``Function.inputs``), iteratively, so a 10,000-op chain draws as easily as LeNet. Every
recorded op and every tensor becomes a node (tensor -> op -> tensor edges); node ids are
assigned in forward order (``t0, t1, f0, ...``), never from ``id()``, so the DOT text of the
same expression is identical across runs and can be diffed or kept as a golden file.

``group_by_module=True`` draws each module that ran ops as a cluster (``Function.modules``
records them), ``depth=N`` collapses every module N levels below the model into one box, and
``save_graph`` renders through the real ``dot`` binary, atomically, with a clear error (and the
``.dot`` source kept) when Graphviz is not installed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphviz
import numpy as np

from ..backend import is_array
from ..nn import Module
from ..serialization import atomic_write
from ..tensor import Function, Tensor, _node_key, _Shadow, set_grad_enabled

__all__ = ["GraphvizNotFoundError", "RecordedGraph", "collect_graph", "draw_graph", "draw_model", "save_graph"]


class GraphvizNotFoundError(RuntimeError):
    """The Graphviz ``dot`` program is not installed (or not on ``PATH``)."""


# --------------------------------------------------------------------------- walking the graph


@dataclass
class RecordedGraph:
    """The ops and tensors reachable from some outputs, in forward (topological) order."""

    functions: list[Function]
    tensors: list[Tensor]
    outputs: list[Tensor]
    consumers: dict[int, list[Function]] = field(repr=False, default_factory=dict)
    inputs: dict[int, tuple[Tensor, ...]] = field(repr=False, default_factory=dict)  # id(fn) -> its input nodes
    by_key: dict[Any, Tensor] = field(repr=False, default_factory=dict)  # graph-node key -> drawn tensor

    def inputs_of(self, fn: Function) -> tuple[Tensor, ...]:
        return self.inputs.get(id(fn), fn.inputs)

    def outputs_of(self, fn: Function) -> list[Tensor]:
        """``fn``'s outputs as the drawn tensors."""
        return [self.by_key[(id(fn), i)] for i in range(len(fn.outputs)) if (id(fn), i) in self.by_key]


def _as_outputs(output: Tensor | Sequence[Tensor]) -> list[Tensor]:
    outs = [output] if isinstance(output, Tensor) else list(output) if isinstance(output, Iterable) else []
    if not outs or not all(isinstance(t, Tensor) for t in outs):
        raise TypeError(f"draw_graph: expected a Tensor or a list of Tensors, got {type(output).__name__}")
    unique: dict[int, Tensor] = {}
    for t in outs:
        unique.setdefault(id(t), t)
    return list(unique.values())


def collect_graph(output: Tensor | Sequence[Tensor]) -> RecordedGraph:
    """Every Function and Tensor that ``output`` (one or several Tensors) was computed from.

    The walk is iterative (an explicit stack), so depth is unlimited. Functions come out sorted
    by generation, which is a topological order (an op's generation exceeds its inputs' ops');
    ties keep discovery order, so the result is deterministic.
    """
    outputs = _as_outputs(output)
    found: dict[int, Function] = {}
    stack = [t.creator for t in reversed(outputs) if t.creator is not None]
    while stack:
        fn = stack.pop()
        if id(fn) in found:
            continue
        found[id(fn)] = fn
        for x in reversed(fn.inputs):
            if x.creator is not None and id(x.creator) not in found:
                stack.append(x.creator)
    functions = sorted(found.values(), key=lambda f: f.generation)  # stable: ties keep discovery order
    # One Tensor object per graph node: an op may hold a data-free _Shadow of a tensor that is
    # still alive elsewhere; the live tensor (with its values) is the one drawn.
    live: dict[Any, Tensor] = {_node_key(t): t for t in outputs}
    used = set()  # outputs that some op consumed: drawn even when the tensor itself is gone
    for fn in functions:
        for x in (*fn.inputs, *(fn.output_node(i) for i in range(len(fn.outputs)))):
            if not isinstance(x, _Shadow):
                live.setdefault(_node_key(x), x)
        used.update(_node_key(x) for x in fn.inputs)
    tensors: dict[Any, Tensor] = {}
    inputs: dict[int, tuple[Tensor, ...]] = {}
    consumers: dict[int, list[Function]] = {}
    for fn in functions:
        ins = tuple(tensors.setdefault(_node_key(x), live.get(_node_key(x), x)) for x in fn.inputs)
        inputs[id(fn)] = ins
        for x in ins:
            consumers.setdefault(id(x), []).append(fn)
        for i in range(len(fn.outputs)):
            key = (id(fn), i)
            if key in live or key in used:
                tensors.setdefault(key, live[key] if key in live else fn.output_node(i))
    for t in outputs:  # an output that is itself a leaf
        tensors.setdefault(_node_key(t), t)
    return RecordedGraph(functions, list(tensors.values()), outputs, consumers, inputs, tensors)


# --------------------------------------------------------------------------- names and modules


def _param_names(params: Any) -> dict[int, str]:
    """``params``: a Module, a dict name -> Tensor, or an iterable of (name, Tensor) -> {id: name}."""
    if params is None:
        return {}
    if isinstance(params, Module):
        items: Iterable = params.named_parameters()
    elif isinstance(params, Mapping):
        items = params.items()
    else:
        items = params
    names: dict[int, str] = {}
    for item in items:
        try:
            name, t = item
        except (TypeError, ValueError):
            raise TypeError("draw_graph: params must be a Module, a dict name -> Tensor or (name, Tensor) pairs, "
                            f"got an item {item!r}") from None
        if isinstance(t, Tensor):
            names.setdefault(id(t), str(name))
    return names


def _module_names(functions: list[Function], params: Any) -> dict[int, tuple[str, Module]]:
    """id(module) -> (dotted name, module) for the model(s) whose forward recorded the ops.

    The outermost module of each op (``fn.modules[0]``) is a model; its ``named_modules()``
    gives the dotted names. A model passed as ``params`` takes precedence.
    """
    roots: dict[int, Module] = {}
    if isinstance(params, Module):
        roots[id(params)] = params
    for fn in functions:
        if fn.modules:
            roots.setdefault(id(fn.modules[0]), fn.modules[0])
    names: dict[int, tuple[str, Module]] = {}
    for i, root in enumerate(roots.values()):
        prefix = "" if i == 0 else f"{type(root).__name__.lower()}{i}"
        for name, mod in root.named_modules(prefix):
            names.setdefault(id(mod), (name, mod))
    return names


def _name_depth(name: str) -> int:
    return 0 if name == "" else name.count(".") + 1


def _ancestor(name: str, depth: int) -> str:
    return ".".join(name.split(".")[:depth]) if depth > 0 else ""


def _parent(name: str) -> str | None:
    if name == "":
        return None
    return name.rpartition(".")[0]


# --------------------------------------------------------------------------- labels and styles

# Node styles as ready DOT attribute text: nodes are written straight into ``Digraph.body``
# (one f-string per node), which keeps a 10,000-op chain well under a second.
_COLOR = {"input": "#a6cee3", "parameter": "#b2df8a", "tensor": "#f2f2f2", "output": "#fb9a99"}
_TENSOR_STYLE = {
    "input": f'shape=box style="filled,bold" fillcolor="{_COLOR["input"]}"',
    "parameter": f'shape=box style=filled fillcolor="{_COLOR["parameter"]}"',
    "tensor": f'shape=box style="rounded,filled" fillcolor="{_COLOR["tensor"]}" color="#999999" fontsize=9',
    "constant": 'shape=plaintext fontcolor="#666666" fontsize=9',
    "output": f'shape=box style="filled,bold" fillcolor="{_COLOR["output"]}" peripheries=2',
}
_OP_COLOR = {"conv": "#fdbf6f", "linear": "#cab2d6", "activation": "#ffff99", "loss": "#f4a6a6", "other": "#e0e0e0"}
_OP_STYLE = {k: f'shape=oval style=filled fillcolor="{c}"' for k, c in _OP_COLOR.items()}
_BOX_STYLE = {k: f'shape=box3d style="filled,bold" fillcolor="{c}"' for k, c in _OP_COLOR.items()}
_OP_KIND = {
    **dict.fromkeys(("Conv2d", "ConvTranspose2d", "Conv2dWeightGrad", "Im2col", "Col2im", "MaxPool2d",
                     "MaxPool2dScatter", "MaxPool2dGather", "AvgPool2d", "AvgPool2dAdjoint", "Pad"), "conv"),
    **dict.fromkeys(("Linear", "MatMul"), "linear"),
    **dict.fromkeys(("ReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "LocalResponseNorm", "ChannelWindowSum",
                     "Dropout"), "activation"),
    **dict.fromkeys(("SoftmaxCrossEntropy", "CrossEntropyLoss"), "loss"),
}
_ATTR_NAME = {"kernel_size": "kernel", "padding": "pad"}
_LEGEND = (
    ("input", _COLOR["input"]), ("parameter / leaf with grad", _COLOR["parameter"]), ("tensor", _COLOR["tensor"]),
    ("output", _COLOR["output"]),
    ("conv / pool op", _OP_COLOR["conv"]), ("linear / matmul op", _OP_COLOR["linear"]),
    ("activation / norm op", _OP_COLOR["activation"]), ("loss op", _OP_COLOR["loss"]),
    ("other op", _OP_COLOR["other"]),
)


def _text(s: str) -> str:
    """User text for a DOT label: backslashes kept literal (our line breaks are ``\\n``)."""
    return str(s).replace("\\", "\\\\")


def _node(name: str, lines: list[str], style: str) -> str:
    """One DOT node statement; ``lines`` are already DOT-escaped (see ``_text``), joined by ``\\n``."""
    label = "\\n".join(lines).replace('"', '\\"')
    return f'\t{name} [label="{label}" {style}]\n'


def _shape_str(shape: tuple[int, ...]) -> str:
    return str(tuple(int(s) for s in shape))


def _fmt_value(key: str, v: Any) -> str:
    """``kernel_size (5, 5)`` -> ``5x5``, ``stride (2, 2)`` -> ``2``, floats short, tuples as Python."""
    if isinstance(v, (tuple, list)):
        if key in ("kernel_size", "stride", "padding") and len(v) == 2:
            return str(v[0]) if v[0] == v[1] and key != "kernel_size" else f"{v[0]}x{v[1]}"
        return "(" + ", ".join(_fmt_value("", a) for a in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, (float, np.floating)):
        return f"{v:g}"
    if isinstance(v, np.dtype):
        return v.name
    return str(v)


def _attrs_line(fn: Function) -> str:
    try:
        attrs = fn.attrs()
    except AttributeError:  # attributes computed in forward and freed, or never set
        return ""
    parts = [f"{_ATTR_NAME.get(k, k)} {_fmt_value(k, v)}" for k, v in attrs.items()
             if v is not None and v is not False]
    return ", ".join(parts)


def _saved_lines(fn: Function) -> list[str]:
    if fn.released:
        return ["saved: freed"]
    return [f"saved {k} {_shape_str(v.shape)} {v.dtype}" for k, v in vars(fn).items() if is_array(v)]


def _module_desc(m: Module) -> str:
    """A short description of a layer for collapsed boxes: ``96@11x11/4``, ``9216→4096``, ``3x3/2``."""
    kind = type(m).__name__
    if kind == "Conv2d":
        kh, kw = m.kernel_size
        s = m.stride[0] if m.stride[0] == m.stride[1] else f"{m.stride[0]}x{m.stride[1]}"
        return f"{m.out_channels}@{kh}x{kw}" + ("" if s == 1 else f"/{s}")
    if kind == "Linear":
        return f"{m.in_features}→{m.out_features}"
    if kind in ("MaxPool2d", "AvgPool2d"):
        k, s = _fmt_value("kernel_size", _pair(m.kernel_size)), _pair(m.stride)
        return f"{k}/{s[0]}" if s[0] == s[1] else f"{k}/{s[0]}x{s[1]}"
    if kind == "Dropout":
        return f"p={m.p:g}"
    if kind == "LocalResponseNorm":
        return f"size={m.size}"
    return ""


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _num_params(m: Module) -> int:
    return sum(p.size for p in m.parameters())


# --------------------------------------------------------------------------- drawing


def draw_graph(output: Tensor | Sequence[Tensor], params: Any = None, show_shapes: bool = True,
               show_attrs: bool = True, show_saved: bool = False, group_by_module: bool = False,
               rankdir: str = "TB", depth: int | None = None, legend: bool = True) -> graphviz.Digraph:
    """The recorded graph that produced ``output`` (a Tensor or a list of Tensors) as a Digraph.

    Op nodes (ovals) show the op and its attributes (kernel, stride, pad, p, ...); tensor nodes
    (boxes) show name, shape and dtype. Colours by role: inputs blue, parameters and other
    leaves that require grad green, intermediates grey, outputs red (double border), scalar
    constants as plain text, ops by kind; a ``legend`` node says which.

    ``params`` names parameter tensors (``conv1.weight``): a Module, a dict name -> Tensor or
    (name, Tensor) pairs; without it, the names come from the model whose forward recorded the
    ops. ``show_saved`` adds what each op saved for backward (or "freed" after backward).
    ``group_by_module`` clusters ops under the module that ran them; ``depth=N`` draws every
    module N levels below the model (the model is level 0) as one box, e.g. ``Conv2d conv1
    (96@11x11/4)``. ``rankdir`` is Graphviz's ("TB", "LR", ...). Node ids are ``t<i>`` (tensors),
    ``f<i>`` (ops), ``m<i>`` (collapsed modules), assigned in forward order.
    """
    if depth is not None and (not isinstance(depth, (int, np.integer)) or depth < 0):
        raise ValueError(f"draw_graph: depth must be a non-negative int or None, got {depth!r}")
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"draw_graph: rankdir must be one of TB, LR, BT, RL, got {rankdir!r}")
    rec = collect_graph(output)
    return _Drawer(rec, params, show_shapes, show_attrs, show_saved, group_by_module, rankdir, depth,
                   legend).draw()


class _Drawer:
    """Builds one Digraph from a RecordedGraph; see :func:`draw_graph` for the options."""

    def __init__(self, rec: RecordedGraph, params, show_shapes, show_attrs, show_saved, group, rankdir, depth,
                 legend):
        self.rec, self.show_shapes, self.show_attrs, self.show_saved = rec, show_shapes, show_attrs, show_saved
        self.group, self.rankdir, self.depth, self.legend = group, rankdir, depth, legend
        self.pnames = _param_names(params)
        need_modules = group or depth is not None
        self.mnames = _module_names(rec.functions, params) if (need_modules or params is None) else {}
        if params is None:  # name the parameters of the model(s) that ran the ops
            for _, mod in self.mnames.values():
                for n, p in mod.named_parameters():
                    self.pnames.setdefault(id(p), n)
        self.by_name = {n: m for n, m in self.mnames.values()}
        self.out_ids = {id(t) for t in rec.outputs}

    # -- module bookkeeping ------------------------------------------------------------
    def module_name(self, m: Module) -> str:
        entry = self.mnames.get(id(m))
        if entry is None:  # a module that is not inside the model: name it by type
            entry = (f"{type(m).__name__.lower()}@{len(self.mnames)}", m)
            self.mnames[id(m)] = entry
            self.by_name.setdefault(entry[0], m)
        return entry[0]

    def op_module(self, fn: Function) -> str | None:
        return self.module_name(fn.modules[-1]) if fn.modules else None

    def module_of(self, name: str) -> Module | None:
        return self.by_name.get(name)

    # -- collapsing (depth) ----------------------------------------------------------------
    def collapse(self) -> dict[int, int]:
        """id(fn) -> box index for ops inside a module at level >= depth.

        One box per module call: an op joins the box of an input's producer collapsed into the
        same module, otherwise it opens a new box (union-find merges boxes an op joins).
        """
        key_of: dict[int, str] = {}
        box_of: dict[int, int] = {}
        parent: list[int] = []

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for fn in self.rec.functions:
            name = self.op_module(fn)
            if name is None or _name_depth(name) < self.depth:
                continue
            key = _ancestor(name, self.depth)
            key_of[id(fn)] = key
            joined: int | None = None
            for x in self.rec.inputs_of(fn):
                c = x.creator
                if c is not None and key_of.get(id(c)) == key:
                    b = find(box_of[id(c)])
                    if joined is None:
                        joined = b
                    elif b != joined:
                        parent[max(b, joined)] = min(b, joined)
                        joined = min(b, joined)
            if joined is None:
                joined = len(parent)
                parent.append(joined)
            box_of[id(fn)] = joined
        roots = {}
        for k, b in box_of.items():
            box_of[k] = roots.setdefault(find(b), len(roots))
        self.box_key = {box_of[k]: key_of[k] for k in box_of}
        return box_of

    # -- drawing ------------------------------------------------------------------------
    def draw(self) -> graphviz.Digraph:
        rec = self.rec
        box_of = self.collapse() if self.depth is not None else {}
        tid = {id(t): f"t{i}" for i, t in enumerate(rec.tensors)}
        fid = {id(fn): f"f{i}" for i, fn in enumerate(rec.functions)}

        # which tensors are hidden inside a collapsed box
        hidden: set[int] = set()
        if box_of:
            for t in rec.tensors:
                if id(t) in self.out_ids:
                    continue
                users = {box_of.get(id(fn), -1) for fn in rec.consumers.get(id(t), ())}
                if len(users) != 1 or -1 in users:
                    continue
                (b,) = users
                if t.creator is not None:
                    if box_of.get(id(t.creator)) == b:
                        hidden.add(id(t))
                elif id(t) in self.pnames:
                    owner = self.pnames[id(t)].rpartition(".")[0]
                    key = self.box_key[b]
                    if key == "" or owner == key or owner.startswith(key + "."):
                        hidden.add(id(t))

        # nodes, each with the cluster (module name) it belongs to, in forward order
        nodes: list[tuple[str | None, str]] = []  # (cluster, DOT line)
        drawn_boxes: set[int] = set()
        cluster_of_tensor: dict[int, str | None] = {}
        for t in rec.tensors:
            if t.creator is None and id(t) not in hidden:
                owner = self.pnames[id(t)].rpartition(".")[0] if id(t) in self.pnames else None
                if owner is not None and self.depth is not None and _name_depth(owner) >= self.depth:
                    owner = _ancestor(owner, self.depth - 1) if self.depth > 0 else None
                cluster_of_tensor[id(t)] = owner if owner is not None and self.module_of(owner) is not None else None
        emitted: set[int] = set()

        def emit_tensor(t: Tensor, cluster: str | None) -> None:
            if id(t) in emitted or id(t) in hidden:
                return
            emitted.add(id(t))
            nodes.append((cluster, self.tensor_node(tid[id(t)], t)))

        for fn in rec.functions:
            for x in self.rec.inputs_of(fn):
                if x.creator is None:
                    emit_tensor(x, cluster_of_tensor.get(id(x)))
            b = box_of.get(id(fn))
            if b is None:
                cluster = self.op_module(fn) if self.group else None
                nodes.append((cluster, self.op_node(fid[id(fn)], fn)))
            else:
                key = self.box_key[b]
                cluster = _parent(key) if key != "" else None
                if b not in drawn_boxes:
                    drawn_boxes.add(b)
                    nodes.append((cluster, self.box_node(f"m{b}", key)))
            for y in self.rec.outputs_of(fn):
                emit_tensor(y, cluster)
        for t in rec.outputs:
            emit_tensor(t, None)

        g = graphviz.Digraph(
            name="graph",
            comment=f"tinygrad_cnn graph: {len(rec.functions)} ops, {len(rec.tensors)} tensors",
            graph_attr={"rankdir": self.rankdir, "fontname": "Helvetica", "fontsize": "10", "nodesep": "0.25",
                        "ranksep": "0.3"},
            node_attr={"fontname": "Helvetica", "fontsize": "10", "height": "0.3", "margin": "0.08,0.03"},
            edge_attr={"arrowsize": "0.6", "color": "#555555"},
        )
        if not rec.functions:  # a common surprise: say why the picture is a lone tensor
            g.attr(label="no recorded ops: the output was computed under no_grad() or from tensors that do not "
                         "require grad", fontcolor="#b00000")
        self.add_nodes(g, nodes)
        if self.legend:
            g.node("legend", self.legend_label(), shape="plaintext", fontsize="9")

        seen_edges: set[tuple[str, str]] = set()
        for fn in rec.functions:
            b = box_of.get(id(fn))
            node = fid[id(fn)] if b is None else f"m{b}"
            for x in self.rec.inputs_of(fn):
                if id(x) in hidden:
                    continue
                edge = (tid[id(x)], node)
                if b is None or edge not in seen_edges:
                    seen_edges.add(edge)
                    g.body.append(f"\t{edge[0]} -> {node}\n")
            for y in self.rec.outputs_of(fn):
                if id(y) not in hidden:
                    g.body.append(f"\t{node} -> {tid[id(y)]}\n")
        return g

    def add_nodes(self, g: graphviz.Digraph, nodes: list[tuple[str | None, str]]) -> None:
        """Put nodes at the top level or, when grouping, into nested clusters named after modules."""
        if not self.group:
            g.body.extend(line for _, line in nodes)
            return
        order: list[str] = []  # cluster names in first-use order, parents before children
        members: dict[str, list[str]] = {}
        for cluster, line in nodes:
            if cluster is None:
                continue
            chain = []
            c: str | None = cluster
            while c is not None and c not in members:
                chain.append(c)
                c = _parent(c)
            for c in reversed(chain):
                members[c] = []
                order.append(c)
            members[cluster].append(line)
        g.body.extend(line for cluster, line in nodes if cluster is None)
        index = {c: i for i, c in enumerate(order)}
        subs = {c: self.cluster(c, index[c]) for c in order}
        for c in order:
            subs[c].body.extend(members[c])
        # deepest first, so a cluster is complete when it is added to its parent (in first-use order)
        for c in sorted(order, key=_name_depth, reverse=True):
            p = _parent(c)
            (subs[p] if p is not None and p in subs else g).subgraph(subs[c])

    def cluster(self, name: str, i: int) -> graphviz.Digraph:
        m = self.module_of(name)
        kind = type(m).__name__ if m is not None else "?"
        label = kind if name == "" else f"{name} ({kind})"
        return graphviz.Digraph(name=f"cluster_{i}", graph_attr={
            "label": _text(label), "labeljust": "l", "style": "rounded,filled", "color": "#aaaaaa",
            "fillcolor": "#fbfbfb" if _name_depth(name) % 2 == 0 else "#f3f6fa", "fontsize": "10"})

    # -- node attributes ----------------------------------------------------------------
    def tensor_role(self, t: Tensor) -> str:
        if id(t) in self.out_ids:
            return "output"
        if t.creator is not None:
            return "tensor"
        if id(t) in self.pnames or t.requires_grad:
            return "parameter"  # a trainable leaf: gradients accumulate here
        if t.size == 1 and t.name is None:
            return "constant"
        return "input"

    def tensor_node(self, node: str, t: Tensor) -> str:
        role = self.tensor_role(t)
        if role == "constant":
            return _node(node, [_fmt_value("", t.data.reshape(()).item())], _TENSOR_STYLE[role])
        lines = []
        name = self.pnames.get(id(t)) or t.name
        if name:
            lines.append(_text(name))
        if self.show_shapes:
            lines.append(f"{_shape_str(t.shape)} {t.dtype.name}")
        if not lines:
            return _node(node, [], f'shape=point width=0.08 color="{_COLOR.get(role, "#999999")}"')
        return _node(node, lines, _TENSOR_STYLE[role])

    def op_node(self, node: str, fn: Function) -> str:
        lines = [fn.name]
        if self.show_attrs:
            a = _attrs_line(fn)
            if a:
                lines.append(a)
        if self.show_saved:
            lines.extend(_saved_lines(fn))
        return _node(node, [_text(s) for s in lines], _OP_STYLE[_OP_KIND.get(fn.name, "other")])

    def box_node(self, node: str, key: str) -> str:
        m = self.module_of(key)
        kind = type(m).__name__ if m is not None else "?"
        desc = _module_desc(m) if m is not None else ""
        head = " ".join(s for s in (kind, key) if s) + (f" ({desc})" if desc else "")
        lines = [_text(head)]
        n = _num_params(m) if m is not None else 0
        if n:
            lines.append(f"{n:,} params")
        return _node(node, lines, _BOX_STYLE[_OP_KIND.get(kind, "other")])

    def legend_label(self) -> str:
        rows = "".join(f'<TR><TD BGCOLOR="{color}">{text}</TD></TR>' for text, color in _LEGEND)
        n_ops, n_t = len(self.rec.functions), len(self.rec.tensors)
        return (f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">{rows}'
                f'<TR><TD BORDER="0">{n_ops} ops, {n_t} tensors</TD></TR></TABLE>>')


@contextlib.contextmanager
def eval_mode(model: Module):
    """``model.eval()`` for the duration, then every module's own train/eval flag as it was."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


def draw_model(model: Module, example_input: Any, group_by_module: bool = True, depth: int | None = None,
               **kw: Any) -> graphviz.Digraph:
    """Run one forward pass of ``model`` in eval mode while recording, and draw it.

    ``example_input``: a Tensor or array ``(N, C, H, W)``, or a shape tuple (a random float32
    input of that shape). Parameters are labelled with the model's names; the model's
    train/eval flags are restored afterwards. Other keywords go to :func:`draw_graph`.
    """
    from .. import random as _random

    if isinstance(example_input, tuple) and all(isinstance(s, (int, np.integer)) for s in example_input):
        example_input = _random.get_rng().standard_normal(example_input, dtype=np.float32)
    data = example_input.data if isinstance(example_input, Tensor) else np.asarray(example_input)
    if data.dtype.kind != "f":
        data = data.astype(np.float32)
    # With frozen parameters the input must require grad, or nothing would be recorded.
    frozen = not any(p.requires_grad for p in model.parameters())
    x = Tensor(data, requires_grad=frozen, name="input")
    with eval_mode(model), set_grad_enabled(True):
        out = model(x)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return draw_graph(outs, params=model, group_by_module=group_by_module, depth=depth, **kw)


# --------------------------------------------------------------------------- rendering

_FORMATS = ("svg", "png", "pdf", "dot")
_INSTALL_HINT = ("Install Graphviz: `apt install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS), "
                 "`conda install graphviz` (conda), or see https://graphviz.org/download/")


def save_graph(output_or_digraph: Tensor | Sequence[Tensor] | graphviz.Digraph, path: str | os.PathLike,
               format: str | None = None, **draw_kw: Any) -> Path:  # noqa: A002 - graphviz's name
    """Render a graph to ``path`` as svg, png, pdf or dot (format from the suffix unless given).

    ``output_or_digraph``: a Digraph, or Tensor(s) to draw with ``draw_graph(..., **draw_kw)``.
    Rendering uses the real ``dot`` program; the file is written atomically. Without ``dot``
    the DOT source is written beside ``path`` (``.dot`` suffix) and GraphvizNotFoundError says
    where and how to install Graphviz. Returns the path written.
    """
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt == "gv":
        fmt = "dot"
    if fmt not in _FORMATS:
        raise ValueError(f"save_graph: cannot tell the format of {str(path)!r}; use a .svg, .png, .pdf or .dot "
                         f"suffix or format= one of {', '.join(_FORMATS)}")
    if isinstance(output_or_digraph, graphviz.Digraph):
        if draw_kw:
            raise TypeError(f"save_graph: drawing options {sorted(draw_kw)} need a Tensor, not a Digraph")
        g = output_or_digraph
    else:
        g = draw_graph(output_or_digraph, **draw_kw)
    if fmt == "dot":
        return atomic_write(path, lambda f: f.write(g.source), mode="w")
    try:
        data = g.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        dot_path = path.with_suffix(".dot") if path.suffix.lower() != ".dot" else path
        atomic_write(dot_path, lambda f: f.write(g.source), mode="w")
        raise GraphvizNotFoundError(
            f"save_graph: the Graphviz `dot` program was not found on PATH, so {path} could not be rendered as "
            f"{fmt}. The DOT source was written to {dot_path}; render it later with "
            f"`dot -T{fmt} {dot_path} -o {path}`. {_INSTALL_HINT}"
        ) from None
    return atomic_write(path, lambda f: f.write(data))
