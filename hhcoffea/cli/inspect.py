"""``hhcoffea inspect FILE...``: which layout each input file has, or one line saying what is wrong."""

from __future__ import annotations

import argparse

from . import console as _console

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+")


def main(args) -> int:
    """One line per file: its layout, tree, events and truth, or what is wrong with it."""
    from ..events import InputError, inspect_file

    console = _console()
    status = 0
    for path in args.files:
        try:
            info = inspect_file(path)
            console.print(f"{info.path}: {info.layout} layout, tree '{info.tree}', {info.n_events:,} events, truth: {info.has_truth}")
        except InputError as err:
            console.print(f"[red]{err}[/red]")
            status = 1
    return status
