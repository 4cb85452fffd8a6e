"""`maskdetect data ...`: each module below adds its own data subcommands."""

from __future__ import annotations

import argparse
import importlib

# Modules with an `add_data_commands(subparsers)` function.
DATA_COMMAND_MODULES: list[str] = [
    "maskdetect.data.io_commands",
    "maskdetect.data.build_commands",
]


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="build manifests, split trees, caches; download data sets")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    for name in DATA_COMMAND_MODULES:
        importlib.import_module(name).add_data_commands(data_sub)
