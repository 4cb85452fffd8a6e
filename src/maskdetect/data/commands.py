"""`maskdetect data ...` subcommands."""

from __future__ import annotations

import argparse


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="build manifests, split trees, caches; download data sets")
    data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
