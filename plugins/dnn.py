"""The built-in ``dnn`` scorer: p_signal of the DNN classifier on the Higgs-candidate features
(PHYSICS.md "ML selections"; network and training in :mod:`hhcoffea.ml.dnn`).

Options:

* ``model``: ``nonresonant`` (default) or ``resonant`` -- the small models shipped with hhcoffea
  (trained on emulated samples with min-dR pairing, ``hhcoffea/ml/models``) -- or the path of
  a ``model.onnx`` (ONNX Runtime) or ``model.pt`` (torch) of ``hhcoffea train dnn``.
* ``kappa_lambda``: the kappa_lambda hypothesis given to a model that takes kappa_lambda as an
  input (default 1, the SM). Every event, signal or background, is scored at this one value, so
  that all samples pass the same selection and the three-sample kappa_lambda morphing of the
  selected templates stays exact.
* ``precision``: ``int8`` (default) or ``fp32``, for ONNX models. ``int8`` runs the hidden
  256 x 256 layers as integer products with each event's activations quantised on their own
  scale (:func:`hhcoffea.ml.dnn.int8_model`): 2.2-2.5 times the events per core of ``fp32``;
  on validation events its scores are within 0.012 of fp32's and the AUC within 1e-4 (on the
  test's generated samples within 0.02). The shipped models' int8 graphs ship next to them;
  another ``model.onnx`` is quantised when it loads (about 1 s of CPU per process, mostly
  importing ``onnx``). ``fp32`` runs the exported graph as it is. A ``model.pt`` always runs
  fp32 (torch).
* ``batch_size`` (4096) and ``threads`` (ONNX Runtime intra-op threads per worker, 1).

The model loads once per process (the shared session cache of :mod:`hhcoffea.ml.session`, or a
per-process torch module) and the scorer pickles to workers without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hhcoffea.scoring import EventColumns, Scorer

__all__ = ["DNNScorer", "PRECISIONS", "SHIPPED_INT8_MODELS", "SHIPPED_MODELS", "shipped_model"]

#: name -> file under hhcoffea/ml/models
SHIPPED_MODELS = {"nonresonant": "dnn_nonresonant.onnx", "resonant": "dnn_resonant.onnx"}
#: the same models' int8 graphs (hhcoffea.ml.dnn.int8_model of the file above, written ahead so that
#: a worker needs no onnx import, ~1 s of CPU; tests/test_dnn.py checks they are up to date)
SHIPPED_INT8_MODELS = {"nonresonant": "dnn_nonresonant_int8.onnx", "resonant": "dnn_resonant_int8.onnx"}
PRECISIONS = ("int8", "fp32")

_TORCH_MODELS: dict[tuple, object] = {}


def shipped_model(name: str, precision: str = "fp32") -> Path:
    """Path of a model shipped with hhcoffea (``nonresonant`` or ``resonant``; its fp32 or int8 graph)."""
    import hhcoffea.ml

    files = SHIPPED_INT8_MODELS if precision == "int8" else SHIPPED_MODELS
    return Path(hhcoffea.ml.__file__).parent / "models" / files[name]


class DNNScorer(Scorer):
    """p_signal of a DNN on the features its model names (16 resonant or 21 non-resonant)."""

    name = "dnn"

    def __init__(self, model: str = "nonresonant", kappa_lambda: float = 1.0, batch_size: int = 4096, threads: int = 1,
                 precision: str = "int8", **options):
        super().__init__(**options)
        path = shipped_model(model) if model in SHIPPED_MODELS else Path(os.path.expanduser(str(model)))
        if not path.is_file():
            raise FileNotFoundError(f"dnn scorer: model {str(path)!r} not found (a path to model.onnx / model.pt, "
                                    f"or one of {sorted(SHIPPED_MODELS)})")
        if path.suffix not in (".onnx", ".pt"):
            raise ValueError(f"dnn scorer: model {str(path)!r} must be a .onnx or .pt file")
        if precision not in PRECISIONS:
            raise ValueError(f"dnn scorer: precision must be one of {list(PRECISIONS)}, got {precision!r}")
        self.path = path.resolve()
        self.precision = str(precision)
        self.kappa_lambda = float(kappa_lambda)
        self.batch_size = int(batch_size)
        self.threads = int(threads)
        self._features: list[str] | None = None

    # --- the model, once per process ------------------------------------------------------------
    @property
    def features(self) -> list[str]:
        if self._features is None:
            if self.path.suffix == ".onnx":
                meta = self.session().get_modelmeta().custom_metadata_map
                if "hhcoffea.features" not in meta:
                    raise ValueError(f"{self.path}: no 'hhcoffea.features' metadata (not a model of hhcoffea train dnn)")
                self._features = meta["hhcoffea.features"].split(",")
            else:
                self._features = list(self._torch()["features"])
        return self._features

    def session(self):
        """This process's cached ONNX Runtime session (int8 or fp32, :mod:`hhcoffea.ml.session`)."""
        from hhcoffea.ml.session import get_session

        if self.precision == "int8":
            for name in SHIPPED_MODELS:
                if self.path == shipped_model(name).resolve():
                    return get_session(shipped_model(name, "int8"), self.threads)
            from hhcoffea.ml.dnn import int8_model_bytes

            return get_session(self.path, self.threads, transform=int8_model_bytes)
        return get_session(self.path, self.threads)

    def _torch(self) -> dict:
        key = (str(self.path), self.path.stat().st_mtime_ns, os.getpid())
        if key not in _TORCH_MODELS:
            import torch

            from hhcoffea.ml.dnn import _network

            saved = torch.load(self.path, map_location="cpu", weights_only=False)
            net = _network(len(saved["features"]), saved["hidden"], saved["layers"])
            net.load_state_dict(saved["state_dict"])
            net.eval()
            _TORCH_MODELS[key] = {**saved, "net": net}
        return _TORCH_MODELS[key]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_features"] = None  # read again from the model in the worker
        return state

    # --- scoring --------------------------------------------------------------------------------
    def inputs(self, events: EventColumns) -> np.ndarray:
        """The model's input matrix (float32): its features, kappa_lambda set to the hypothesis."""
        names = self.features
        columns = dict(events)
        if "kappa_lambda" in names:
            columns["kappa_lambda"] = np.full(events.n_events, self.kappa_lambda)
        return EventColumns(columns, n_events=events.n_events).matrix(names)

    def score(self, events: EventColumns) -> np.ndarray:
        x = self.inputs(events)
        out = np.empty(len(x), dtype=np.float64)
        if self.path.suffix == ".onnx":
            session = self.session()
            for i in range(0, len(x), self.batch_size):
                out[i:i + self.batch_size] = session.run(["score"], {"features": x[i:i + self.batch_size]})[0]
        else:
            import torch

            saved = self._torch()
            z = ((x - saved["mean"]) / saved["std"]).astype(np.float32)
            with torch.no_grad():
                for i in range(0, len(z), self.batch_size):
                    out[i:i + self.batch_size] = torch.sigmoid(saved["net"](torch.from_numpy(z[i:i + self.batch_size]))).squeeze(1).numpy()
        return np.clip(out, 0.0, 1.0)
