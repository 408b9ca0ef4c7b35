"""The ``digitsum`` command.

Each sub-command lives in a module of this package that defines ``add(subparsers)``; the module
parses its flags, calls one library function and prints for humans. ``main`` maps errors to exit
codes: a ``DigitsumError`` (an expected failure: bad input, data, checkpoint, a missing extra) is
one line on stderr and its exit code, 1, or 2 for bad usage (flags or their values); Ctrl-C is
130. Anything else is a bug and keeps its traceback. Under torchrun, an error that every rank
meets alike (a bad flag) is printed by rank 0 alone.
"""

from __future__ import annotations

import importlib
import sys

from .. import __version__
from ..errors import DigitsumError
from ..launch import env_rank
from .common import Parser, UsageError

# Sub-command modules, in the order --help lists them.
COMMANDS = ["train", "evaluate", "predict", "report", "serve", "export"]


def build_parser() -> Parser:
    """The full argument parser, with every sub-command registered."""
    parser = Parser(prog="digitsum", description="Train, evaluate and use a network that reads an MNIST "
                    "digit and a number 0-9 and outputs the digit and their sum.")
    parser.add_argument("--version", action="version", version=f"digitsum {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add(sub)
    return parser


def is_rank_zero() -> bool:
    """Whether this process prints errors every rank shares: rank 0 of torchrun, or the only process."""
    return env_rank() == 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``digitsum`` console script and ``python -m digitsum``."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        if is_rank_zero():
            print(error, file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("digitsum: interrupted", file=sys.stderr)
        return 130
    except DigitsumError as error:
        hint = f" (see digitsum {args.command} --help)" if error.exit_code == 2 else ""
        print(f"digitsum {args.command}: error: {error}{hint}", file=sys.stderr)
        return error.exit_code
