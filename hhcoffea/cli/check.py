"""``hhcoffea check JOB.yaml``: validate a job file (schema, pairers with their options) without running it."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "main"]


def add_arguments(check: argparse.ArgumentParser) -> None:
    check.add_argument("job", nargs="*", help="job YAML file(s)")
    check.add_argument("--schema", action="store_true", help="print the job-file schema as a markdown table")


def main(args) -> int:
    """Validate each job: ``JOB: ok (...)`` or one line per problem; exit 2 if any job has one."""
    from ..workflow.job import JobError, load_job

    if args.schema:
        from ..workflow.schema import schema_markdown

        print(schema_markdown(), end="")
    failed = False
    for path in args.job:
        try:
            job = load_job(path)
        except JobError as err:
            failed = True
            for line in str(err).splitlines():
                print(line, file=sys.stderr)
            continue
        cfg = job.config
        executor = cfg["executor"]
        print(f"{path}: ok ({len(cfg['datasets'])} datasets, {len((cfg['samples'] or {}).get('generate') or {})} samples, "
              f"pairers {', '.join(cfg['pairers'])}, executor {executor['name']} x{executor['workers']}, "
              f"chunksize {executor['chunksize']:,})")
    if not args.job and not args.schema:
        print("hhcoffea check: give a job file (or --schema)", file=sys.stderr)
        return 2
    return 2 if failed else 0
