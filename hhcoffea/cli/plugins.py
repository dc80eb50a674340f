"""``hhcoffea plugins [--check]``: the registered pairers and scorers and where they come from."""

from __future__ import annotations

import argparse

from . import console as _console

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="load every plugin and report the ones that fail")


def main(args) -> int:
    """List the registered plugins from entry-point metadata, importing none; with ``--check``,
    load each (a broken one warns) and exit 1 if any fails."""
    from rich.table import Table

    from .. import registry

    console = _console()
    table = Table(title="hhcoffea plugins")
    for col in ("kind", "name", "target", "from package") + (("status",) if args.check else ()):
        table.add_column(col)
    if args.check:
        rows = [(info, "ok" if error is None else f"failed: {error}") for info, error in registry.check()]
    else:
        rows = [(info,) for kind in registry.GROUPS for _, info in sorted(registry.plugins(kind).items())]
    for info, *status in rows:
        table.add_row(info.kind, info.name, info.target, info.distribution, *status)
    console.print(table)
    failed = [info for info, *status in rows if status and status[0] != "ok"]
    for info in failed:
        console.print(f"[red]broken {info.kind} plugin[/red] {info.name} ({info.target}, from {info.distribution})")
    return 1 if failed else 0
