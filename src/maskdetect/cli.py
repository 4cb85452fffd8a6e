"""The `maskdetect` command: thin argument parsing over the library.

Each command group lives beside the code it drives (e.g. `maskdetect.data.commands`) and adds its
subcommands through `add_commands(subparsers)`; this file only collects them and reports errors.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from maskdetect import __version__

# Modules that contribute subcommands, in the order they appear in --help.
COMMAND_MODULES: list[str] = [
    "maskdetect.data.commands",
    "maskdetect.synth.commands",
    "maskdetect.train.commands",
    "maskdetect.serve.commands",
    "maskdetect.detect.commands",
    "maskdetect.explain.commands",
    "maskdetect.demo.commands",
]


class UsageError(ValueError):
    """A bad command-line value; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskdetect",
        description="Face-mask detection (covered / incorrect / uncovered) and the pipeline behind it.",
    )
    parser.add_argument("--version", action="version", version=f"maskdetect {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose + 1, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError) as err:
        # Expected failures on user input: one clear line, no traceback.
        print(f"maskdetect: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("maskdetect: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
