"""The named columns a scorer receives, built once for the processor and ``hhcoffea export
features`` alike (so a feature table holds exactly the processor's candidates).

PHYSICS.md "ML selections":

* :data:`RESONANT_FEATURES` (16): h1, h2 (pT, eta, phi, m) = 8; Delta R between the two jets of
  each candidate = 2; the b-tag booleans of the four candidate jets = 4; pT_hh and m_hh = 2.
* :data:`NONRESONANT_FEATURES` (21): those plus E_T^miss, phi(MET), N_e, N_mu and kappa_lambda.

h1 is the candidate with the higher scalar-sum jet pT (the processor orders them); within a
candidate, ``j1`` is the higher-pT jet. Besides the features, :func:`candidate_columns` gives
every candidate jet's ``pt eta phi mass btag`` (``h1_j1_pt`` ...), ``x_hh`` and
``delta_eta_hh``. ``kappa_lambda`` is the dataset's (NaN for a dataset without one); a
classifier evaluated as a selection takes its kappa_lambda hypothesis from its own options, so
that every sample passes the same selection (see :mod:`hhcoffea.plugins.dnn`).
"""

from __future__ import annotations

from collections.abc import Mapping

import awkward as ak
import numpy as np

from ..columnar.jets import gather
from ..columnar.selection import x_hh
from . import EventColumns

__all__ = [
    "CANDIDATE_JETS",
    "NONRESONANT_FEATURES",
    "RESONANT_FEATURES",
    "TABLE_COLUMNS",
    "candidate_columns",
    "event_columns",
    "event_columns_from_model",
    "feature_rows",
    "features_for",
    "lazy_event_columns",
]

CANDIDATE_JETS = ("h1_j1", "h1_j2", "h2_j1", "h2_j2")
RESONANT_FEATURES: tuple[str, ...] = (
    "h1_pt", "h1_eta", "h1_phi", "h1_mass",
    "h2_pt", "h2_eta", "h2_phi", "h2_mass",
    "h1_jet_dr", "h2_jet_dr",
    "h1_j1_btag", "h1_j2_btag", "h2_j1_btag", "h2_j2_btag",
    "pt_hh", "m_hh",
)
NONRESONANT_FEATURES: tuple[str, ...] = RESONANT_FEATURES + ("met", "met_phi", "n_electrons", "n_muons", "kappa_lambda")


def features_for(analysis: str) -> tuple[str, ...]:
    """The feature names of ``analysis`` (``resonant``: 16, ``nonresonant``: 21)."""
    if analysis == "resonant":
        return RESONANT_FEATURES
    if analysis == "nonresonant":
        return NONRESONANT_FEATURES
    raise ValueError(f"analysis must be 'resonant' or 'nonresonant', got {analysis!r}")


def candidate_columns(jets: ak.Array, higgs_jet_indices: np.ndarray, candidates: Mapping) -> dict[str, np.ndarray]:
    """Per-event columns of the Higgs candidates (h1 first): their kinematics, jet Delta R, the
    candidate jets' kinematics and b-tags (higher-pT jet first), pT_hh, m_hh, X_hh, |Delta eta_hh|.

    ``candidates`` is :func:`hhcoffea.columnar.selection.higgs_candidates` of ``jets`` and
    ``higgs_jet_indices`` (``(n, 2, 2)``, -1 for events the pairer rejected: their columns are NaN).
    """
    n = len(higgs_jet_indices)
    # selected jets are pT-ordered, so the lower index is the higher-pT jet
    ordered = np.sort(higgs_jet_indices, axis=2)
    ordered = np.where((higgs_jet_indices >= 0).all(axis=2, keepdims=True), ordered, -1)
    fields = ("pt", "eta", "phi", "mass", "btag")
    block = gather(jets, ordered.reshape(n, 4), fields=fields) if n else {f: np.zeros((0, 4)) for f in fields}
    out: dict[str, np.ndarray] = {}
    for h in range(2):
        for field in ("pt", "eta", "phi", "mass"):
            out[f"h{h + 1}_{field}"] = np.asarray(candidates[field][:, h], dtype=np.float64)
        out[f"h{h + 1}_jet_dr"] = np.asarray(candidates["jet_dr"][:, h], dtype=np.float64)
    for k, name in enumerate(CANDIDATE_JETS):
        for field in ("pt", "eta", "phi", "mass"):
            out[f"{name}_{field}"] = np.asarray(block[field][:, k], dtype=np.float64)
        # gather gives NaN for missing jets; a b-tag is 0/1 (NaN where the event was rejected)
        out[f"{name}_btag"] = np.asarray(block["btag"][:, k], dtype=np.float64)
    out["pt_hh"] = np.asarray(candidates["pt_hh"], dtype=np.float64)
    out["m_hh"] = np.asarray(candidates["m_hh"], dtype=np.float64)
    out["x_hh"] = np.asarray(x_hh(out["h1_mass"], out["h2_mass"]), dtype=np.float64)
    out["delta_eta_hh"] = np.abs(out["h1_eta"] - out["h2_eta"])
    return out


def event_columns(jets: ak.Array, higgs_jet_indices: np.ndarray, candidates: Mapping, *, met: np.ndarray,
                  met_phi: np.ndarray, n_electrons: np.ndarray, n_muons: np.ndarray,
                  metadata: Mapping | None = None) -> EventColumns:
    """Everything a scorer receives for ``n`` paired events (see the module docstring).

    ``higgs_jet_indices`` are the processor's ordered candidates (h1 first); ``met`` ...
    ``n_muons`` are ``(n,)`` arrays of the same events; ``metadata`` is the dataset's.
    """
    metadata = dict(metadata or {})
    n = len(higgs_jet_indices)
    columns = candidate_columns(jets, higgs_jet_indices, candidates)
    columns["met"] = np.asarray(met, dtype=np.float64)
    columns["met_phi"] = np.asarray(met_phi, dtype=np.float64)
    columns["n_electrons"] = np.asarray(n_electrons, dtype=np.float64)
    columns["n_muons"] = np.asarray(n_muons, dtype=np.float64)
    kappa = metadata.get("kappa_lambda")
    columns["kappa_lambda"] = np.full(n, np.nan if kappa is None else float(kappa))
    return EventColumns(columns, n_events=n, jets=jets, higgs_jet_indices=higgs_jet_indices, metadata=metadata)


def event_columns_from_model(model, tagged: np.ndarray, jets: ak.Array, higgs_jet_indices: np.ndarray,
                             candidates: Mapping, metadata: Mapping | None = None) -> EventColumns:
    """:func:`event_columns` of the events ``tagged`` of an :class:`~hhcoffea.events.EventModel`
    (MET and lepton counts read from it; the leptons' counts need only their offsets)."""
    met = ak.to_numpy(model.met_pt).astype(np.float64)[tagged]
    met_phi = ak.to_numpy(model.met_phi).astype(np.float64)[tagged]
    n_electrons = np.diff(model.offsets("electrons"))[tagged]
    n_muons = np.diff(model.offsets("muons"))[tagged]
    return event_columns(jets, higgs_jet_indices, candidates, met=met, met_phi=met_phi, n_electrons=n_electrons,
                         n_muons=n_muons, metadata=metadata)



def lazy_event_columns(model, tagged: np.ndarray, jets: ak.Array, higgs_jet_indices: np.ndarray,
                       candidates: Mapping):
    """A callable returning :func:`event_columns_from_model` of these events, built on the first
    call only (the processor asks for them only when a selection or an export needs them)."""
    cache: list[EventColumns] = []

    def columns() -> EventColumns:
        if not cache:
            cache.append(event_columns_from_model(model, tagged, jets, higgs_jet_indices, candidates, model.metadata))
        return cache[0]

    return columns


#: columns of a feature table besides the features (label and weight first)
TABLE_COLUMNS = ("label", "weight", "m_x", "file", "file_entry")


def feature_rows(columns: EventColumns, regions: Mapping[str, np.ndarray], weight: np.ndarray,
                 tagged: np.ndarray) -> dict[str, np.ndarray]:
    """One chunk's feature-table rows: the paired events (``regions["four_tag"]``) with every
    column of ``columns`` (features, candidate jets, X_hh, ...), ``label`` (1 for a signal process), ``weight``, ``file`` and ``file_entry`` (the
    event's entry in that file) and one boolean ``in_<region>`` column per region."""
    from .selections import SIGNAL_PROCESSES

    paired = np.asarray(regions["four_tag"], dtype=bool)
    meta = columns.metadata
    n = int(paired.sum())
    # every column a scorer sees: the 21 features, the candidate jets, X_hh, |Delta eta_hh|
    rows = {name: np.asarray(values[paired], dtype=np.float64) for name, values in columns.items()}
    rows["label"] = np.full(n, 1 if meta.get("process") in SIGNAL_PROCESSES else 0, dtype=np.int8)
    rows["weight"] = np.asarray(weight[paired], dtype=np.float64)
    rows["m_x"] = np.full(n, np.nan if meta.get("m_x") is None else float(meta["m_x"]))
    rows["file"] = np.full(n, str(meta.get("filename", "")), dtype=object)
    rows["file_entry"] = (int(meta.get("entrystart", 0)) + np.flatnonzero(tagged)[paired]).astype(np.int64)
    for region, mask in regions.items():
        rows[f"in_{region}"] = np.asarray(mask[paired], dtype=bool)
    return rows
