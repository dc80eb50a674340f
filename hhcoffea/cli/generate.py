"""``hhcoffea generate``: its options and its command.

Light on purpose: building the ``hhcoffea`` parser imports this module (numpy only); the detector,
awkward and uproot are imported when the command runs.
"""

from __future__ import annotations

import argparse

from .. import constants as C
from ..emulation.processes import PROCESSES

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hhcoffea generate``."""
    parser.add_argument("process", choices=PROCESSES, help="which process to emulate")
    parser.add_argument("-n", "--n-events", type=int, required=True, help="number of events")
    parser.add_argument("-o", "--output", required=True, help="output ROOT file (metadata in <output>.json)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--m-x", type=float, default=None, help="resonant: X mass in GeV")
    parser.add_argument("--kappa-lambda", type=float, default=None, help="nonresonant: kappa_lambda (default 1)")
    parser.add_argument(
        "--working-point",
        choices=tuple(C.BTAG_WORKING_POINTS),
        default=None,
        help=f"b-tagging working point (default {C.RESONANT_WORKING_POINT}; {C.NONRESONANT_WORKING_POINT} for nonresonant)",
    )
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="events generated and written per chunk (default 200000; 500 with --shower)")
    parser.add_argument("--shower", choices=("pythia",), default=None,
                        help="shower the hard process with Pythia 8 + FastJet instead of the fast emulation "
                             "(~80 events/s per worker; needs pip install 'hhcoffea[shower]')")
    parser.add_argument("--workers", type=int, default=1, help="processes generating chunks in parallel (same events)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    """``hhcoffea generate``: write one sample and print its metadata."""
    from ..emulation.writer import generate  # numpy, awkward, uproot: only when a sample is written

    meta = generate(
        args.process,
        args.n_events,
        args.output,
        seed=args.seed,
        m_x=args.m_x,
        kappa_lambda=args.kappa_lambda,
        working_point=args.working_point,
        chunk_size=args.chunk_size,
        shower=args.shower,
        workers=args.workers,
        progress=not args.no_progress,
    )
    print(
        f"wrote {meta['n_generated']:,} {meta['process']} events to {meta['file']} "
        f"(xsec x BR = {meta['xsec_fb']:.6g} fb, working point {meta['working_point']}"
        f"{', showered with Pythia 8' if meta.get('shower') else ''}; metadata in {meta['file']}.json)"
    )
    return 0
