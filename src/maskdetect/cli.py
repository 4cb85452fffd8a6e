"""The `maskdetect` command: thin argument parsing over the library.

Each command group lives beside the code it drives (e.g. `maskdetect.data.commands`) and adds its
subcommands through `add_commands(subparsers)`; this file only collects them and reports errors.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from maskdetect import __version__

# Modules that contribute subcommands, in the order they appear in --help.
COMMAND_MODULES: list[str] = [
    "maskdetect.data.commands",
    "maskdetect.synth.commands",
    "maskdetect.train.commands",
    "maskdetect.serve.commands",
    "maskdetect.detect.commands",
    "maskdetect.evaluation.commands",
    "maskdetect.bundler.commands",
    "maskdetect.explain.commands",
    "maskdetect.demo.commands",
]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command, collected from `COMMAND_MODULES`.

    >>> build_parser().parse_args(["data", "download", "--list"]).list
    True
    """
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
    """Run the `maskdetect` command line; every expected failure ends as one `maskdetect: error:` line.

    Args:
        argv: the arguments (default: `sys.argv[1:]`).

    Returns:
        The exit status: 0 on success, 1 when a download, file or disk failed, 2 on a usage error,
        130 when interrupted.

    >>> main(["data", "download", "--list"]) == 0  # doctest: +ELLIPSIS
    maskedface-net
    ...
    True
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose + 1, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from maskdetect.data.download import DownloadCancelled, DownloadError

    new_folders = [path for path in _output_paths(args) if not path.exists()]
    try:
        status = int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError) as err:
        # Bad user input (ImageError, CheckpointError, bad YAML and archives are ValueErrors): one line.
        return _error(err, 2, new_folders)
    except (DownloadError, OSError) as err:
        # The network, the disk or a file failed us: still the user's to fix, not a bug to trace.
        return _error(err, 1, new_folders)
    except (KeyboardInterrupt, DownloadCancelled):
        print("maskdetect: interrupted", file=sys.stderr)
        return 130
    if status:  # it failed without raising (e.g. every download failed): the same clean-up
        for folder in new_folders:
            remove_empty_folders(folder)
    return status


# Arguments that name what a command writes: a run that fails must not leave them as empty folders.
OUTPUT_ARGUMENTS: tuple[str, ...] = ("out", "output", "dest", "jsonl")


def _output_paths(args: argparse.Namespace) -> list[Path]:
    paths = [getattr(args, name, None) for name in OUTPUT_ARGUMENTS]
    return [Path(path) for path in paths if isinstance(path, (str, Path))]


def remove_empty_folders(root: Path) -> None:
    """Remove `root` and the folders under it that hold no file: what a failed run left behind.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()) / "out"
    >>> (root / "a" / "b").mkdir(parents=True)
    >>> remove_empty_folders(root); root.exists()
    False
    """
    if not root.is_dir() or root.is_symlink():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    if not any(root.iterdir()):
        root.rmdir()


def _error(err: BaseException, code: int, new_folders: Sequence[Path] = ()) -> int:
    """Print `err` as the one line `maskdetect: error: ...` on stderr; return the exit status `code`.

    Output folders that did not exist before the run are removed again where it left them empty.
    """
    for folder in new_folders:
        remove_empty_folders(folder)
    message = " ".join(str(err).split()) or type(err).__name__
    print(f"maskdetect: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
