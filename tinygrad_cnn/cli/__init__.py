"""The ``tinygrad-cnn`` command line (also ``python -m tinygrad_cnn``).

Each module in this package defines ``COMMANDS = {name: (help, add_arguments, run)}``;
``main`` collects them. Modules import their heavy parts inside ``run`` so ``--help`` is quick.

Errors that are the user's (a missing or unfitting checkpoint, a data set that is not there, a shape a
model cannot take: ``_common.USER_ERRORS`` and ``_common.CLIError``) end as one line,
``tinygrad-cnn CMD: error: MESSAGE`` on stderr, exit status 1; a bad argument combination
(``_common.UsageError``) goes through ``parser.error`` (usage, exit status 2). Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that contribute subcommands, in the order they appear in --help.
_MODULES = ("train", "gradcheck", "viz", "export", "bench")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="tinygrad-cnn",
        description="Train, evaluate, draw, export and gradient-check small CNNs built on tinygrad_cnn.",
    )
    parser.add_argument("--version", action="version", version=f"tinygrad-cnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod_name in _MODULES:
        try:
            mod = importlib.import_module(f".{mod_name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{mod_name}":
                continue  # that command group is not part of this build
            raise
        for name, (help_text, add_arguments, run) in mod.COMMANDS.items():
            p = sub.add_parser(name, help=help_text, description=help_text)
            add_arguments(p)
            p.set_defaults(_run=run, _parser=p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from ._common import USER_ERRORS, CLIError, UsageError

    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:
        args._parser.error(str(exc))  # exits 2
    except (CLIError, *USER_ERRORS) as exc:
        print(f"{args._parser.prog}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
