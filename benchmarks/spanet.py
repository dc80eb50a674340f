"""SPA-Net pairer throughput: features + ONNX Runtime inference + decoding, events/s per core.

Runs the ``spanet`` pairer (one intra-op thread) on four-tag events with up to 10 jets, for the
shipped model and for a model of the seeds' size (hidden_dim 64, 4 central and 3 branch encoder
layers, 10 jets; random weights: speed does not depend on them). Prints wall and CPU time per
stage. Events: the testing file of ``hhcoffea export spanet jobs/spanet_training.yaml`` when it
exists (``--data``), else a generated resonant sample.

``--sizes 64x2+1 48x3+2`` also times random-weight models of other sizes (hidden_dim x central +
branch encoder layers), ``--model FILE.onnx`` trained models (e.g. candidates for the shipped one).

    python benchmarks/spanet.py [--events 50000] [--batch-size 4096] [--sizes ...] [--model ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np

__all__ = ["main"]


def _jets_from_h5(path: Path, n_events: int) -> ak.Array:
    import h5py

    with h5py.File(path, "r") as f:
        mask = f["INPUTS/Source/MASK"][:]
        cols = {k: f[f"INPUTS/Source/{k}"][:] for k in ("pt", "eta", "sinphi", "cosphi", "mass", "btag")}
    reps = int(np.ceil(n_events / len(mask)))
    mask = np.tile(mask, (reps, 1))[:n_events]
    cols = {k: np.tile(v, (reps, 1))[:n_events] for k, v in cols.items()}
    counts = mask.sum(1)
    flat = {
        "pt": cols["pt"][mask], "eta": cols["eta"][mask], "phi": np.arctan2(cols["sinphi"], cols["cosphi"])[mask],
        "mass": cols["mass"][mask], "btag": cols["btag"][mask] > 0.5,
    }
    return ak.unflatten(ak.zip(flat), counts)


def _jets_generated(n_events: int, tmp: Path) -> ak.Array:
    from coffea.nanoevents import NanoEventsFactory

    from hhcoffea.columnar.selection import four_tag_flat
    from hhcoffea.emulation import generate
    from hhcoffea.events import AutoSchema, event_model

    path = tmp / "X500.root"
    generate("resonant", n_events * 16, path, seed=3, m_x=500.0)
    events = NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=AutoSchema, mode="eager").events()
    model = event_model(events, with_truth=False)
    tagged = four_tag_flat(model.jet_offsets, model.jet_column("pt"), model.jet_column("eta"), model.jet_column("btag"))
    take, counts = model.jet_entries(tagged, model.jet_column("pt") >= 20.0)
    return model.jets_at(take, counts)[:n_events]


def _parse_size(text: str) -> tuple[int, int, int]:
    """``"64x4+3"`` -> (hidden_dim 64, 4 central, 3 branch encoder layers)."""
    try:
        hidden, layers = text.lower().split("x")
        central, branch = layers.split("+")
        return int(hidden), int(central), int(branch)
    except ValueError:
        raise SystemExit(f"--sizes: {text!r} is not HIDDENxCENTRAL+BRANCH (e.g. 64x4+3)") from None


def _random_model(tmp: Path, event_yaml: Path, hidden: int = 64, central: int = 4, branch: int = 3) -> Path:
    """A random-weight model of the given size, exported at 10 jets (speed does not depend on weights)."""
    import torch

    from hhcoffea.ml.spanet.event_info import EventInfo
    from hhcoffea.ml.spanet.model import SpanetConfig, SpanetModel
    from hhcoffea.ml.spanet.onnx_export import export_onnx

    info = EventInfo.read(event_yaml) if event_yaml.exists() else None
    if info is None:
        from hhcoffea.ml.spanet.event_info import default_event_info

        info = default_event_info(2)
    torch.manual_seed(0)
    model = SpanetModel(SpanetConfig(hidden_dim=hidden, num_encoder_layers=central, num_branch_encoder_layers=branch,
                                     num_attention_heads=4))
    name = f"random_{hidden}x{central}+{branch}"
    torch.save({"model_state": model.state_dict(), "config": model.config.to_dict(), "event_info": info.to_yaml(),
                "epoch": 0, "options": {}, "history": []}, tmp / f"{name}.pt")
    return export_onnx(tmp / f"{name}.pt", tmp / f"{name}.onnx", n_jets=10)


def _time(label: str, pairer, jets, repeats: int) -> dict:
    from hhcoffea.ml.spanet.decoding import decode_assignments
    from hhcoffea.ml.spanet.features import jet_block, source_data

    pairer(jets[:100])  # session, jet count, warm caches
    best = None
    for _ in range(repeats):
        c0 = time.process_time()
        block = jet_block(jets, pairer.n_jets)
        data = source_data(block, pairer.event_info.jet_features)
        c1 = time.process_time()
        assignments, _ = pairer.predict(data, block["mask"])
        c2 = time.process_time()
        decode_assignments(assignments, block["mask"])
        w3, c3 = time.perf_counter(), time.process_time()
        pairer(jets)
        w4, c4 = time.perf_counter(), time.process_time()
        row = {"features": c1 - c0, "inference": c2 - c1, "decoding": c3 - c2, "pairer_cpu": c4 - c3,
               "pairer_wall": w4 - w3}
        best = row if best is None or row["pairer_cpu"] < best["pairer_cpu"] else best
    n = len(jets)
    print(f"{label:<40} {n / best['pairer_cpu']:>10,.0f} ev/s per core (CPU)  {n / best['pairer_wall']:>10,.0f} ev/s wall  "
          f"| features {1e6 * best['features'] / n:.2f} us, inference {1e6 * best['inference'] / n:.2f} us, "
          f"decoding {1e6 * best['decoding'] / n:.2f} us per event")
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--data", type=Path, default=root / "output" / "spanet_training" / "data" / "testing.h5")
    parser.add_argument("--sizes", nargs="*", default=[], help="more random-weight sizes, HIDDENxCENTRAL+BRANCH")
    parser.add_argument("--model", nargs="*", type=Path, default=[], help="more (trained) ONNX files to time")
    args = parser.parse_args(argv)
    sizes = [_parse_size(s) for s in args.sizes]

    from hhcoffea.plugins.spanet import SpanetPairer, default_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        jets = _jets_from_h5(args.data, args.events) if args.data.exists() else _jets_generated(args.events, tmp)
        counts = ak.to_numpy(ak.num(jets.pt))
        print(f"{len(jets):,} events, jets per event: mean {counts.mean():.2f}, max {counts.max()}; one thread; "
              f"batch {args.batch_size}")
        shipped = SpanetPairer(model=str(default_model()), batch_size=args.batch_size, threads=1)
        _time("shipped model (hh_default.onnx)", shipped, jets, args.repeats)
        seeds = SpanetPairer(model=str(_random_model(tmp, args.data.parent / "event.yaml")),
                             batch_size=args.batch_size, threads=1)
        _time("seeds' size (64, 4+3 layers, 10 jets)", seeds, jets, args.repeats)
        for hidden, central, branch in sizes:
            pairer = SpanetPairer(model=str(_random_model(tmp, args.data.parent / "event.yaml", hidden, central, branch)),
                                  batch_size=args.batch_size, threads=1)
            _time(f"random weights ({hidden}, {central}+{branch} layers)", pairer, jets, args.repeats)
        for path in args.model:
            if not path.exists():
                raise SystemExit(f"--model: {path} does not exist")
            _time(f"{path.parent.name}/{path.name}", SpanetPairer(model=str(path), batch_size=args.batch_size, threads=1), jets, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
