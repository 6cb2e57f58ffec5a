"""``summary(model, input_shape)``: a torchinfo-style table of layers, output shapes, parameters and MACs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..conv import dilated_span
from ..nn import Module
from ..tensor import Tensor, no_grad
from .graph import eval_mode


@dataclass(frozen=True)
class LayerSummary:
    """One call of a layer: ``name`` (dotted) and ``type``, its output shape, the parameters it
    owns (counted at its first call only) and its multiply-accumulates per example."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class ModelSummary:
    """What :func:`summary` measured; ``str()`` is the table."""

    model: str
    input_shape: tuple[int, ...]
    rows: tuple[LayerSummary, ...]
    total_params: int
    trainable_params: int
    total_macs: int
    param_bytes: int

    def __str__(self) -> str:
        table = [(f"{r.name} ({r.type})", str(r.output_shape), f"{r.params:,}", f"{r.macs:,}") for r in self.rows]
        head = ("Layer (type)", "Output shape", "Params", "MACs")
        widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(head)]
        line = "-" * (sum(widths) + 3 * (len(widths) - 1))

        def fmt(row: Sequence[str]) -> str:
            return "   ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

        out = [f"{self.model} summary, input {self.input_shape}", line, fmt(head), line]
        out += [fmt(row) for row in table]
        out += [
            line,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.total_params - self.trainable_params:,}",
            f"Total MACs per example: {self.total_macs:,} ({self.total_macs / 1e6:.2f} M)",
            f"Params size (MB): {self.param_bytes / 1e6:.2f}",
        ]
        return "\n".join(out)


def layer_macs(module: Module, output: Any) -> int:
    """Multiply-accumulates of one call, per example (bias adds not counted, as torchinfo).

    Conv2d: ``OC * OH * OW * C/groups * kh * kw``; ConvTranspose2d: ``C * H * W * OC/groups * kh * kw``
    (every input pixel times its group's kernels; ``H, W`` from the output size); Linear:
    ``in * out`` per output row; others 0.
    """
    kind = type(module).__name__
    shape = tuple(output.shape) if isinstance(output, Tensor) else ()
    if kind == "Conv2d" and len(shape) == 4:
        kh, kw = module.kernel_size
        return int(np.prod(shape[1:])) * (module.in_channels // module.groups) * kh * kw
    if kind == "ConvTranspose2d" and len(shape) == 4:
        kh, kw = module.kernel_size
        span = dilated_span(module.kernel_size, module.dilation)
        h, w = ((o + 2 * p - k - e) // s + 1 for o, k, s, p, e in
                zip(shape[2:], span, module.stride, module.padding, module.output_padding))
        return module.in_channels * h * w * (module.out_channels // module.groups) * kh * kw
    if kind == "Linear" and len(shape) >= 1:
        rows = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
        return rows * module.in_features * module.out_features
    return 0


def summary(model: Module, input_shape: Sequence[int]) -> ModelSummary:
    """Run one forward pass (eval mode, no graph) on zeros of ``input_shape`` and tabulate each layer call.

    ``input_shape``: ``(C, H, W)`` (a batch of one is added) or ``(N, C, H, W)``. A row is one
    call of a leaf module (or of a module that owns parameters directly), in execution order;
    a module called again shows its parameters only once, so the params column sums to
    ``model.num_parameters()`` when every parameter is used. MACs are per single example.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if any(s < 1 for s in shape):
        raise ValueError(f"summary: input_shape must be positive, got {tuple(input_shape)}")
    dtype = next((p.dtype for p in model.parameters()), np.dtype(np.float32))
    names = {id(m): n for n, m in model.named_modules()}
    rows: list[LayerSummary] = []
    counted: set[int] = set()

    def hook(module: Module, args: tuple, output: Any) -> None:
        first = id(module) not in counted
        counted.add(id(module))
        own = sum(p.size for p in module._parameters.values() if p is not None) if first else 0
        out = output[0] if isinstance(output, (tuple, list)) and output else output
        rows.append(LayerSummary(names.get(id(module), "?"), type(module).__name__,
                                 tuple(out.shape) if isinstance(out, Tensor) else (), own, layer_macs(module, out)))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if not any(True for _ in m.children()) or any(p is not None for p in m._parameters.values())]
    try:
        with eval_mode(model), no_grad():
            model(Tensor(np.zeros(shape, dtype=dtype)))
    finally:
        for h in handles:
            h.remove()
    params = list(model.parameters())
    return ModelSummary(
        model=type(model).__name__, input_shape=shape, rows=tuple(rows),
        total_params=sum(p.size for p in params),
        trainable_params=sum(p.size for p in params if p.requires_grad),
        total_macs=sum(r.macs for r in rows),
        param_bytes=sum(p.data.nbytes for p in params),
    )
