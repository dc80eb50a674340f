"""Start-up time of the ``hhcoffea`` command: ``hhcoffea --help`` beside a bare interpreter.

    python benchmarks/cli_startup.py [--repeat 7]

Target (issue "Layout for what comes next"): ``hhcoffea --help`` well under a second. Building the
parser imports only the light subcommand modules of ``hhcoffea.cli``; a subcommand's libraries
(coffea, awkward, pyhf, torch) load when it runs. Also timed: ``import hhcoffea`` and a
subcommand's ``--help`` that needs a library at parse time (``generate``: its process list).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time


def best_of(cmd: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    python = [sys.executable]
    rows = [
        ("python -c pass", python + ["-c", "pass"]),
        ("python -c 'import hhcoffea'", python + ["-c", "import hhcoffea"]),
        ("python -m hhcoffea.cli --help", python + ["-m", "hhcoffea.cli", "--help"]),
        ("python -m hhcoffea.cli generate --help", python + ["-m", "hhcoffea.cli", "generate", "--help"]),
    ]
    script = shutil.which("hhcoffea")
    if script:
        rows.append(("hhcoffea --help (console script)", [script, "--help"]))
    base = None
    print(f"{'command':45s} {'best of ' + str(args.repeat) + ' (s)':>16s} {'over bare python':>17s}")
    for label, cmd in rows:
        t = best_of(cmd, args.repeat)
        base = base or t
        print(f"{label:45s} {t:16.3f} {t / base:16.1f}x")


if __name__ == "__main__":
    main()
