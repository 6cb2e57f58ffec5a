"""``tinygrad-cnn gradcheck``: numerical gradient checks over every primitive, as a table."""

from __future__ import annotations

import argparse

from ._common import UsageError, non_negative_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--op", action="append", help="check only this op (repeatable), e.g. --op conv2d")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random float64 inputs")
    p.add_argument("--first-order", action="store_true", help="skip the second-order (gradgradcheck) pass")
    p.add_argument("--list", action="store_true", help="list the checks and exit")


def run(args: argparse.Namespace) -> int:
    from ..checks import CASES, run_case
    from ..progress import progress

    cases = [c for c in CASES if not args.op or c.op in args.op]
    if not cases:
        ops = ", ".join(sorted({c.op for c in CASES}))
        raise UsageError(f"no check matches --op {' --op '.join(args.op)}; ops: {ops}")
    if args.list:
        for c in cases:
            print(f"{c.op:24s} {c.config}")
        return 0
    results = [run_case(c, args.seed, not args.first_order) for c in progress(cases, desc="gradcheck", unit="op")]
    print(f"{'op':24s} {'config':28s} {'max abs error':>14s}  {'1st':4s} {'2nd':4s}")
    print("-" * 80)
    for r in results:
        second = "-" if r.second_order is None else ("ok" if r.second_order else "FAIL")
        print(f"{r.case.op:24s} {r.case.config:28s} {r.max_abs_error:14.3e}  {'ok' if r.first_order else 'FAIL':4s} "
              f"{second:4s}")
    failed = [r for r in results if not r.ok]
    print("-" * 80)
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed (float64 inputs, central differences, eps=1e-6)")
    for r in failed:
        print(f"\n{r.case.op} [{r.case.config}]: {r.message}")
    return 1 if failed else 0


COMMANDS = {"gradcheck": ("check every primitive's gradients numerically (float64)", add_arguments, run)}
