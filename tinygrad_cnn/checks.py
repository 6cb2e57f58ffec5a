"""The catalogue of gradient checks over every primitive (used by ``tinygrad-cnn gradcheck`` and tests).

Each case builds ``(fn, inputs)`` from a seeded generator: small float64 tensors, so the full
Jacobian comparison stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import functional as F
from . import random as _random
from .gradcheck import GradcheckError, gradcheck, gradgradcheck, max_error
from .tensor import Tensor

Builder = Callable[[np.random.Generator], tuple[Callable[..., Tensor], tuple[Any, ...]]]


@dataclass(frozen=True)
class Case:
    op: str
    config: str
    build: Builder
    second_order: bool = True


def _t(rng: np.random.Generator, *shape: int, positive: bool = False) -> Tensor:
    a = rng.standard_normal(shape)
    if positive:
        a = np.abs(a) + 0.5
    return Tensor(a, requires_grad=True)


def _seeded_dropout(x: Tensor) -> Tensor:
    _random.manual_seed(1234)  # the same mask for every evaluation of the check
    return F.dropout(x, 0.4)


def _cases() -> Iterator[Case]:
    for kh, kw, s, p, bias in [(3, 3, 1, 0, True), (3, 2, 2, 1, True), (1, 1, 1, 0, False), (5, 4, 3, 2, True)]:
        yield Case("conv2d", f"k=({kh},{kw}) s={s} p={p} bias={bias}",
                   lambda r, kh=kh, kw=kw, s=s, p=p, b=bias: (
                       lambda x, w, *bb: F.conv2d(x, w, bb[0] if bb else None, s, p),
                       (_t(r, 2, 3, 7, 6), _t(r, 4, 3, kh, kw), *((_t(r, 4),) if b else ()))))
    for s, p, d, g in [(1, 2, 2, 2), (2, 1, (1, 2), 4)]:
        yield Case("conv2d", f"s={s} p={p} dilation={d} groups={g}",
                   lambda r, s=s, p=p, d=d, g=g: (
                       lambda x, w, b: F.conv2d(x, w, b, s, p, d, g),
                       (_t(r, 2, 4, 7, 6), _t(r, 4, 4 // g, 3, 2), _t(r, 4))))
    for s, p, op_, bias in [(1, 0, 0, True), (2, 1, 1, True), ((2, 3), (0, 1), (1, 2), False)]:
        yield Case("conv_transpose2d", f"s={s} p={p} output_padding={op_} bias={bias}",
                   lambda r, s=s, p=p, op_=op_, b=bias: (
                       lambda x, w, *bb: F.conv_transpose2d(x, w, bb[0] if bb else None, s, p, op_),
                       (_t(r, 2, 4, 4, 3), _t(r, 4, 3, 3, 2), *((_t(r, 3),) if b else ()))))
    yield Case("conv_transpose2d", "s=2 p=1 output_padding=1 groups=2 dilation=2",
               lambda r: (lambda x, w: F.conv_transpose2d(x, w, None, 2, 1, 1, 2, 2), (_t(r, 2, 4, 3, 3),
                                                                                      _t(r, 4, 2, 3, 2))))
    for k, s, p in [(2, 2, 0), (3, 2, 1), (3, 1, 0), (2, 3, 1)]:
        yield Case("max_pool2d", f"k={k} s={s} p={p}",
                   lambda r, k=k, s=s, p=p: (lambda x: F.max_pool2d(x, k, s, p), (_t(r, 2, 2, 7, 6),)))
        yield Case("avg_pool2d", f"k={k} s={s} p={p}",
                   lambda r, k=k, s=s, p=p: (lambda x: F.avg_pool2d(x, k, s, p), (_t(r, 2, 2, 7, 6),)))
    yield Case("max_pool2d", "k=2 s=1 p=1 dilation=2",
               lambda r: (lambda x: F.max_pool2d(x, 2, 1, 1, 2), (_t(r, 2, 2, 7, 6),)))
    yield Case("avg_pool2d", "k=3 s=2 p=1 ceil divisor_override=4",
               lambda r: (lambda x: F.avg_pool2d(x, 3, 2, 1, True, False, 4), (_t(r, 2, 2, 7, 6),)))
    yield Case("adaptive_avg_pool2d", "(7,6)->(3,4)",
               lambda r: (lambda x: F.adaptive_avg_pool2d(x, (3, 4)), (_t(r, 2, 2, 7, 6),)))
    for mode in ("reflect", "replicate", "circular"):
        yield Case("pad", f"(2,1,1,3) {mode}",
                   lambda r, mode=mode: (lambda x: F.pad(x, (2, 1, 1, 3), mode), (_t(r, 2, 2, 4, 5),)))
    yield Case("im2col", "k=(3,2) s=2 p=1",
               lambda r: (lambda x: F.im2col(x, 3, 2, 2, 1), (_t(r, 2, 2, 5, 6),)))
    yield Case("col2im", "k=(3,2) s=2 p=1",
               lambda r: (lambda c: F.col2im(c, (2, 2, 5, 6), 3, 2, 2, 1), (_t(r, 2 * 3 * 4, 2 * 3 * 2),)))
    for name, fn in [("relu", F.relu), ("sigmoid", F.sigmoid), ("tanh", F.tanh), ("exp", F.exp)]:
        yield Case(name, "(3, 4)", lambda r, fn=fn: (fn, (_t(r, 3, 4),)))
    yield Case("log", "(3, 4) positive", lambda r: (F.log, (_t(r, 3, 4, positive=True),)))
    yield Case("sqrt", "(3, 4) positive", lambda r: (lambda x: x.sqrt(), (_t(r, 3, 4, positive=True),)))
    yield Case("matmul", "(3,4)@(4,5)", lambda r: (lambda a, b: a @ b, (_t(r, 3, 4), _t(r, 4, 5))))
    yield Case("matmul", "batched (2,3,4)@(4,2)", lambda r: (lambda a, b: a @ b, (_t(r, 2, 3, 4), _t(r, 4, 2))))
    yield Case("linear", "(3,4)->5 bias", lambda r: (F.linear, (_t(r, 3, 4), _t(r, 5, 4), _t(r, 5))))
    yield Case("softmax", "axis=-1", lambda r: (lambda x: F.softmax(x, -1), (_t(r, 3, 5),)))
    yield Case("softmax", "axis=0", lambda r: (lambda x: F.softmax(x, 0), (_t(r, 3, 5),)))
    yield Case("log_softmax", "axis=-1", lambda r: (lambda x: F.log_softmax(x, -1), (_t(r, 3, 5),)))
    yield Case("softmax_cross_entropy", "labels",
               lambda r: (lambda x: F.softmax_cross_entropy(x, np.array([0, 4, 2, 1])), (_t(r, 4, 5),)))
    yield Case("softmax_cross_entropy", "one-hot",
               lambda r: (lambda x: F.softmax_cross_entropy(x, np.eye(5)[[3, 1, 0, 4]]), (_t(r, 4, 5),)))
    yield Case("softmax_cross_entropy", "reduction='none'",
               lambda r: (lambda x: F.cross_entropy(x, np.array([0, 4, 2, 1]), reduction="none"), (_t(r, 4, 5),)))
    yield Case("nll_loss", "reduction='sum'",
               lambda r: (lambda x: F.nll_loss(F.log_softmax(x, dim=1), np.array([1, 0, 3]), reduction="sum"),
                          (_t(r, 3, 4),)))
    yield Case("std", "dim=1 unbiased", lambda r: (lambda x: x.std(dim=1), (_t(r, 3, 5),)))
    yield Case("var", "dim=(0,2) correction=0",
               lambda r: (lambda x: x.var(dim=(0, 2), correction=0), (_t(r, 2, 3, 4),)))
    yield Case("dropout", "p=0.4 fixed mask", lambda r: (_seeded_dropout, (_t(r, 3, 6),)))
    for size in (3, 4, 5):
        yield Case("local_response_norm", f"size={size}",
                   lambda r, size=size: (lambda x: F.local_response_norm(x, size, 0.1, 0.75, 2.0),
                                         (_t(r, 2, 6, 3, 2),)))
    yield Case("sum", "axis=(0,2) keepdims", lambda r: (lambda x: x.sum((0, 2), keepdims=True), (_t(r, 2, 3, 4),)))
    yield Case("mean", "axis=1", lambda r: (lambda x: x.mean(1), (_t(r, 2, 3, 4),)))
    yield Case("max", "axis=1", lambda r: (lambda x: x.max(1), (_t(r, 3, 5),)))
    yield Case("reshape", "(2,3,4)->(4,6)", lambda r: (lambda x: x.reshape(4, 6), (_t(r, 2, 3, 4),)))
    yield Case("transpose", "(2,0,1)", lambda r: (lambda x: x.transpose(2, 0, 1), (_t(r, 2, 3, 4),)))
    yield Case("flatten", "start_dim=1", lambda r: (lambda x: x.flatten(1), (_t(r, 2, 3, 4),)))
    yield Case("getitem", "fancy, repeated", lambda r: (lambda x: x[[0, 2, 0], 1:], (_t(r, 3, 4),)))
    yield Case("pad", "(1,2,0,1)", lambda r: (lambda x: F.pad(x, (1, 2, 0, 1)), (_t(r, 2, 3, 4),)))
    yield Case("add", "broadcast", lambda r: (lambda a, b: a + b, (_t(r, 3, 4), _t(r, 1, 4))))
    yield Case("sub", "broadcast", lambda r: (lambda a, b: a - b, (_t(r, 3, 1), _t(r, 4))))
    yield Case("mul", "broadcast", lambda r: (lambda a, b: a * b, (_t(r, 2, 3, 4), _t(r, 3, 1))))
    yield Case("div", "broadcast", lambda r: (lambda a, b: a / b, (_t(r, 3, 4), _t(r, 4, positive=True))))
    yield Case("pow", "x ** 3", lambda r: (lambda a: a ** 3, (_t(r, 3, 4),)))
    yield Case("pow", "x ** y", lambda r: (lambda a, b: a ** b, (_t(r, 3, 4, positive=True), _t(r, 3, 4))))


CASES: list[Case] = list(_cases())


@dataclass
class Result:
    case: Case
    max_abs_error: float
    first_order: bool
    second_order: bool | None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.first_order and self.second_order is not False


def run_case(case: Case, seed: int = 0, second_order: bool = True) -> Result:
    fn, inputs = case.build(np.random.default_rng(seed))
    err = max_error(fn, inputs)
    msg, first, second = "", True, None
    try:
        gradcheck(fn, inputs)
    except GradcheckError as exc:
        first, msg = False, str(exc)
    if second_order and case.second_order:
        try:
            second = gradgradcheck(fn, inputs)
        except GradcheckError as exc:
            second, msg = False, msg or str(exc)
    return Result(case, err, first, second, msg)


def run_all(ops: list[str] | None = None, seed: int = 0, second_order: bool = True) -> list[Result]:
    return [run_case(c, seed, second_order) for c in CASES if ops is None or c.op in ops]
