"""The ``digitsum`` command.

Each sub-command lives in a module of this package that defines ``add(subparsers)``;
the module parses its flags, calls one library function and prints for humans.
``main`` maps errors to exit codes: 1 for bad input or data, 2 for bad usage (flags or their values),
130 for an interrupt.
"""

from __future__ import annotations

import importlib
import sys

from .. import __version__
from ..config import ConfigError
from .common import Parser, UsageError, expected_errors

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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``digitsum`` console script and ``python -m digitsum``."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("digitsum: interrupted", file=sys.stderr)
        return 130
    except ConfigError as error:  # a flag's value out of range: bad usage
        print(f"digitsum {args.command}: error: {error} (see digitsum {args.command} --help)", file=sys.stderr)
        return 2
    except expected_errors() as error:
        print(f"digitsum {args.command}: error: {error}", file=sys.stderr)
        return 1
