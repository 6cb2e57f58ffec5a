"""Import an ONNX graph as an ``nn.Module`` that runs on this engine.

``load("model.onnx")`` returns an :class:`OnnxModule`: float initializers become
``nn.Parameter``s registered under their (sanitized) dotted names, so ``conv1.weight`` is
``module.conv1.weight`` and ``named_parameters()`` / ``state_dict()`` / optimizers work;
``forward`` runs the nodes in order with this engine's differentiable ops, so the graph can be
evaluated, fine-tuned and gradient-checked (``.double()`` first).

Values flowing through the graph are either Tensors (they depend on the input or on a
parameter) or plain NumPy arrays (constants). Shape arithmetic that PyTorch's exporter emits
(``Shape -> Gather -> Unsqueeze -> Concat -> Reshape``) therefore runs in NumPy on the fly.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import functional as F
from ..backend import get_array_module
from ..conv import ceil_pool_size, dilated_span
from ..nn import Module, Parameter
from ..tensor import Function, Tensor, broadcast_to
from .export import CONSTANT_DOC, require_onnx

__all__ = ["load", "OnnxModule", "OnnxFormatError", "SUPPORTED_OPS"]


class OnnxFormatError(ValueError):
    """A file is not a readable ONNX model (truncated, corrupt, or something else entirely)."""


@dataclass
class _Node:
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def where(self) -> str:
        return f"{self.op} node {self.name!r}" if self.name else f"{self.op} node"


def load(path: str | os.PathLike | Any) -> OnnxModule:
    """Read an ONNX file (or an ``onnx.ModelProto``) into an :class:`OnnxModule`.

    Raises FileNotFoundError for a missing file, :class:`OnnxFormatError` (a ValueError) for a
    truncated or non-ONNX file, and NotImplementedError listing every op this engine cannot run.
    """
    onnx = require_onnx("ONNX import (tinygrad_cnn.onnx.load)")
    from google.protobuf.message import DecodeError

    if isinstance(path, onnx.ModelProto):
        proto, source = path, "<ModelProto>"
    else:
        source = str(path)
        if Path(path).is_dir():
            raise IsADirectoryError(f"onnx.load: {source} is a directory, not an ONNX file")
        if not Path(path).is_file():
            raise FileNotFoundError(f"onnx.load: no such ONNX file: {source}")
        try:
            proto = onnx.load_model(source)
        except (DecodeError, RuntimeError, ValueError, OSError, UnicodeDecodeError,
                onnx.checker.ValidationError) as exc:  # ValidationError: e.g. a missing external-data file
            raise OnnxFormatError(f"onnx.load: {source} is not a readable ONNX model (truncated or not ONNX?): "
                                  f"{type(exc).__name__}: {exc}") from None
    if proto.ir_version <= 0 or not proto.HasField("graph") or not proto.graph.output:
        raise OnnxFormatError(f"onnx.load: {source} is not an ONNX model (no IR version or no graph; "
                              f"truncated or a different file type?)")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise OnnxFormatError(f"onnx.load: {source} is not a valid ONNX model: {exc}") from None
    return OnnxModule(proto, source=source)


def _sanitize(part: str) -> str:
    part = re.sub(r"\W", "_", part)
    return part or "_"


class OnnxModule(Module):
    """An ONNX graph run with this engine's ops; parameters are the graph's float initializers.

    ``forward(*inputs)`` takes one Tensor (or array) per graph input and returns a Tensor, or a
    tuple for several graph outputs. ``param_names`` maps ONNX initializer names to parameter names.
    """

    def __init__(self, proto: Any, source: str = "<ModelProto>"):
        from onnx import numpy_helper

        super().__init__()
        graph = proto.graph
        self.source = source
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)
        nodes, unsupported = _parse(graph)
        if unsupported:
            raise NotImplementedError(f"onnx.load: {source} uses ops this engine cannot run: "
                                      f"{', '.join(sorted(unsupported))}")
        self._nodes = nodes
        self._consts: dict[str, np.ndarray] = {}
        self._params: dict[str, Parameter] = {}
        self.param_names: dict[str, str] = {}
        known = {init.name for init in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in known]
        self.output_names = [o.name for o in graph.output]
        self._dtype: Any = None  # set by to(): float constants follow the parameters' dtype
        for init in graph.initializer:  # registered last, so no name can shadow the attributes above
            arr = numpy_helper.to_array(init)
            if arr.dtype.kind == "f" and init.doc_string != CONSTANT_DOC:
                if arr.dtype not in (np.float32, np.float64):
                    arr = arr.astype(np.float32)
                p = Parameter(np.array(arr, copy=True))
                self._params[init.name] = p
                self.param_names[init.name] = self._register(init.name, p)
            else:
                self._consts[init.name] = arr

    def _register(self, onnx_name: str, p: Parameter) -> str:
        """Register ``p`` under the dotted path of ``onnx_name`` (plain Modules in between); return the path."""
        parts = [_sanitize(s) for s in onnx_name.split(".")]
        holder, path = self, []
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            name = part
            while True:
                slot_mod = holder._modules.get(name)
                taken = name in holder._parameters or (hasattr(holder, name) and slot_mod is None) or (
                    last and slot_mod is not None)
                if not taken:
                    break
                name += "_"
            path.append(name)
            if last:
                setattr(holder, name, p)
            else:
                if name not in holder._modules:
                    holder.add_module(name, Module())
                holder = holder._modules[name]
        return ".".join(path)

    # -- dtype -----------------------------------------------------------------------
    def to(self, dtype: Any) -> OnnxModule:
        """Cast every float parameter and float constant to ``dtype`` (float32 or float64), in place."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"OnnxModule.to: dtype must be float32 or float64, got {dtype}")
        for p in self._params.values():
            p.data = p.data.astype(dtype)
            p.grad = None
        for k, v in self._consts.items():
            if v.dtype.kind == "f":
                self._consts[k] = v.astype(dtype)
        self._dtype = dtype
        return self

    def double(self) -> OnnxModule:
        return self.to(np.float64)

    def float(self) -> OnnxModule:
        return self.to(np.float32)

    # -- running ---------------------------------------------------------------------
    def forward(self, *inputs: Any) -> Any:
        """Run the graph on one Tensor (or array) per graph input; a Tensor, or a tuple for several outputs."""
        if len(inputs) != len(self.input_names):
            raise ValueError(f"OnnxModule: the graph takes {len(self.input_names)} input(s) "
                             f"{self.input_names}, got {len(inputs)}")
        env: dict[str, Any] = {"": None}
        env.update(self._consts)
        env.update(self._params)
        for name, x in zip(self.input_names, inputs):
            env[name] = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
        self._run(self._nodes, env)
        outs = tuple(_as_tensor(env[n]) for n in self.output_names)
        return outs[0] if len(outs) == 1 else outs

    def _run(self, nodes: list[_Node], env: dict[str, Any]) -> None:
        """Evaluate ``nodes`` in order, writing their outputs into ``env`` (value names are unique)."""
        for node in nodes:
            try:
                args = [env[n] for n in node.inputs]
            except KeyError as exc:
                raise ValueError(f"OnnxModule: {node.where()} reads {exc.args[0]!r}, which nothing computed "
                                 f"(the graph is not in topological order?)") from None
            if node.op == "If":  # the condition is static here (shape checks): run one branch inline
                cond = bool(_const(args[0], node, "the If condition").ravel()[0])
                branch = node.attrs["then_branch" if cond else "else_branch"]
                self._run(branch.nodes, env)
                results = tuple(env[n] for n in branch.outputs)
            else:
                try:
                    result = _OPS[node.op](self, node, *args)
                except (NotImplementedError, ValueError, TypeError) as exc:
                    if str(exc).startswith("OnnxModule:"):
                        raise
                    kind = next(k for k in (NotImplementedError, TypeError, ValueError) if isinstance(exc, k))
                    raise kind(f"OnnxModule: {node.where()} failed on inputs "
                               f"{[_describe(a) for a in args]}: {exc}") from exc
                results = result if isinstance(result, tuple) else (result,)
            for name, value in zip(node.outputs, results):
                if name:
                    env[name] = value

    def extra_repr(self) -> str:
        return f"{self.source!r}, {len(self._nodes)} nodes, opset {self.opset}"


@dataclass
class _Branch:
    """A subgraph attribute (If's then/else branch): its nodes and the names it returns."""

    nodes: list[_Node]
    outputs: list[str]


def _parse(graph: Any) -> tuple[list[_Node], set[str]]:
    """The graph's nodes as ``_Node``s (subgraphs included) and the op types this module cannot run."""
    from onnx import GraphProto, helper

    nodes, bad = [], set()
    for n in graph.node:
        attrs = {}
        for a in n.attribute:
            v = helper.get_attribute_value(a)
            if isinstance(v, GraphProto):
                sub, sub_bad = _parse(v)
                bad |= sub_bad
                if v.initializer:
                    bad.add(f"{n.op_type} (subgraph with initializers)")
                v = _Branch(sub, [o.name for o in v.output])
            attrs[a.name] = _attr_value(v)
        if n.domain not in ("", "ai.onnx"):
            bad.add(f"{n.op_type} (domain {n.domain})")
        elif n.op_type not in _OPS:
            bad.add(n.op_type)
        elif n.op_type in _FIRST_OUTPUT_ONLY and any(n.output[1:]):
            bad.add(f"{n.op_type} (its {_FIRST_OUTPUT_ONLY[n.op_type]} output)")
        nodes.append(_Node(n.op_type, list(n.input), list(n.output), attrs, n.name))
    return nodes, bad


def _describe(v: Any) -> str:
    if isinstance(v, Tensor):
        return f"Tensor{tuple(v.shape)}"
    if isinstance(v, np.ndarray):
        return f"const{tuple(v.shape)}"
    return repr(v)


def _attr_value(v: Any) -> Any:
    from onnx import TensorProto, numpy_helper

    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, TensorProto):
        return numpy_helper.to_array(v)
    return v


def _as_tensor(v: Any) -> Tensor:
    return v if isinstance(v, Tensor) else Tensor(np.asarray(v))


def _const(v: Any, node: _Node, what: str) -> np.ndarray:
    """A constant input (shape, axes, pads...); a Tensor here means the graph is data-dependent."""
    if isinstance(v, Tensor):
        raise NotImplementedError(f"OnnxModule: {node.where()}: {what} must be a constant, not a computed tensor")
    return np.asarray(v)


def _consts(*vs: Any) -> bool:
    return all(not isinstance(v, Tensor) for v in vs if v is not None)


def _axes(node: _Node, axes_input: Any, ndim: int) -> list[int] | None:
    """The ``axes`` of a node, from its attribute (older opsets) or its optional input (newer)."""
    axes = node.attrs.get("axes")
    if axes_input is not None:
        axes = _const(axes_input, node, "axes").tolist()
    return None if axes is None else [int(a) % max(ndim, 1) for a in axes]


# --------------------------------------------------------------------------- op handlers
# Each takes (module, node, *inputs) and returns the output(s). NumPy inputs give NumPy outputs.


def _unary(fn, np_fn):
    def run(m: OnnxModule, node: _Node, x: Any) -> Any:
        return np_fn(x) if _consts(x) else fn(x)
    return run


def _binary(op):
    def run(m: OnnxModule, node: _Node, a: Any, b: Any) -> Any:
        if _consts(a, b):
            return op(np.asarray(a), np.asarray(b))
        return op(_as_tensor(a), _as_tensor(b))
    return run


def _int_div(a, b):
    if isinstance(a, np.ndarray) and a.dtype.kind in "iu" and np.asarray(b).dtype.kind in "iu":
        return a // b
    return a / b


def _identity(m: OnnxModule, node: _Node, x: Any, *rest: Any) -> Any:
    if node.op == "Dropout" and len(node.outputs) > 1:
        return x, np.ones(x.shape, dtype=bool)
    return x


def _constant(m: OnnxModule, node: _Node) -> np.ndarray:
    a = node.attrs
    if "value" in a:
        v = np.asarray(a["value"])
    elif "value_float" in a:
        v = np.array(a["value_float"], dtype=np.float32)
    elif "value_floats" in a:
        v = np.array(a["value_floats"], dtype=np.float32)
    elif "value_int" in a:
        v = np.array(a["value_int"], dtype=np.int64)
    elif "value_ints" in a:
        v = np.array(a["value_ints"], dtype=np.int64)
    else:
        raise NotImplementedError(f"OnnxModule: {node.where()}: attributes {sorted(a)} are not supported")
    if m._dtype is not None and v.dtype.kind == "f":
        v = v.astype(m._dtype)
    return v.copy()


def _shape(m: OnnxModule, node: _Node, x: Any) -> np.ndarray:
    shape = np.array(np.shape(x.data if isinstance(x, Tensor) else x), dtype=np.int64)
    start, end = node.attrs.get("start", 0), node.attrs.get("end")
    return shape[start:end]


def _gather(m: OnnxModule, node: _Node, data: Any, indices: Any) -> Any:
    axis = node.attrs.get("axis", 0)
    idx = _const(indices, node, "indices")
    if _consts(data):
        return np.take(np.asarray(data), idx, axis=axis)
    axis %= data.ndim
    return data[(slice(None),) * axis + (idx,)]


def _unsqueeze(m: OnnxModule, node: _Node, x: Any, axes: Any = None) -> Any:
    shape = list(np.shape(x.data if isinstance(x, Tensor) else x))
    raw = node.attrs.get("axes", []) if axes is None else _const(axes, node, "axes").ravel().tolist()
    ax = [int(a) % (len(shape) + len(raw)) for a in raw]
    for a in sorted(ax):
        shape.insert(a, 1)
    return np.reshape(x, shape) if _consts(x) else x.reshape(*shape)


def _squeeze(m: OnnxModule, node: _Node, x: Any, axes: Any = None) -> Any:
    shape = list(np.shape(x.data if isinstance(x, Tensor) else x))
    ax = _axes(node, axes, len(shape))
    if ax is None:
        ax = [i for i, s in enumerate(shape) if s == 1]
    new = [s for i, s in enumerate(shape) if i not in ax]
    return np.reshape(x, new) if _consts(x) else x.reshape(*new)


class _Concat(Function):
    """Concatenate along ``axis``; the gradient is the matching slice of ``gy`` for each input."""

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return get_array_module(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        out, start = [], 0
        for n in self.sizes:
            out.append(gy[(slice(None),) * self.axis + (slice(start, start + n),)])
            start += n
        return tuple(out)


def _concat(m: OnnxModule, node: _Node, *xs: Any) -> Any:
    axis = node.attrs["axis"]
    if _consts(*xs):
        return np.concatenate([np.asarray(x) for x in xs], axis=axis)
    ts = [_as_tensor(x) for x in xs]
    return _Concat(axis % ts[0].ndim)(*ts)


def _slice(m: OnnxModule, node: _Node, x: Any, starts: Any = None, ends: Any = None, axes: Any = None,
           steps: Any = None) -> Any:
    ndim = len(np.shape(x.data if isinstance(x, Tensor) else x))
    if starts is None:  # opset < 10: attributes
        starts, ends = node.attrs["starts"], node.attrs["ends"]
    starts, ends = _const(starts, node, "starts").tolist(), _const(ends, node, "ends").tolist()
    ax = _axes(node, axes, ndim) or list(range(len(starts)))
    st = [1] * len(starts) if steps is None else _const(steps, node, "steps").tolist()
    index = [slice(None)] * ndim
    big = 2 ** 62
    for a, s, e, k in zip(ax, starts, ends, st):
        e = None if (k > 0 and e >= big) or (k < 0 and e <= -big) else e
        index[a] = slice(s, e, k)
    return np.asarray(x)[tuple(index)] if _consts(x) else x[tuple(index)]


def _cast(m: OnnxModule, node: _Node, x: Any) -> Any:
    from onnx import helper

    dtype = helper.tensor_dtype_to_np_dtype(node.attrs["to"])
    if m._dtype is not None and dtype.kind == "f" and np.dtype(getattr(x, "dtype", dtype)).kind == "f":
        dtype = m._dtype  # a float-to-float cast follows the module's precision (net.double() stays float64)
    if _consts(x):
        return np.asarray(x).astype(dtype)
    return x if x.dtype == dtype else x.astype(dtype)


def _constant_of_shape(m: OnnxModule, node: _Node, shape: Any) -> np.ndarray:
    value = np.asarray(node.attrs.get("value", np.zeros(1, dtype=np.float32))).ravel()
    return np.full(_const(shape, node, "shape").astype(np.int64), value[0], dtype=value.dtype)


def _range(m: OnnxModule, node: _Node, start: Any, limit: Any, delta: Any) -> np.ndarray:
    start, limit, delta = (_const(v, node, "range bounds") for v in (start, limit, delta))
    return np.arange(start, limit, delta, dtype=start.dtype)


def _expand(m: OnnxModule, node: _Node, x: Any, shape: Any) -> Any:
    target = np.broadcast_shapes(np.shape(x.data if isinstance(x, Tensor) else x),
                                 tuple(_const(shape, node, "shape").tolist()))
    return np.broadcast_to(x, target).copy() if _consts(x) else broadcast_to(x, target)


def _equal(m: OnnxModule, node: _Node, a: Any, b: Any) -> np.ndarray:
    """A comparison has no gradient: compare the values (PyTorch's exporter uses it for shape checks)."""
    return np.equal(a.data if isinstance(a, Tensor) else a, b.data if isinstance(b, Tensor) else b)


def _reshape(m: OnnxModule, node: _Node, x: Any, shape: Any = None) -> Any:
    spec = _const(shape, node, "shape").tolist() if shape is not None else list(node.attrs["shape"])
    in_shape = np.shape(x.data if isinstance(x, Tensor) else x)
    if not node.attrs.get("allowzero", 0):
        spec = [in_shape[i] if s == 0 else s for i, s in enumerate(spec)]
    return np.reshape(x, spec) if _consts(x) else x.reshape(*spec)


def _flatten(m: OnnxModule, node: _Node, x: Any) -> Any:
    shape = np.shape(x.data if isinstance(x, Tensor) else x)
    axis = node.attrs.get("axis", 1)
    axis = axis + len(shape) if axis < 0 else axis  # ONNX: a negative axis counts from the end, in [-r, r]
    new = (math.prod(shape[:axis]), math.prod(shape[axis:]))
    return np.reshape(x, new) if _consts(x) else x.reshape(*new)


def _transpose(m: OnnxModule, node: _Node, x: Any) -> Any:
    perm = node.attrs.get("perm")
    if _consts(x):
        return np.transpose(x, perm)
    return x.transpose(*perm) if perm is not None else x.transpose()


def _matmul(m: OnnxModule, node: _Node, a: Any, b: Any) -> Any:
    if _consts(a, b):
        return np.matmul(a, b)
    return F.matmul(_as_tensor(a), _as_tensor(b))


def _gemm(m: OnnxModule, node: _Node, a: Any, b: Any, c: Any = None) -> Tensor:
    at = node.attrs
    alpha, beta = at.get("alpha", 1.0), at.get("beta", 1.0)
    a, b = _as_tensor(a), _as_tensor(b)
    if at.get("transA", 0):
        a = a.T
    if at.get("transB", 0) and alpha == 1.0 and beta == 1.0 and (c is None or np.ndim(c) == 1):
        return F.linear(a, b, None if c is None else _as_tensor(c))  # the common case: one Linear op
    y = a @ (b.T if at.get("transB", 0) else b)
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + (_as_tensor(c) * beta if beta != 1.0 else _as_tensor(c))
    return y


def _spatial_pads(node: _Node, in_sizes: tuple[int, ...], kernel: tuple[int, ...],
                  strides: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """``(begins, ends)`` per spatial axis from ``pads`` or ``auto_pad`` (SAME_UPPER/SAME_LOWER/VALID)."""
    k = len(kernel)
    auto = node.attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = [int(p) for p in node.attrs.get("pads", [0] * (2 * k))]
        return pads[:k], pads[k:]
    if auto == "VALID":
        return [0] * k, [0] * k
    total = [max((math.ceil(i / s) - 1) * s + kk - i, 0) for i, kk, s in zip(in_sizes, kernel, strides)]
    small = [t // 2 for t in total]
    big = [t - s for t, s in zip(total, small)]
    return (small, big) if auto == "SAME_UPPER" else (big, small)


def _dilations(node: _Node, k: int = 2) -> tuple[int, ...]:
    """The node's ``dilations`` (ONNX's default: 1 along every spatial axis)."""
    d = tuple(int(v) for v in node.attrs.get("dilations", [1] * k))
    if len(d) != k or min(d) < 1:
        raise ValueError(f"OnnxModule: {node.where()}: dilations={list(d)} does not fit {k} spatial axes")
    return d


def _symmetric(x: Tensor, begins: list[int], ends: list[int], value: float) -> tuple[Tensor, tuple[int, int]]:
    """Engine ops pad (H, W) symmetrically; pad asymmetric ONNX pads explicitly first."""
    (top, left), (bottom, right) = begins, ends
    if top == bottom and left == right:
        return x, (top, left)
    return F.pad(x, (left, right, top, bottom), value=value), (0, 0)


def _conv_operands(node: _Node, x: Any, w: Any, refused: tuple[str, ...] = ()) -> tuple[Tensor, Tensor]:
    """``x, w`` as Tensors, after refusing what the engine's 2-D convolutions cannot do."""
    x, w = _as_tensor(x), _as_tensor(w)
    if x.ndim != 4:
        raise NotImplementedError(f"OnnxModule: {node.where()}: only 2-D convolution of (N, C, H, W) inputs "
                                  f"is supported, got input {x.shape}")
    for name in refused:
        value = node.attrs.get(name)
        if value not in (None, 1, "NOTSET", ""):
            raise NotImplementedError(f"OnnxModule: {node.where()}: {name}={value!r} is not supported")
    return x, w


def _conv(m: OnnxModule, node: _Node, x: Any, w: Any, b: Any = None) -> Tensor:
    x, w = _conv_operands(node, x, w)
    dilation, groups = _dilations(node), int(node.attrs.get("group", 1))
    strides = tuple(node.attrs.get("strides", [1, 1]))
    pads = _spatial_pads(node, x.shape[2:], dilated_span(w.shape[2:], dilation), strides)
    x, padding = _symmetric(x, *pads, 0.0)
    return F.conv2d(x, w, None if b is None else _as_tensor(b), strides, padding, dilation, groups)


def _conv_transpose(m: OnnxModule, node: _Node, x: Any, w: Any, b: Any = None) -> Tensor:
    x, w = _conv_operands(node, x, w, refused=("output_shape", "auto_pad"))
    dilation, groups = _dilations(node), int(node.attrs.get("group", 1))
    (top, left, bottom, right) = [int(p) for p in node.attrs.get("pads", [0] * 4)]
    strides, extra = tuple(node.attrs.get("strides", [1, 1])), tuple(node.attrs.get("output_padding", [0, 0]))
    bias = None if b is None else _as_tensor(b)
    if (top, left) == (bottom, right):
        return F.conv_transpose2d(x, w, bias, strides, (top, left), extra, groups, dilation)
    y = F.conv_transpose2d(x, w, bias, strides, 0, extra, groups, dilation)  # asymmetric pads: crop by slicing
    return y[:, :, top:y.shape[2] - bottom, left:y.shape[3] - right]


def _pool2d(kind: str, x: Tensor, kernel, strides, begins, ends, count_include_pad: bool,
            ceil_mode: bool = False, dilation=(1, 1)) -> Tensor:
    """Max/average pooling of ``x: (N, C, H, W)`` with ONNX's (possibly asymmetric) pads.

    ``ceil_mode``: the engine's is PyTorch's, and onnxruntime's is the same rule (a last window
    must start before the end pad). Asymmetric pads are padded explicitly, where the engine counts
    them as input, so its output can have one window more, which is dropped.
    """
    sizes = zip(x.shape[2:], dilated_span(kernel, dilation), strides, begins, ends)
    oh, ow = (ceil_pool_size(*a) for a in sizes) if ceil_mode else (None, None)

    def crop(t):
        return t if not ceil_mode or t.shape[2:] == (oh, ow) else t[:, :, :oh, :ow]

    if kind == "max":
        xs, padding = _symmetric(x, begins, ends, -np.inf)
        return crop(F.max_pool2d(xs, kernel, strides, padding, dilation, ceil_mode))
    xs, padding = _symmetric(x, begins, ends, 0.0)
    y = crop(F.avg_pool2d(xs, kernel, strides, padding, ceil_mode=ceil_mode))
    if count_include_pad or not any(begins + ends):
        return y
    # count_include_pad=0: divide by the share of real pixels in each window (a constant).
    ones = _symmetric(Tensor(np.ones((1, 1, *x.shape[2:]), dtype=x.dtype)), begins, ends, 0.0)[0]
    return y / Tensor(crop(F.avg_pool2d(ones, kernel, strides, padding, ceil_mode=ceil_mode)).data)


def _pool(kind: str):
    def run(m: OnnxModule, node: _Node, x: Any) -> Tensor:
        """1-D/2-D/3-D pooling: axes the window leaves alone (kernel 1, stride 1, no pads) fold into the
        channels, and what is left (at most two axes) runs as 2-D pooling. PyTorch exports LRN as a
        3-D average pool with kernel (size, 1, 1), which this covers."""
        x = _as_tensor(x)
        ceil_mode = bool(node.attrs.get("ceil_mode", 0))
        kernel = [int(k) for k in node.attrs["kernel_shape"]]
        k = len(kernel)
        if x.ndim != k + 2:
            raise ValueError(f"kernel_shape {kernel} does not fit an input of shape {x.shape}")
        dilations = list(_dilations(node, k))
        if kind == "avg" and max(dilations) > 1:
            raise NotImplementedError(f"OnnxModule: {node.where()}: dilations={dilations} is not supported for "
                                      f"average pooling (PyTorch's has none)")
        strides = [int(s) for s in node.attrs.get("strides", [1] * k)]  # ONNX's default stride is 1
        begins, ends = _spatial_pads(node, x.shape[2:], dilated_span(kernel, dilations), tuple(strides))
        active = [i for i in range(k) if kernel[i] != 1 or strides[i] != 1 or begins[i] or ends[i]]
        if len(active) > 2:
            raise NotImplementedError(f"OnnxModule: {node.where()}: pooling over more than two axes "
                                      f"(kernel {kernel}, strides {strides}) is not supported")
        # the 2-D window: the active axes, topped up with passive ones (or a unit axis for 1-D pooling)
        window = sorted(active + [i for i in reversed(range(k)) if i not in active][:max(0, 2 - len(active))])
        unit = [1] if len(window) < 2 else []
        passive = [i for i in range(k) if i not in window]
        perm = [0, 1] + [2 + i for i in passive] + [2 + i for i in window]
        plain = perm == list(range(x.ndim))
        x4 = x if plain and not unit and x.ndim == 4 else \
            (x if plain else x.transpose(*perm)).reshape(x.shape[0], -1, *[x.shape[2 + i] for i in window], *unit)

        def pick(vals, default):
            return [vals[i] for i in window] + [default] * len(unit)

        y4 = _pool2d(kind, x4, pick(kernel, 1), pick(strides, 1), pick(begins, 0), pick(ends, 0),
                     bool(node.attrs.get("count_include_pad", 0)), ceil_mode, pick(dilations, 1))
        if x4 is x:
            return y4
        y = y4.reshape(x.shape[0], x.shape[1], *[x.shape[2 + i] for i in passive], *y4.shape[2:2 + len(window)])
        return y if plain else y.transpose(*np.argsort(perm).tolist())
    return run


def _global_avg(m: OnnxModule, node: _Node, x: Any) -> Tensor:
    x = _as_tensor(x)
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)


def _softmax(kind: str):
    def run(m: OnnxModule, node: _Node, x: Any) -> Tensor:
        x = _as_tensor(x)
        f = F.softmax if kind == "softmax" else F.log_softmax
        if m.opset >= 13:
            return f(x, node.attrs.get("axis", -1))
        axis = node.attrs.get("axis", 1) % x.ndim  # before opset 13: coerce to 2-D at axis
        shape = x.shape
        return f(x.reshape(math.prod(shape[:axis]), -1), 1).reshape(*shape)
    return run


def _lrn(m: OnnxModule, node: _Node, x: Any) -> Tensor:
    """ONNX's window is ``[c - (size-1)//2, c + size//2]``, PyTorch's its mirror image: equal for odd sizes,
    and for even sizes the mirror image on reversed channels."""
    a = node.attrs
    size = int(a["size"])
    x = _as_tensor(x)
    args = (size, a.get("alpha", 1e-4), a.get("beta", 0.75), a.get("bias", 1.0))
    if size % 2:
        return F.local_response_norm(x, *args)
    flip = (slice(None), slice(None, None, -1))
    return F.local_response_norm(x[flip], *args)[flip]


def _pad(m: OnnxModule, node: _Node, x: Any, pads: Any = None, value: Any = None, axes: Any = None) -> Tensor:
    x = _as_tensor(x)
    mode = node.attrs.get("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise NotImplementedError(f"OnnxModule: {node.where()}: mode={mode!r} is not supported")
    p = _const(pads, node, "pads").tolist() if pads is not None else list(node.attrs["pads"])
    ax = _axes(node, axes, x.ndim) or list(range(x.ndim))
    widths = [(0, 0)] * x.ndim
    k = len(ax)
    for i, a in enumerate(ax):
        widths[a] = (int(p[i]), int(p[i + k]))
    if any(w < 0 for pair in widths for w in pair):
        raise NotImplementedError(f"OnnxModule: {node.where()}: negative pads {p} are not supported")
    if mode != "constant":  # ONNX's edge is PyTorch's replicate, wrap its circular
        torch_mode = {"reflect": "reflect", "edge": "replicate", "wrap": "circular"}[mode]
        return F.pad(x, tuple(w for pair in reversed(widths) for w in pair), torch_mode)
    v = float(np.asarray(value).ravel()[0]) if value is not None and np.size(value) else node.attrs.get("value", 0.0)
    return F.Pad(widths, v)(x)


def _reduce(kind: str):
    def run(m: OnnxModule, node: _Node, x: Any, axes: Any = None) -> Any:
        ndim = len(np.shape(x.data if isinstance(x, Tensor) else x))
        ax = _axes(node, axes, ndim)
        keep = bool(node.attrs.get("keepdims", 1))
        if not ax and node.attrs.get("noop_with_empty_axes", 0):  # no axes (none given, or an empty list)
            return x
        axis = tuple(ax) if ax else None
        if _consts(x):
            return getattr(np, kind)(np.asarray(x), axis=axis, keepdims=keep)
        return getattr(x, kind)(axis=axis, keepdims=keep)
    return run


# ops whose later outputs this engine does not compute: a graph that reads them is refused at load time
_FIRST_OUTPUT_ONLY = {"MaxPool": "Indices"}

_OPS: dict[str, Any] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "GlobalAveragePool": _global_avg,
    "Relu": _unary(F.relu, lambda a: np.maximum(a, 0)),
    "Sigmoid": _unary(F.sigmoid, lambda a: 1 / (1 + np.exp(-a))),
    "Tanh": _unary(F.tanh, np.tanh),
    "Exp": _unary(F.exp, np.exp),
    "Log": _unary(F.log, np.log),
    "Neg": _unary(lambda t: -t, np.negative),
    "Sqrt": _unary(lambda t: t.sqrt(), np.sqrt),
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _binary(lambda a, b: a + b),
    "Sub": _binary(lambda a, b: a - b),
    "Mul": _binary(lambda a, b: a * b),
    "Div": _binary(_int_div),
    "Pow": _binary(lambda a, b: a ** b),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "LRN": _lrn,
    "Softmax": _softmax("softmax"),
    "LogSoftmax": _softmax("log_softmax"),
    "Pad": _pad,
    "ReduceSum": _reduce("sum"),
    "ReduceMax": _reduce("max"),
    "ReduceMean": _reduce("mean"),
    "Cast": _cast,
    "Identity": _identity,
    "Dropout": _identity,
    "Constant": _constant,
    "Shape": _shape,
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Concat": _concat,
    "Slice": _slice,
    "ConstantOfShape": _constant_of_shape,
    "Range": _range,
    "Expand": _expand,
    "Equal": _equal,
    "If": None,  # run by OnnxModule._run: the condition must be a constant
}

#: ONNX op types ``load`` can run.
SUPPORTED_OPS = tuple(sorted(_OPS))
