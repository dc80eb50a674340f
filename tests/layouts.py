"""Test helpers: one set of toy events written in both input layouts (FORMATS.md).

The NanoAOD-like layout is written to a real ROOT file with uproot; uproot cannot write Delphes'
split object branches, so the Delphes layout is a preloaded source carrying Delphes' branch names.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import uproot


def toy_events(n: int = 2000, seed: int = 7) -> dict:
    """Layout-neutral toy events: a Higgs pair (two b quarks each) plus random jets."""
    rng = np.random.default_rng(seed)
    n_jets = rng.integers(2, 9, n)
    total = int(n_jets.sum())
    pt = rng.exponential(60.0, total) + 20.0
    # pT-order within events, as detectors write them
    offsets = np.concatenate([[0], np.cumsum(n_jets)])
    event_of = np.repeat(np.arange(n), n_jets)
    order = np.lexsort((-pt, event_of))
    jets = {
        "pt": pt[order].astype(np.float32),
        "eta": rng.normal(0, 1.6, total).astype(np.float32),
        "phi": rng.uniform(-np.pi, np.pi, total).astype(np.float32),
        "mass": rng.uniform(4, 20, total).astype(np.float32),
        "btag": (rng.random(total) < 0.75).astype(np.uint8),
        "flavour": rng.choice(np.array([5, 4, 0], dtype=np.int32), total, p=[0.7, 0.1, 0.2]),
    }
    n_gen = np.full(n, 6)
    gen = {
        "pt": rng.exponential(60, 6 * n).astype(np.float32) + 20,
        "eta": rng.normal(0, 1.6, 6 * n).astype(np.float32),
        "phi": rng.uniform(-np.pi, np.pi, 6 * n).astype(np.float32),
        "mass": np.tile(np.array([125, 125, 4.7, 4.7, 4.7, 4.7], dtype=np.float32), n),
        "pdg_id": np.tile(np.array([25, 25, 5, -5, 5, -5], dtype=np.int32), n),
        "status": np.tile(np.array([22, 22, 23, 23, 23, 23], dtype=np.int32), n),
        "mother": np.tile(np.array([-1, -1, 0, 0, 1, 1], dtype=np.int32), n),
    }
    # put the b quarks on top of the leading jets so truth matching has something to find
    lead = offsets[:-1]
    has4 = n_jets >= 4
    for q in range(4):
        rows = np.arange(n)[has4] * 6 + 2 + q
        gen["eta"][rows] = jets["eta"][lead[has4] + q]
        gen["phi"][rows] = jets["phi"][lead[has4] + q]
    n_el = rng.poisson(0.2, n)
    n_mu = rng.poisson(0.2, n)

    def leptons(k):
        m = int(k.sum())
        return {
            "pt": rng.exponential(30, m).astype(np.float32) + 10,
            "eta": rng.normal(0, 1.2, m).astype(np.float32),
            "phi": rng.uniform(-np.pi, np.pi, m).astype(np.float32),
            "charge": rng.choice(np.array([-1, 1], dtype=np.int32), m),
        }

    return {
        "n": n,
        "jets": (n_jets, jets),
        "genpart": (n_gen, gen),
        "electrons": (n_el, leptons(n_el)),
        "muons": (n_mu, leptons(n_mu)),
        "met_pt": rng.exponential(30, n).astype(np.float32),
        "met_phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32),
        "weight": rng.uniform(0.5, 1.5, n).astype(np.float32),
    }


NANO_NAMES = {
    "jets": ("Jet", {"pt": "pt", "eta": "eta", "phi": "phi", "mass": "mass", "btag": "btag", "flavour": "hadronFlavour"}),
    "genpart": ("GenPart", {"pt": "pt", "eta": "eta", "phi": "phi", "mass": "mass", "pdg_id": "pdgId",
                            "status": "status", "mother": "genPartIdxMother"}),
    "electrons": ("Electron", {"pt": "pt", "eta": "eta", "phi": "phi", "charge": "charge"}),
    "muons": ("Muon", {"pt": "pt", "eta": "eta", "phi": "phi", "charge": "charge"}),
}
DELPHES_NAMES = {
    "jets": ("Jet", {"pt": "PT", "eta": "Eta", "phi": "Phi", "mass": "Mass", "btag": "BTag", "flavour": "Flavor"}),
    "genpart": ("Particle", {"pt": "PT", "eta": "Eta", "phi": "Phi", "mass": "Mass", "pdg_id": "PID",
                             "status": "Status", "mother": "M1"}),
    "electrons": ("Electron", {"pt": "PT", "eta": "Eta", "phi": "Phi", "charge": "Charge"}),
    "muons": ("Muon", {"pt": "PT", "eta": "Eta", "phi": "Phi", "charge": "Charge"}),
}


def nanoaod_tree(ev: dict, drop=()) -> dict:
    branches = {}
    for key, (coll, names) in NANO_NAMES.items():
        counts, fields = ev[key]
        record = {names[f]: ak.unflatten(v, counts) for f, v in fields.items() if f"{coll}_{names[f]}" not in drop}
        branches[coll] = ak.zip(record)
    branches.update({"MET_pt": ev["met_pt"], "MET_phi": ev["met_phi"], "genWeight": ev["weight"]})
    return {k: v for k, v in branches.items() if k not in drop}


def write_nanoaod(path, ev: dict, drop=()) -> str:
    """A NanoAOD-like ``Events`` TTree (``nJet``, ``Jet_pt``, ...); ``drop`` removes branches."""
    with uproot.recreate(path) as f:
        f.mktree("Events", nanoaod_tree(ev, drop))  # mktree: a TTree, not an RNTuple
    return str(path)


def delphes_arrays(ev: dict) -> dict:
    """The same events with Delphes' branch names (``Jet_size``, ``Jet/Jet.PT``, ...)."""
    out = {}
    n = ev["n"]
    for key, (coll, names) in DELPHES_NAMES.items():
        counts, fields = ev[key]
        out[f"{coll}_size"] = counts
        for f, v in fields.items():
            value = v
            if f == "btag":  # bit flags: bit 0 = the card's working point, bit 1 a looser one
                value = v.astype(np.uint32) | np.uint32(2)
            if f == "flavour":
                value = np.where(v == 5, -5, v)  # Delphes keeps a sign; the model takes |flavour|
            out[f"{coll}/{coll}.{names[f]}"] = ak.unflatten(value, counts)
    ones = np.ones(n, dtype=np.int64)
    out["MissingET_size"] = ones
    out["MissingET/MissingET.MET"] = ak.unflatten(ev["met_pt"], ones)
    out["MissingET/MissingET.Phi"] = ak.unflatten(ev["met_phi"], ones)
    out["MissingET/MissingET.Eta"] = ak.unflatten(np.zeros(n, np.float32), ones)
    out["Event_size"] = ones
    out["Event/Event.Weight"] = ak.unflatten(ev["weight"], ones)
    return out
