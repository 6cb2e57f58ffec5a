"""Export a model to ONNX by walking the graph one forward pass records.

``export(model, x, "model.onnx")`` runs ``model(x)`` once in eval mode, walks the recorded
graph from the output back through ``tensor.creator`` / ``fn.inputs`` (iteratively, no
recursion), and emits one or a few ONNX nodes per engine op in topological order:

    Conv2d -> Conv          MaxPool2d -> MaxPool       AvgPool2d -> AveragePool(count_include_pad)
    (ceil_mode pools -> ceil_mode=1, or explicit end pads where ONNX's shape rule differs from PyTorch's;
    'same'-padded convs with an even kernel were recorded as Pad + Conv)
    Linear -> Gemm(transB=1) (2-D input) or Transpose+MatMul+Add
    Reshape -> Flatten(axis=1) or Reshape([0, ...])   LocalResponseNorm -> LRN (odd size) or a decomposition

Parameters become initializers named by their dotted module names (``conv1.weight``); other
constants (the ``2`` of ``x * 2``) become initializers with generated names, marked in their
``doc_string`` so that :func:`tinygrad_cnn.onnx.load` keeps them constant. The batch axis is
symbolic (``"batch"``) when ``dynamic_batch``: every reshape keeps it with ONNX's ``0`` ("copy
this dimension").

The real ``onnx`` package is imported inside the functions, so importing this module is free.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..conv import _pool_extra, dilated_span
from ..nn import Module, Parameter
from ..serialization import atomic_write
from ..tensor import Function, Tensor, _node_key, set_grad_enabled

__all__ = ["export", "to_onnx", "write_model", "op_histogram", "CONSTANT_DOC", "MIN_OPSET", "EXPORTABLE_OPS"]

#: How to get the ``onnx`` package: the error of a missing one says so.
ONNX_EXTRA = "pip install 'tinygrad-cnn[onnx]'"


def require_onnx(what: str) -> Any:
    """``import onnx``; if missing, a ModuleNotFoundError (name ``onnx``) saying ``what`` needs it and how to get it."""
    try:
        import onnx
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "onnx":
            raise  # onnx is there but broken (a missing dependency of its own): keep that error
        raise ModuleNotFoundError(f"{what} needs the onnx package: {ONNX_EXTRA}", name="onnx") from None
    return onnx


#: ``doc_string`` of initializers that are constants, not parameters (``load`` keeps them frozen).
CONSTANT_DOC = "tinygrad_cnn:constant"
#: Softmax/LogSoftmax take a single ``axis`` and ReduceSum takes ``axes`` as an input from opset 13 on.
MIN_OPSET = 13


def export(model: Module, example_input: Any, path: str | os.PathLike, input_names: Sequence[str] = ("input",),
           output_names: Sequence[str] = ("logits",), dynamic_batch: bool = True, opset: int = 17) -> Path:
    """Write ``model`` as an ONNX file that onnxruntime runs; returns the path.

    ``example_input``: a Tensor ``(N, C, H, W)`` (any batch size; with ``dynamic_batch`` the
    file accepts every batch size). The file is checked with ``onnx.checker`` and written atomically.
    """
    proto = to_onnx(model, example_input, input_names, output_names, dynamic_batch, opset)
    return write_model(proto, path)


def write_model(proto: Any, path: str | os.PathLike) -> Path:
    """Check ``proto`` (an ``onnx.ModelProto``) with ``onnx.checker`` and write it to ``path`` atomically."""
    onnx = require_onnx("onnx.write_model")

    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    return atomic_write(path, lambda f: f.write(data))


def op_histogram(proto: Any) -> Counter:
    """``Counter({op_type: count})`` of a ModelProto's nodes (``.most_common()`` for a histogram)."""
    return Counter(node.op_type for node in proto.graph.node)


def to_onnx(model: Module, example_input: Any, input_names: Sequence[str] = ("input",),
            output_names: Sequence[str] = ("logits",), dynamic_batch: bool = True, opset: int = 17) -> Any:
    """Trace ``model(example_input)`` in eval mode and return the ``onnx.ModelProto`` (not written)."""
    onnx = require_onnx("ONNX export")

    from .. import __version__

    if not isinstance(model, Module):
        raise TypeError(f"onnx.export: model must be an nn.Module, got {type(model).__name__}")
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"onnx.export: opset {opset} is not supported; use {MIN_OPSET} to {newest}")
    if len(input_names) != 1:
        raise ValueError(f"onnx.export: the graph has exactly one input, got input_names={tuple(input_names)}")
    # a nested list is float32, as Tensor(list)
    data = (example_input if isinstance(example_input, Tensor) else Tensor(example_input)).data
    if data.dtype.kind != "f" or data.ndim < 1:
        raise ValueError(f"onnx.export: example_input must be a float tensor with a batch axis, got dtype "
                         f"{data.dtype} and shape {tuple(data.shape)}")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with set_grad_enabled(True):  # recorded even when exporting under no_grad() or with frozen weights
            # x requires grad so that every op downstream of it is recorded, and is the output of a
            # marker op (not a leaf) so that the model may modify it in place (a first ReLU(inplace=True)).
            marker = _GraphInput()
            x = marker(Tensor(np.array(data, copy=True), requires_grad=True))
            input_key = _node_key(x)
            result = model(x)
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)

    outputs = list(result) if isinstance(result, (tuple, list)) else [result]
    if not all(isinstance(o, Tensor) for o in outputs):
        raise TypeError("onnx.export: the model must return a Tensor or a tuple of Tensors")
    if len(output_names) != len(outputs):
        raise ValueError(f"onnx.export: the model returns {len(outputs)} output(s) but output_names has "
                         f"{len(output_names)}: {tuple(output_names)}")

    b = _Builder(model, x, input_key, input_names[0], output_names, dynamic_batch, opset)
    for fn in _topological(outputs):
        if fn is not marker:
            b.emit(fn)
    graph_outputs = []
    for out, name in zip(outputs, output_names):
        src = b.names[_node_key(out)] if _node_key(out) in b.names else b.leaf(out)
        if src in b.produced and src not in output_names:
            b.rename(src, name)  # the producing node writes the graph output directly
            b.names[_node_key(out)] = name
        else:  # the input, an initializer, or a tensor returned twice
            b.add("Identity", [src], {}, None, None, out_name=name)
        graph_outputs.append(b.value_info(name, out))

    helper = onnx.helper
    graph = helper.make_graph(
        b.nodes, type(model).__name__, [b.value_info(input_names[0], x)], graph_outputs, b.initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="tinygrad_cnn",
                              producer_version=__version__)
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    return proto


class _GraphInput(Function):
    """Identity that marks the traced input; its output is the graph's input, not a node."""

    keeps_inputs = False

    def forward(self, a):
        return a.copy()  # its own memory: an in-place first op must not count as writing to the leaf

    def backward(self, gy):
        return gy


def _topological(outputs: Sequence[Tensor]) -> list[Function]:
    """Every Function the outputs depend on, each after all of its inputs' creators (iterative DFS)."""
    order: list[Function] = []
    done: set[int] = set()
    stack: list[tuple[Function, bool]] = [(o.creator, False) for o in reversed(outputs) if o.creator is not None]
    while stack:
        fn, expanded = stack.pop()
        if id(fn) in done:
            continue
        if expanded:
            done.add(id(fn))
            order.append(fn)
            continue
        stack.append((fn, True))
        for t in reversed(fn.inputs):
            if t.creator is not None and id(t.creator) not in done:
                stack.append((t.creator, False))
    return order


def _onnx_dtype(t: Tensor) -> int:
    import onnx

    return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype))


class _Builder:
    """Accumulates nodes and initializers; maps engine tensors (by id) to ONNX value names."""

    def __init__(self, model: Module, x: Tensor, input_key: Any, input_name: str, output_names: Sequence[str],
                 dynamic_batch: bool, opset: int):
        self.model, self.dynamic, self.opset = model, dynamic_batch, opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.names: dict[Any, str] = {input_key: input_name}
        self.batch_axis: dict[Any, int | None] = {input_key: 0}  # which axis of a value is the batch axis
        self.used: set[str] = {input_name, *output_names}
        self.produced: set[str] = set()  # values computed by a node
        self.counts: Counter = Counter()
        self.module_names = {id(m): n for n, m in model.named_modules()}
        self.param_names = {id(p): n for n, p in model.named_parameters()}
        self.dtype = x.dtype
        self._keep = [x]  # keep ids stable: every tensor we name stays alive while we build

    # -- naming ------------------------------------------------------------------
    def unique(self, name: str) -> str:
        base, k = name, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name

    def where(self, fn: Function) -> tuple[str, str]:
        """(dotted module path, module class) of the innermost module that was running ``fn``."""
        if not fn.modules:
            return "<root>", type(self.model).__name__
        inner = fn.modules[-1]
        return self.module_names.get(id(inner)) or "<root>", type(inner).__name__

    def leaf(self, t: Tensor) -> str:
        """The initializer name of a parameter or constant leaf (created on first use)."""
        if _node_key(t) in self.names:
            return self.names[_node_key(t)]
        if _node_key(t) in self.param_names:
            name, doc = self.unique(self.param_names[_node_key(t)]), None
        elif isinstance(t, Parameter):
            name, doc = self.unique(f"param_{self.counts['param']}"), None
            self.counts["param"] += 1
        else:
            name, doc = self.unique(f"const_{self.counts['const']}"), CONSTANT_DOC
            self.counts["const"] += 1
        if t.data.dtype.kind == "f" and t.data.dtype != self.dtype and t.requires_grad:
            raise ValueError(f"onnx.export: parameter {name} is {t.data.dtype} but the input is {self.dtype}; "
                             f"export with an example input of the parameters' dtype")
        self.initializer(name, t.data, doc)
        self.names[_node_key(t)] = name
        self.batch_axis[_node_key(t)] = None
        self._keep.append(t)
        return name

    def initializer(self, name: str, arr: Any, doc: str | None = CONSTANT_DOC) -> str:
        from onnx import numpy_helper

        tp = numpy_helper.from_array(np.asarray(arr).copy(order="C"), name)  # not ascontiguousarray: keeps 0-d
        if doc:
            tp.doc_string = doc
        self.initializers.append(tp)
        return name

    def const(self, arr: Any, hint: str) -> str:
        """A new constant initializer (int64 shapes, axes, pads, scalars)."""
        name = self.unique(f"{hint}_{self.counts[hint]}")
        self.counts[hint] += 1
        return self.initializer(name, arr)

    def value_info(self, name: str, t: Tensor) -> Any:
        import onnx

        axis = self.batch_axis.get(_node_key(t))
        dims: list[Any] = list(t.shape)
        if self.dynamic and axis is not None:
            dims[axis] = "batch"
        return onnx.helper.make_tensor_value_info(name, _onnx_dtype(t), dims)

    # -- nodes ---------------------------------------------------------------------
    def add(self, op: str, inputs: list[str], attrs: dict[str, Any], out: Tensor | None, fn: Function | None,
            out_name: str | None = None, batch_axis: int | None = -1) -> str:
        """Append one node; ``out`` (the engine tensor it computes) gets its output name."""
        import onnx

        path = self.where(fn)[0] if fn is not None else ""
        scope = "" if path in ("", "<root>") else "/" + path.replace(".", "/")
        node_name = self.unique(f"{scope}/{op}")
        name = out_name or self.unique(f"{node_name}_output_0")
        self.produced.add(name)
        self.nodes.append(onnx.helper.make_node(op, inputs, [name], name=node_name, **attrs))
        if out is not None:
            self.names[_node_key(out)] = name
            if batch_axis != -1:
                self.batch_axis[_node_key(out)] = batch_axis
            self._keep.append(out)
        return name

    def rename(self, old: str, new: str) -> None:
        """Rename value ``old`` to ``new`` everywhere (graph outputs keep the names the caller chose)."""
        for node in self.nodes:
            for seq in (node.input, node.output):
                for i, v in enumerate(seq):
                    if v == old:
                        seq[i] = new
        self.produced.discard(old)
        self.produced.add(new)

    def emit(self, fn: Function) -> None:
        handler = _HANDLERS.get(fn.name)
        if handler is None:
            path, cls = self.where(fn)
            extra = ""
            if fn.name == "Dropout":
                extra = " (a Dropout was recorded in eval mode: F.dropout(..., training=True) is random at inference)"
            raise NotImplementedError(f"onnx.export: op {fn.name} in {path} ({cls}) has no ONNX mapping{extra}")
        ins = [self.names[_node_key(t)] if _node_key(t) in self.names else self.leaf(t) for t in fn.inputs]
        handler(self, fn, ins, fn.output_node())

    def axis_of(self, t: Tensor) -> int | None:
        return self.batch_axis.get(_node_key(t))


# --------------------------------------------------------------------------- handlers
# Each handler gets (builder, fn, input names, output tensor) and adds the node(s) computing it.


def _same(op: str):
    def handler(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
        b.add(op, ins, {}, out, fn, batch_axis=b.axis_of(fn.inputs[0]))
    return handler


def _elementwise(op: str):
    def handler(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
        axis = None
        for t in fn.inputs:
            a = b.axis_of(t)
            if a is not None:
                axis = a + out.ndim - t.ndim
                break
        # the engine promotes mixed operands (float32 input + float64 constant -> float64); ONNX does not
        ins = [b.add("Cast", [name], {"to": _onnx_dtype(out)}, None, fn) if t.dtype != out.dtype else name
               for t, name in zip(fn.inputs, ins)]
        b.add(op, ins, {}, out, fn, batch_axis=axis)
    return handler


def _conv(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
    a = fn.attrs()
    kh, kw = fn.inputs[1].shape[2:]
    (sh, sw), (ph, pw) = a["stride"], a["padding"]
    b.add("Conv", ins, {"kernel_shape": [kh, kw], "strides": [sh, sw], "pads": [ph, pw, ph, pw],
                        "dilations": list(a.get("dilation", (1, 1))), "group": a.get("groups", 1)},
          out, fn, batch_axis=b.axis_of(fn.inputs[0]))


def _conv_transpose(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
    a = fn.attrs()
    x, w = fn.inputs
    kernel, (sh, sw), (ph, pw) = w.shape[2:], a["stride"], a["padding"]
    dilation = a.get("dilation", (1, 1))
    extra = [h - ((o - 1) * st - 2 * p + k)  # output_padding: which of the stride's sizes conv2d maps to x
             for h, o, st, p, k in zip(fn.in_hw, x.shape[2:], (sh, sw), (ph, pw), dilated_span(kernel, dilation))]
    b.add("ConvTranspose", ins, {"kernel_shape": list(kernel), "strides": [sh, sw], "pads": [ph, pw, ph, pw],
                                 "output_padding": extra, "dilations": list(dilation), "group": a.get("groups", 1)},
          out, fn, batch_axis=b.axis_of(x))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _pool(op: str):
    """MaxPool / AveragePool with PyTorch's ``ceil_mode`` and ``count_include_pad``.

    ONNX's ``ceil_mode=1`` output size (its shape inference) has no "the last window starts inside
    the input or its left padding" rule, which PyTorch and onnxruntime apply. Where the two sizes
    agree the node keeps ``ceil_mode=1``; elsewhere the windows hanging over the bottom/right edge
    get explicit end pads in floor mode (exact: MaxPool ignores pads, and a ``count_include_pad``
    average pads the input with a Pad node first and then counts only the padded input's pixels).
    """
    def handler(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
        a = fn.attrs()
        (kh, kw), (sh, sw), (ph, pw) = a["kernel_size"], a["stride"], a["padding"]
        ceil, cip = bool(a.get("ceil_mode", False)), bool(a.get("count_include_pad", True))
        x = fn.inputs[0]
        h, w = x.shape[2:]
        oh, ow = out.shape[2:]
        attrs: dict[str, Any] = {"kernel_shape": [kh, kw], "strides": [sh, sw], "pads": [ph, pw, ph, pw]}
        if "dilation" in a:  # MaxPool only (PyTorch's AvgPool has none)
            attrs["dilations"] = list(a["dilation"])
        span_h, span_w = fn.span()  # the window's extent
        eh, ew = _pool_extra(h, w, span_h, span_w, sh, sw, ph, pw, oh, ow) if ceil else (0, 0)
        src = ins[0]
        if "divisor_override" in a:  # every window's sum over its kh*kw pixels, padding as zeros: a
            # count_include_pad mean over explicitly end-padded input (floor mode) times kh*kw / divisor
            attrs.update(pads=[ph, pw, ph + eh, pw + ew], count_include_pad=1)
            mean = b.add(op, [src], attrs, None, fn)
            scale = b.const(np.array(kh * kw / a["divisor_override"], dtype=out.dtype), "divisor_scale")
            b.add("Mul", [mean, scale], {}, out, fn, batch_axis=b.axis_of(x))
            return
        if ceil and (oh, ow) == (_ceil_div(h + 2 * ph - span_h, sh) + 1, _ceil_div(w + 2 * pw - span_w, sw) + 1):
            attrs["ceil_mode"] = 1
        elif ceil:
            if op == "AveragePool" and cip and (eh or ew):
                if ph or pw:
                    pads = b.const(np.array([0, 0, ph, pw, 0, 0, ph, pw], dtype=np.int64), "pads")
                    zero = b.const(np.array(0, dtype=x.dtype), "pad_value")
                    src = b.add("Pad", [src, pads, zero], {"mode": "constant"}, None, fn)
                attrs["pads"], cip = [0, 0, eh, ew], False
            elif op == "MaxPool" and (ph + eh >= kh or pw + ew >= kw):  # onnxruntime refuses pads as large as
                pads = b.const(np.array([0, 0, ph, pw, 0, 0, ph + eh, pw + ew], dtype=np.int64), "pads")
                lowest = b.const(np.array(-np.inf, dtype=x.dtype), "pad_value")  # the kernel: pad with -inf
                src = b.add("Pad", [src, pads, lowest], {"mode": "constant"}, None, fn)
                attrs["pads"] = [0, 0, 0, 0]
            else:
                attrs["pads"] = [ph, pw, ph + eh, pw + ew]
        if op == "AveragePool":
            attrs["count_include_pad"] = int(cip)
        b.add(op, [src], attrs, out, fn, batch_axis=b.axis_of(x))
    return handler


def _linear(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
    x = fn.inputs[0]
    axis = b.axis_of(x)
    if x.ndim == 2:
        b.add("Gemm", ins, {"transB": 1}, out, fn, batch_axis=axis)
        return
    wt = b.add("Transpose", [ins[1]], {"perm": [1, 0]}, None, fn)
    if len(ins) == 2:
        b.add("MatMul", [ins[0], wt], {}, out, fn, batch_axis=axis)
    else:
        y = b.add("MatMul", [ins[0], wt], {}, None, fn)
        b.add("Add", [y, ins[2]], {}, out, fn, batch_axis=axis)


def _matmul(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
    a, c = fn.inputs
    axis = None
    if b.axis_of(a) is not None and b.axis_of(a) < a.ndim - 1:
        axis = b.axis_of(a) + out.ndim - a.ndim
    elif b.axis_of(c) is not None and b.axis_of(c) != c.ndim - 2:
        axis = b.axis_of(c) + out.ndim - c.ndim
    b.add("MatMul", ins, {}, out, fn, batch_axis=axis)


def _reshape(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
    x = fn.inputs[0]
    axis = b.axis_of(x)
    if axis == 0 and out.ndim >= 1 and out.shape[0] == x.shape[0]:
        if out.ndim == 2 and x.ndim > 2:
            b.add("Flatten", ins, {"axis": 1}, out, fn, batch_axis=0)
        else:
            shape = b.const(np.array([0, *out.shape[1:]], dtype=np.int64), "shape")
            b.add("Reshape", [ins[0], shape], {}, out, fn, batch_axis=0)
        return
    if axis is not None and b.dynamic:
        path, cls = b.where(fn)
        raise ValueError(f"onnx.export: Reshape {x.shape} -> {out.shape} in {path} ({cls}) mixes the batch axis "
                         f"with other axes; export with dynamic_batch=False")
    shape = b.const(np.array(out.shape, dtype=np.int64), "shape")
    b.add("Reshape", [ins[0], shape], {}, out, fn, batch_axis=None)


def _transpose(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
    n, axes = out.ndim, fn.attrs()["perm"]
    perm = list(range(n))[::-1] if axes is None else [a % n for a in axes]
    axis = b.axis_of(fn.inputs[0])
    b.add("Transpose", ins, {"perm": perm}, out, fn, batch_axis=None if axis is None else perm.index(axis))


def _reduced_axis(axis: int | None, axes: list[int], keepdims: bool) -> int | None:
    if axis is None or axis in axes:
        return None
    return axis if keepdims else axis - sum(a < axis for a in axes)


def _reduce(op: str):
    def handler(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
        x, a = fn.inputs[0], fn.attrs()
        keepdims = bool(a["keepdims"])
        axes = list(range(x.ndim)) if a["axis"] is None else \
            sorted(ax % x.ndim for ax in ((a["axis"],) if isinstance(a["axis"], int) else a["axis"]))
        if not axes:  # axis=() reduces nothing in NumPy, but "no axes" means "all axes" in ONNX
            b.add("Identity", ins, {}, out, fn, batch_axis=b.axis_of(x))
            return
        attrs: dict[str, Any] = {"keepdims": int(keepdims)}
        inputs = list(ins)
        if op == "ReduceSum" or b.opset >= 18:  # ReduceSum takes axes as an input since 13, ReduceMax since 18
            inputs.append(b.const(np.array(axes, dtype=np.int64), "axes"))
        else:
            attrs["axes"] = axes
        b.add(op, inputs, attrs, out, fn, batch_axis=_reduced_axis(b.axis_of(x), axes, keepdims))
    return handler


def _softmax(op: str):
    def handler(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
        b.add(op, ins, {"axis": int(fn.attrs()["axis"])}, out, fn, batch_axis=b.axis_of(fn.inputs[0]))
    return handler


def _lrn(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
    x, a = fn.inputs[0], fn.attrs()
    size, alpha, beta, k = int(a["size"]), float(a["alpha"]), float(a["beta"]), float(a["k"])
    axis = b.axis_of(x)
    if size % 2 == 1:  # ONNX's window equals PyTorch's for odd sizes
        b.add("LRN", ins, {"size": size, "alpha": alpha, "beta": beta, "bias": k}, out, fn, batch_axis=axis)
        return
    # Even size: ONNX's window is [c - (size-1)//2, c + size//2], PyTorch's is [c - size//2, c + (size-1)//2],
    # and onnxruntime refuses even sizes. Decompose: the channel-window sum of x^2 is a Conv with a ones
    # kernel over x^2 viewed as (N, 1, C, rest).
    before, after = size // 2, (size - 1) // 2  # PyTorch's window
    dt = x.dtype
    sq = b.add("Mul", [ins[0], ins[0]], {}, None, fn)
    flat = b.add("Reshape", [sq, b.const(np.array([0, 1, x.shape[1], -1], dtype=np.int64), "shape")], {}, None, fn)
    ones = b.const(np.ones((1, 1, size, 1), dtype=dt), "lrn_window")
    s = b.add("Conv", [flat, ones], {"kernel_shape": [size, 1], "pads": [before, 0, after, 0]}, None, fn)
    s = b.add("Reshape", [s, b.const(np.array([0, *x.shape[1:]], dtype=np.int64), "shape")], {}, None, fn)
    s = b.add("Mul", [s, b.const(np.array(alpha / size, dtype=dt), "lrn_alpha")], {}, None, fn)
    d = b.add("Add", [s, b.const(np.array(k, dtype=dt), "lrn_k")], {}, None, fn)
    d = b.add("Pow", [d, b.const(np.array(-beta, dtype=dt), "lrn_beta")], {}, None, fn)
    b.add("Mul", [ins[0], d], {}, out, fn, batch_axis=axis)


_ONNX_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pad(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
    a = fn.attrs()
    pads = b.const(np.array([int(w[0]) for w in a["pads"]] + [int(w[1]) for w in a["pads"]], dtype=np.int64), "pads")
    if "mode" in a:  # PadMode: ONNX's reflect is PyTorch's (no edge repeat), edge its replicate, wrap its circular
        mode = _ONNX_PAD_MODES[a["mode"]]
        if mode == "wrap" and b.opset < 19:
            raise NotImplementedError(f"onnx.export: circular padding needs Pad's 'wrap' mode, opset 19 or newer "
                                      f"(this export: opset {b.opset}); pass opset=19")
        b.add("Pad", [ins[0], pads], {"mode": mode}, out, fn, batch_axis=b.axis_of(fn.inputs[0]))
        return
    value = b.const(np.array(a["value"], dtype=out.dtype), "pad_value")
    b.add("Pad", [ins[0], pads, value], {"mode": "constant"}, out, fn, batch_axis=b.axis_of(fn.inputs[0]))


def _cast(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
    b.add("Cast", ins, {"to": _onnx_dtype(out)}, out, fn, batch_axis=b.axis_of(fn.inputs[0]))


def _broadcast_to(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
    x = fn.inputs[0]
    axis = b.axis_of(x)
    shape = list(out.shape)
    out_axis = None if axis is None else axis + out.ndim - x.ndim
    if out_axis is not None:
        shape[out_axis] = 1  # Expand broadcasts 1 against the input's (dynamic) batch size
    b.add("Expand", [ins[0], b.const(np.array(shape, dtype=np.int64), "shape")], {}, out, fn, batch_axis=out_axis)


def _sum_to(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
    x = fn.inputs[0]
    lead = x.ndim - out.ndim
    name, axis = ins[0], b.axis_of(x)
    if lead:
        name = b.add("ReduceSum", [name, b.const(np.arange(lead, dtype=np.int64), "axes")], {"keepdims": 0},
                     None, fn)
        axis = _reduced_axis(axis, list(range(lead)), False)
    ones = [i for i, s in enumerate(out.shape) if s == 1 and x.shape[i + lead] != 1]
    if ones:
        b.add("ReduceSum", [name, b.const(np.array(ones, dtype=np.int64), "axes")], {"keepdims": 1}, out, fn,
              batch_axis=_reduced_axis(axis, ones, True))
    else:
        b.add("Identity", [name], {}, out, fn, batch_axis=axis)


_INT_MAX = np.iinfo(np.int64).max


def _getitem(b: _Builder, fn: Function, ins: list[str], out: Tensor) -> None:
    """Basic indexing (ints, slices, ``...``) as Slice, then Squeeze for the int axes; no fancy indices."""
    x = fn.inputs[0]
    index = fn.index if isinstance(fn.index, tuple) else (fn.index,)
    if not all(isinstance(i, (int, np.integer, slice)) or i is Ellipsis for i in index):
        path, cls = b.where(fn)
        raise NotImplementedError(f"onnx.export: op GetItem in {path} ({cls}) has no ONNX mapping for the index "
                                  f"{fn.index!r} (only ints, slices and ...)")
    explicit = sum(i is not Ellipsis for i in index)
    expanded: list[Any] = []
    for i in index:
        expanded += [slice(None)] * (x.ndim - explicit) if i is Ellipsis else [i]
    starts, ends, axes, steps, squeeze = [], [], [], [], []
    for ax, i in enumerate(expanded):
        if isinstance(i, slice):
            if i == slice(None):
                continue
            step = 1 if i.step is None else int(i.step)
            starts.append((0 if step > 0 else _INT_MAX) if i.start is None else int(i.start))
            ends.append((_INT_MAX if step > 0 else -_INT_MAX) if i.stop is None else int(i.stop))
        else:
            step = 1
            starts.append(int(i))
            ends.append(_INT_MAX if int(i) == -1 else int(i) + 1)
            squeeze.append(ax)
        axes.append(ax)
        steps.append(step)
    axis = b.axis_of(x)
    if axis in axes:
        axis = None
    name = ins[0]
    if axes:
        consts = [b.const(np.array(v, dtype=np.int64), "slice") for v in (starts, ends, axes, steps)]
        name = b.add("Slice", [name, *consts], {}, None if squeeze else out, fn, batch_axis=axis)
    if squeeze:
        b.add("Squeeze", [name, b.const(np.array(squeeze, dtype=np.int64), "axes")], {}, out, fn,
              batch_axis=None if axis is None else axis - sum(a < axis for a in squeeze))
    elif not axes:
        b.add("Identity", [name], {}, out, fn, batch_axis=axis)


_HANDLERS = {
    "Conv2d": _conv,
    "ConvTranspose2d": _conv_transpose,
    "MaxPool2d": _pool("MaxPool"),
    "AvgPool2d": _pool("AveragePool"),
    "ReLU": _same("Relu"),
    "Sigmoid": _same("Sigmoid"),
    "Tanh": _same("Tanh"),
    "Exp": _same("Exp"),
    "Log": _same("Log"),
    "Sqrt": _same("Sqrt"),
    "Neg": _same("Neg"),
    "Linear": _linear,
    "MatMul": _matmul,
    "Add": _elementwise("Add"),
    "Sub": _elementwise("Sub"),
    "Mul": _elementwise("Mul"),
    "Div": _elementwise("Div"),
    "Pow": _elementwise("Pow"),
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Sum": _reduce("ReduceSum"),
    "Mean": _reduce("ReduceMean"),
    "Max": _reduce("ReduceMax"),
    "Softmax": _softmax("Softmax"),
    "LogSoftmax": _softmax("LogSoftmax"),
    "LocalResponseNorm": _lrn,
    "Pad": _pad,
    "PadMode": _pad,
    "Cast": _cast,
    "BroadcastTo": _broadcast_to,
    "SumTo": _sum_to,
    "GetItem": _getitem,
}

#: Engine ``Function`` names that ``export`` maps to ONNX.
EXPORTABLE_OPS = tuple(sorted(_HANDLERS))
