"""Draw docs/img/im2col.png: how im2col lays out a 1x4x4 input for a 2x2 kernel (stride 1).

    python docs/make_im2col_figure.py [OUT.png]

Left: the input with four of its nine 2x2 windows highlighted. Middle: ``col`` from
``F.im2col`` (one row per output pixel, one column per kernel element), the same rows
highlighted. Right: ``col @ W.reshape(1, -1).T`` is the convolution, reshaped to 3x3.
The numbers are computed by tinygrad_cnn, not typed in. Needs matplotlib (the ``viz`` extra).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor
from tinygrad_cnn.serialization import atomic_write

DEFAULT_OUT = Path(__file__).resolve().parent / "img" / "im2col.png"
# output pixel (row of col) -> colour; four of the nine windows, corners and one in the middle
HIGHLIGHT = {0: "#e41a1c", 2: "#377eb8", 4: "#4daf4a", 8: "#984ea3"}


def grid(ax, values: np.ndarray, title: str, row_colours: dict[int, str] | None = None, fmt: str = "{:g}") -> None:
    """A matrix as a table of numbered cells; ``row_colours`` tints whole rows."""
    h, w = values.shape
    ax.set_xlim(-0.05, w + 0.05)  # margins so the outer cell borders are not clipped
    ax.set_ylim(h + 0.05, -0.05)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    for i in range(h):
        for j in range(w):
            colour = (row_colours or {}).get(i, "white")
            ax.add_patch(_rect((j, i), 1, 1, colour, alpha=0.35 if colour != "white" else 1.0))
            ax.text(j + 0.5, i + 0.5, fmt.format(values[i, j]), ha="center", va="center", fontsize=9)


def _rect(xy, w, h, colour, alpha=1.0, fill=True, lw=0.8):
    from matplotlib.patches import Rectangle

    return Rectangle(xy, w, h, facecolor=colour if fill else "none", edgecolor="black" if fill else colour,
                     alpha=alpha if fill else 1.0, lw=lw)


def draw(out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    w = np.array([[[[1.0, 2.0], [0.0, -1.0]]]])  # 1 filter, 1 channel, 2x2
    col = F.im2col(Tensor(x), 2, 2).data  # (N*OH*OW, C*kh*kw) = (9, 4)
    y = F.conv2d(Tensor(x), Tensor(w)).data  # (1, 1, 3, 3)
    assert np.allclose((col @ w.reshape(1, -1).T).reshape(3, 3), y[0, 0])

    fig, axes = plt.subplots(1, 4, figsize=(11.5, 4.4), gridspec_kw={"width_ratios": [4, 4, 1.3, 3]})
    ax_in, ax_col, ax_w, ax_out = axes
    grid(ax_in, x[0, 0], "input x: (1, 1, 4, 4)")
    for k, (row, colour) in enumerate(HIGHLIGHT.items()):
        oh, ow = divmod(row, 3)
        inset = 0.06 + 0.05 * k  # nested outlines stay visible where windows overlap
        ax_in.add_patch(_rect((ow + inset, oh + inset), 2 - 2 * inset, 2 - 2 * inset, colour, fill=False, lw=2.2))
    grid(ax_col, col, "col = im2col(x, 2, 2): (9, 4)\nrow (oh, ow), column (c, i, j)", HIGHLIGHT)
    for i in range(9):
        ax_col.text(-0.25, i + 0.5, f"({i // 3},{i % 3})", ha="right", va="center", fontsize=8,
                    color=HIGHLIGHT.get(i, "grey"))
    grid(ax_w, w.reshape(1, -1).T, "W.reshape(1, -1).T\n(4, 1)")
    grid(ax_out, y[0, 0], "y = (col @ W.T) reshaped\n(1, 1, 3, 3)", {})
    for row, colour in HIGHLIGHT.items():
        ax_out.add_patch(_rect((row % 3 + 0.08, row // 3 + 0.08), 0.84, 0.84, colour, fill=False, lw=2.2))
    fig.suptitle("im2col: every receptive field becomes a row, so the convolution is one matrix product",
                 fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write(out, lambda f: f.write(buf.getvalue()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help="the .png to write")
    args = parser.parse_args(argv)
    print(f"wrote {draw(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
