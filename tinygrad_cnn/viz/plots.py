"""The book's pictures: first-layer filters as a grid (figure 7-24) and per-layer feature maps.

matplotlib (the ``viz`` extra) is imported inside the functions, with the Agg canvas and no
pyplot state, so this works headless and ``import tinygrad_cnn.viz`` stays light. Every PNG
has a predictable pixel size: each grid cell is ``cell_size`` inches at ``dpi`` (100 px by
default) and a title adds a band of ``TITLE_INCHES``; files are written atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import as_numpy
from ..nn import Module
from ..serialization import atomic_write
from ..tensor import Tensor, set_grad_enabled

__all__ = ["TITLE_INCHES", "plot_filters", "plot_feature_maps"]

TITLE_INCHES = 0.5  # height of the title band


def _figure(width_in: float, height_in: float, dpi: int):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "matplotlib":
            raise  # matplotlib is there but broken (a missing dependency of its own): keep that error
        # name= says which package is missing (training's "skipped ... (matplotlib is not installed)" notes read it)
        raise ModuleNotFoundError("plotting needs matplotlib: pip install 'tinygrad-cnn[viz]'", name="matplotlib") \
            from None
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _minmax(a: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] (a constant image becomes 0.5)."""
    a = a.astype(np.float64)
    lo, hi = a.min(), a.max()
    return np.full_like(a, 0.5) if hi - lo < 1e-12 else (a - lo) / (hi - lo)


def _cell(fig, row: int, col: int, top_in: float, cell_in: float, pad: float = 0.06):
    """An axes filling grid cell (row, col) of a figure whose grid starts ``top_in`` below the top."""
    w_in, h_in = fig.get_size_inches()
    left = (col * cell_in + pad * cell_in) / w_in
    bottom = (h_in - top_in - (row + 1) * cell_in + pad * cell_in) / h_in
    ax = fig.add_axes((left, bottom, cell_in * (1 - 2 * pad) / w_in, cell_in * (1 - 2 * pad) / h_in))
    ax.set_axis_off()
    return ax


PICTURE_FORMATS = ("png", "svg", "pdf")


def _save_png(fig, path: str | os.PathLike, dpi: int) -> Path:
    """Save ``fig`` atomically in the format ``path``'s suffix names: png (also without a suffix), svg or pdf."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".") or "png"
    if fmt not in PICTURE_FORMATS:
        raise ValueError(f"cannot write a .{fmt} picture ({path}); use a "
                         + ", ".join(f".{f}" for f in PICTURE_FORMATS) + " file name")
    return atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi))


def plot_filters(conv_weight: Any, path: str | os.PathLike, title: str | None = None, ncols: int | None = None,
                 cell_size: float = 1.0, dpi: int = 100) -> Path:
    """Draw conv filters ``(OC, C, kh, kw)`` as a grid of images, one per output channel.

    Each filter shows its first input channel in grey (or its RGB colour when C == 3),
    min-max scaled on its own, dark = large weight as in the book's figure 7-24 (before and
    after training). ``ncols`` defaults to 8. The PNG is ``ncols * cell_size * dpi`` pixels
    wide and ``(nrows * cell_size + TITLE_INCHES if title) * dpi`` high. Returns the path.
    """
    w = as_numpy(conv_weight.data if isinstance(conv_weight, Tensor) else np.asarray(conv_weight))
    if w.ndim != 4 or 0 in w.shape:
        raise ValueError(f"plot_filters: expected a conv weight (out_channels, in_channels, kh, kw), "
                         f"got shape {tuple(w.shape)}")
    oc, c = w.shape[:2]
    ncols = min(8, oc) if ncols is None else int(ncols)
    if ncols < 1:
        raise ValueError(f"plot_filters: ncols must be >= 1, got {ncols}")
    ncols = min(ncols, max(oc, 1))  # no empty columns
    nrows = math.ceil(oc / ncols)
    top = TITLE_INCHES if title else 0.0
    fig = _figure(ncols * cell_size, nrows * cell_size + top, dpi)
    if title:
        fig.suptitle(title, y=1 - 0.5 * TITLE_INCHES / (nrows * cell_size + top), va="center", fontsize=11)
    for i in range(oc):
        ax = _cell(fig, i // ncols, i % ncols, top, cell_size)
        if c == 3:
            ax.imshow(_minmax(w[i].transpose(1, 2, 0)), interpolation="nearest")
        else:
            ax.imshow(_minmax(w[i, 0]), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    return _save_png(fig, path, dpi)


class _ConvOutputs:
    """Copies every conv2d output of a forward pass, in order, before anything reuses its array.

    Installed in ``tensor._profiler``, the op-observer slot the profiler uses: each op call goes
    through ``forward`` (ops called inside an op run directly while ``busy``).
    """

    def __init__(self) -> None:
        self.busy = False
        self.maps: list[tuple[Any, np.ndarray]] = []

    def forward(self, fn: Any, inputs: tuple) -> Any:
        self.busy = True
        try:
            y = fn(*inputs)
        finally:
            self.busy = False
        if fn.name == "Conv2d":  # a copy: an in-place ReLU after the conv overwrites y
            self.maps.append((fn, as_numpy(y.data)[0].copy()))
        return y


def _conv_activations(model: Module, x: Tensor) -> list[tuple[str, np.ndarray]]:
    """(name, output (OC, OH, OW)) of every Conv2d op of one forward pass, in forward order.

    Ops are observed as they run, so functional ``F.conv2d`` calls count as well as layers.
    """
    from .. import tensor as _tensor
    from .graph import eval_mode

    names = {id(m): n for n, m in model.named_modules()}
    rec, prev = _ConvOutputs(), _tensor._profiler
    _tensor._profiler = rec
    try:
        with eval_mode(model), set_grad_enabled(True):
            model(Tensor(x.data, requires_grad=True))
    finally:
        _tensor._profiler = prev
    maps = []
    for fn, act in rec.maps:
        name = names.get(id(fn.modules[-1]), "") if fn.modules else ""
        maps.append((name or f"conv2d #{len(maps) + 1}", act))
    return maps


def plot_feature_maps(model: Module, x: Any, path: str | os.PathLike, max_channels: int = 16,
                      title: str | None = None, cell_size: float = 0.8, dpi: int = 100) -> Path:
    """Draw the activations of each conv layer of ``model`` for one image ``x``: one row per layer.

    ``x``: ``(C, H, W)`` or ``(1, C, H, W)``. A row starts with the layer's name and output
    shape, then its first ``max_channels`` channel maps (conv outputs, before the activation),
    each min-max scaled. The PNG is ``(1 + ncols) * cell_size * dpi`` wide, ncols the most
    channels shown in a row, and ``(rows * cell_size + TITLE_INCHES if title) * dpi`` high.
    """
    arr = as_numpy(x.data if isinstance(x, Tensor) else np.asarray(x))
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[0] != 1:
        raise ValueError(f"plot_feature_maps: expected one image (C, H, W) or (1, C, H, W), got shape {arr.shape}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float32)
    maps = _conv_activations(model, Tensor(arr))
    if not maps:
        raise ValueError(f"plot_feature_maps: {type(model).__name__} ran no conv2d on an input of shape {arr.shape}")
    ncols = min(max_channels, max(m.shape[0] for _, m in maps))
    top = TITLE_INCHES if title else 0.0
    fig = _figure((1 + ncols) * cell_size, len(maps) * cell_size + top, dpi)
    if title:
        fig.suptitle(title, y=1 - 0.5 * TITLE_INCHES / (len(maps) * cell_size + top), va="center", fontsize=11)
    for r, (name, fmap) in enumerate(maps):
        ax = _cell(fig, r, 0, top, cell_size)
        oc, oh, ow = fmap.shape
        shown = min(oc, max_channels)
        ax.text(0.5, 0.5, f"{name}\n{oc}@{oh}x{ow}" + (f"\n(first {shown})" if shown < oc else ""),
                ha="center", va="center", fontsize=7, transform=ax.transAxes)
        for ch in range(shown):
            ax = _cell(fig, r, 1 + ch, top, cell_size)
            ax.imshow(_minmax(fmap[ch]), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    return _save_png(fig, path, dpi)
