"""SPA-Net pairing (PHYSICS.md "Pairings", SPA-Net): an ONNX model with SPANet's export interface
assigns jets to the Higgs candidates.

The pairer sees all jets with pT >= 20 GeV (``jets = "all"``; the 10 leading go in, PHYSICS.md
"Objects and preselection"). It builds ``Source_data`` in the order and with the log(x+1)
transforms of the event file, pads or truncates to the jet count the model was exported with,
runs the model in batches through one cached ONNX Runtime session per process, and decodes the
best non-overlapping assignment greedily as SPANet does (:mod:`hhcoffea.ml.spanet.decoding`).
Models exported by the official ``spanet`` package work (give their event file), and so do ours
(``hhcoffea export onnx``), which carry the event file as metadata.

Options: ``model`` (ONNX file; default: the HH model shipped with hhcoffea), ``event_info``
(SPANet event YAML; needed for official exports), ``batch_size`` (events per inference call),
``detection_threshold`` (reject events whose best detection probability is below it; 0 accepts
all), ``threads`` (ONNX Runtime intra-op threads per process), ``n_jets`` (jets the model takes;
default: read from the model), ``globals`` (constant values of the model's GLOBAL features,
``{name: value}``, e.g. ``{kappa_lambda: 1.0}``).
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np

from hhcoffea import constants as c
from hhcoffea.pairing import Pairer, PairingResult, unknown_options_error

__all__ = ["SpanetPairer", "default_model"]

_OPTIONS = ("model", "event_info", "batch_size", "detection_threshold", "threads", "n_jets", "globals")


def default_model() -> Path:
    """The HH model shipped with hhcoffea (``hhcoffea train spanet`` on emulated samples)."""
    from hhcoffea.ml import spanet as spanet_pkg

    return Path(spanet_pkg.__file__).resolve().parent / "models" / "hh_default.onnx"


class SpanetPairer(Pairer):
    """SPA-Net jet assignment from an ONNX model (see the module docstring for the options)."""

    name = "spanet"
    n_higgs = 2
    jets = "all"  # every jet with pT >= 20 GeV, not only the four-tag object selection

    def __init__(self, **options) -> None:
        unknown = set(options) - set(_OPTIONS)
        if unknown:
            raise unknown_options_error(self.name, unknown, _OPTIONS)
        self.model = str(Path(options.get("model") or default_model()).expanduser().resolve())
        ei = options.get("event_info")
        self.event_info_path = str(Path(ei).expanduser().resolve()) if ei else None
        self.batch_size = int(options.get("batch_size", 4096))
        self.detection_threshold = float(options.get("detection_threshold", 0.0))
        self.threads = int(options.get("threads", 1))
        self.globals = dict(options.get("globals") or {})
        self._n_jets_option = options.get("n_jets")
        if self.batch_size < 1 or self.threads < 1:
            raise ValueError(f"pairer 'spanet': batch_size and threads must be >= 1, got {self.batch_size}, {self.threads}")
        if not Path(self.model).is_file():
            raise ValueError(f"pairer 'spanet': model file {self.model} not found (option 'model')")
        self._info = None
        self._n_jets = None
        info = self.event_info  # read now: a bad model or event file fails when the job loads
        self.n_higgs = info.n_particles
        missing = [f.name for f in info.global_features if f.name not in self.globals]
        if missing:
            raise ValueError(f"pairer 'spanet': model {self.model} has GLOBAL inputs {missing}; give them with option 'globals'")

    @property
    def session(self):
        """This process's cached session: the pairer holds only paths, so it pickles to workers
        without one, and each worker opens the model once (hhcoffea.ml.session)."""
        from hhcoffea.ml.session import get_session

        return get_session(self.model, self.threads)

    @property
    def event_info(self):
        if self._info is None:
            from hhcoffea.ml.spanet.event_info import EventInfo
            from hhcoffea.ml.spanet.onnx_export import METADATA_EVENT_INFO

            if self.event_info_path:
                info = EventInfo.read(self.event_info_path)
            else:
                text = dict(self.session.get_modelmeta().custom_metadata_map).get(METADATA_EVENT_INFO)
                if text is None:
                    raise ValueError(f"pairer 'spanet': {self.model} carries no event file; give option 'event_info' "
                                     "(the SPANet event YAML it was trained with)")
                info = EventInfo.from_yaml(text, f"{self.model} metadata")
            self._info = info.check_supported()
        return self._info

    @property
    def n_jets(self) -> int:
        """Jets per event the graph takes: fixed input dim, our metadata, or probed."""
        if self._n_jets is None:
            self._n_jets = int(self._n_jets_option) if self._n_jets_option else self._graph_jet_count()
        return self._n_jets

    @property
    def dynamic_jets(self) -> bool:
        """Whether the model may run at each event's own jet count (ours say so in metadata)."""
        from hhcoffea.ml.spanet.onnx_export import METADATA_DYNAMIC_JETS

        return dict(self.session.get_modelmeta().custom_metadata_map).get(METADATA_DYNAMIC_JETS) == "1"

    def _graph_jet_count(self) -> int:
        from hhcoffea.ml.spanet.onnx_export import METADATA_N_JETS

        info, session = self.event_info, self.session
        dim = session.get_inputs()[0].shape[1] if len(session.get_inputs()[0].shape) > 1 else None
        if isinstance(dim, int) and dim > 0:
            return dim
        meta = dict(session.get_modelmeta().custom_metadata_map)
        if METADATA_N_JETS in meta:
            return int(meta[METADATA_N_JETS])
        # official exports declare the axis dynamic but run only at the traced count: probe
        for n in (c.SPANET_MAX_JETS, *range(2, 33)):
            try:
                session.run(None, self._feed(np.zeros((1, n, len(info.jet_features)), np.float32), np.ones((1, n), bool)))
            except Exception:  # onnxruntime's shape errors have their own types
                continue
            return n
        raise ValueError(f"pairer 'spanet': {self.model} runs with no jet count from 2 to 32; give option 'n_jets'")

    def _feed(self, data: np.ndarray, mask: np.ndarray) -> dict:
        info = self.event_info
        feed = {f"{info.jet_input}_data": data, f"{info.jet_input}_mask": mask}
        if info.global_input:
            g = np.array([[float(self.globals[f.name]) for f in info.global_features]], np.float32)
            for f, col in zip(info.global_features, range(g.shape[1])):
                if f.log:
                    g[:, col] = np.log(np.maximum(g[:, col], 0.0) + 1.0)
            feed[f"{info.global_input}_data"] = np.repeat(g[:, None, :], len(data), axis=0)
            feed[f"{info.global_input}_mask"] = np.ones((len(data), 1), bool)
        names = {i.name for i in self.session.get_inputs()}
        return {k: v for k, v in feed.items() if k in names}

    def predict(self, data: np.ndarray, mask: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Assignment scores per particle ``[(n, N, N)]`` and detection probabilities ``(n, H)``."""
        info, session = self.event_info, self.session
        outputs = [o.name for o in session.get_outputs()]

        def name_of(particle, kind):
            for candidate in (f"{particle}_{kind}_probability", f"{particle}_{kind}_log_probability"):
                if candidate in outputs:
                    return candidate
            raise ValueError(f"pairer 'spanet': {self.model} has no output {particle}_{kind}_probability "
                             f"(outputs: {outputs})")

        assign_names = [name_of(p, "assignment") for p in info.particle_names]
        detect_names = [name_of(p, "detection") for p in info.particle_names]
        wanted = assign_names + detect_names
        parts = [[] for _ in wanted]
        for start in range(0, len(data), self.batch_size):
            sl = slice(start, start + self.batch_size)
            for store, value in zip(parts, session.run(wanted, self._feed(data[sl], mask[sl]))):
                store.append(value)
        arrays = [np.concatenate(p) for p in parts]
        h = len(assign_names)
        detection = np.stack([np.exp(a) if n.endswith("log_probability") else a
                              for a, n in zip(arrays[h:], detect_names)], axis=1)
        return arrays[:h], detection

    def pair(self, jets: ak.Array) -> PairingResult:
        from hhcoffea.ml.spanet.decoding import decode_assignments
        from hhcoffea.ml.spanet.features import jet_block, source_data

        n = len(jets)
        info = self.event_info
        block = jet_block(jets, self.n_jets)
        data = source_data(block, info.jet_features, log_transform=True)
        mask = block["mask"]
        if self.dynamic_jets:  # each jet multiplicity at its own N: attention costs N^2
            counts = mask.sum(axis=1)
            slots = np.full((n, info.n_particles, 2), -1, dtype=np.int64)
            detection = np.zeros((n, info.n_particles), dtype=np.float32)
            for k in np.unique(counts):  # at most n_jets groups, each batched
                rows = np.flatnonzero(counts == k)
                width = max(int(k), 1)
                assignments, detection[rows] = self.predict(data[rows, :width], mask[rows, :width])
                slots[rows] = decode_assignments(assignments, mask[rows, :width])[0]
        else:
            assignments, detection = self.predict(data, mask)
            slots, _ = decode_assignments(assignments, mask)  # (n, H, 2) positions among the N
        found = (slots >= 0).all(axis=(1, 2))
        indices = np.take_along_axis(block["index"][:, None, :].repeat(slots.shape[1], 1), np.maximum(slots, 0), axis=2)
        accepted = found & (detection.max(axis=1, initial=0.0) >= self.detection_threshold)
        indices = np.where(accepted[:, None, None], indices, -1).astype(np.int64)
        return PairingResult(indices, accepted)
