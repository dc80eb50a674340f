"""One ONNX Runtime session per model file, thread count and process, shared by every pairer and
scorer that uses that model.

:func:`get_session` creates an ``onnxruntime.InferenceSession`` on first use and caches it for
the process; :class:`OnnxModel` is what a plugin holds: a path and a thread count, with the
session looked up lazily. An ``OnnxModel`` pickles without its session (``__getstate__``), so a
plugin ships to coffea's worker processes as a few bytes and each worker opens the model once.

The cache key is the file's resolved path, its size and modification time (a retrained model at
the same path is reloaded), the thread count, the optional ``transform`` (a module-level function
``path -> model bytes`` applied before loading, e.g. :func:`hhcoffea.ml.dnn.int8_model_bytes`;
keyed by its qualified name), and the process id (a forked child never uses its parent's
session, whose thread pools do not survive a fork).

Every session runs on the CPU execution provider with ``threads`` intra-op threads, one
inter-op thread, sequential execution and all graph optimisations (constant folding, Gemm/Relu
fusion), the settings that give the most events per core for batched MLP inference.

>>> import pickle
>>> model = OnnxModel("model.onnx", threads=1)
>>> pickle.loads(pickle.dumps(model)).path.name
'model.onnx'
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["OnnxModel", "clear_sessions", "get_session", "model_metadata"]

_SESSIONS: dict[tuple, Any] = {}
_LOCK = threading.Lock()


Transform = Callable[[Path], bytes]


def _transform_name(transform: Transform | None) -> str:
    return "" if transform is None else f"{transform.__module__}.{transform.__qualname__}"


def _key(path: Path, threads: int, transform: Transform | None = None) -> tuple:
    try:
        stat = path.stat()
    except OSError as err:
        raise FileNotFoundError(f"{path}: cannot read ONNX model ({err.strerror})") from None
    return (str(path), stat.st_size, stat.st_mtime_ns, int(threads), _transform_name(transform), os.getpid())


def get_session(path: str | os.PathLike, threads: int = 1, transform: Transform | None = None):
    """The cached ``onnxruntime.InferenceSession`` of ``path`` with ``threads`` intra-op threads
    (created on first use in this process; CPU execution provider). With ``transform``, the
    session runs ``transform(path)`` (model bytes) instead of the file itself."""
    path = Path(path).expanduser().resolve()
    key = _key(path, threads, transform)
    session = _SESSIONS.get(key)
    if session is None:
        with _LOCK:
            session = _SESSIONS.get(key)
            if session is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = int(threads)
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                options.log_severity_level = 3  # warnings about unused initialisers are noise here
                model = str(path) if transform is None else transform(path)
                try:
                    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
                except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf types
                    raise ValueError(f"{path}: not a loadable ONNX model ({type(err).__name__}: {err})") from None
                # a file rewritten in place gets a new key; drop its old sessions
                for old in [k for k in _SESSIONS if k[0] == key[0] and k[1:3] != key[1:3]]:
                    del _SESSIONS[old]
                _SESSIONS[key] = session
    return session


def model_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The model's ``metadata_props`` (custom string metadata written at export), via the cached session."""
    return dict(get_session(path).get_modelmeta().custom_metadata_map)


def clear_sessions() -> None:
    """Forget every cached session of this process."""
    with _LOCK:
        _SESSIONS.clear()


class OnnxModel:
    """A model file used through the process-wide session cache; pickles without the session.

    ``run(inputs)`` is ``session.run(None, inputs)`` as a dict ``{output name: array}``.
    ``transform`` (optional) as in :func:`get_session`; it pickles by reference.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1, transform: Transform | None = None) -> None:
        self.path = Path(path).expanduser()
        self.threads = int(threads)
        self.transform = transform

    @property
    def session(self):
        return get_session(self.path, self.threads, self.transform)

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def run(self, inputs: dict, outputs: list[str] | None = None) -> dict:
        names = outputs or self.output_names
        return dict(zip(names, self.session.run(names, inputs)))

    def __getstate__(self) -> dict:
        # the session stays in the process that made it; a worker opens its own on first use
        return {"path": str(self.path), "threads": self.threads, "transform": self.transform}

    def __setstate__(self, state: dict) -> None:
        self.path = Path(state["path"])
        self.threads = int(state["threads"])
        self.transform = state.get("transform")

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, threads={self.threads})"
