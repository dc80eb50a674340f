"""The DNN event classifier (PHYSICS.md "ML selections"): network, training, ONNX export.

Network: dense layers with ReLU, ``layers`` hidden layers of ``hidden`` nodes, one sigmoid
output p_signal (the seeds' two-class softmax with categorical cross-entropy is the same model:
a softmax over two logits is a sigmoid of their difference). The seeds' shape and learning rate
for min-dR pairing (seed 003, table VII) are the defaults: resonant 5 x 256, lr 2.27e-4;
non-resonant 3 x 256, lr 4.95e-3; batch 512; Adam.

Training (:func:`train_dnn`, ``hhcoffea train dnn OPTIONS.yaml``) reads the tables of
``hhcoffea export features``; inputs are standardised with the training set's mean and
standard deviation, folded into the first layer at export, so the ONNX model takes raw
features. The loss is class-weighted binary cross-entropy: background events carry their
physics weights (cross section x luminosity), every signal dataset the same total (the seeds
train on equal numbers of events per kappa_lambda or m_H), and both classes the same total.
Early stopping on the validation loss (``patience`` epochs); the best epoch is kept. The
validation AUC and accuracy (weighted like the loss) go into ``metrics.json`` next to the
model (``model.onnx``, ``model.pt``), with the int8 inference's validation AUC and its largest
and 99th-percentile |score - fp32 score| (``int8``).

The ONNX graph is written directly with ``onnx.helper`` (Gemm + Relu, Sigmoid, Reshape): an MLP
needs nothing more, and this avoids torch's deprecated TorchScript exporter and the onnxscript
dependency of the new one. Input ``features`` float32 ``[batch, n]``, output ``score`` float32
``[batch]``; metadata ``hhcoffea.features`` (comma-separated names), ``hhcoffea.analysis``.

Int8 inference (:func:`int8_model`, the ``dnn`` scorer's default ``precision: int8``): the
hidden-to-hidden layers (256 x 256, nearly all of the multiply-adds) run as integer matrix
products (ONNX ``MatMulInteger``; AVX512-VNNI / AVX2 kernels of ONNX Runtime), about 2-2.5 times
the events per core of fp32; the first layer (raw features) and the output layer stay fp32.
Weights: int8 per output node, symmetric, in [-63, 63] (7 bits, so that no x86 u8 x s8 kernel can
saturate its 16-bit pair sums: the integer products are exact on every CPU), each node's scale
chosen for the least rounding error. Activations: each event's ReLU outputs are quantised to
uint8 with that event's own scale (its largest activation / 255), so an event's score never
depends on the other events in its batch, and no calibration set is needed. On the shipped
models' validation events the scores differ from fp32 by at most 0.012 (99% of events by less
than 0.007) and the AUC by less than 1e-4 (``benchmarks/scoring.py``; ``tests/test_dnn.py``
asserts the agreement on generated samples).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "INT8_WEIGHT_MAX",
    "SEED_SHAPES",
    "TRAINING_DEFAULTS",
    "dnn_layers",
    "int8_model",
    "int8_model_bytes",
    "load_training_options",
    "read_training_data",
    "train_dnn",
    "weighted_accuracy",
    "weighted_auc",
    "write_onnx",
]

#: seed 003 table VII (min-dR pairing): hidden nodes, hidden layers, learning rate, batch size
SEED_SHAPES = {
    "resonant": {"hidden": 256, "layers": 5, "learning_rate": 2.27e-4, "batch_size": 512},
    "nonresonant": {"hidden": 256, "layers": 3, "learning_rate": 4.95e-3, "batch_size": 512},
}
TRAINING_DEFAULTS = {
    "analysis": "nonresonant",
    "features": None,            # export folder (features.json) of hhcoffea export features
    "signal": None,              # signal datasets (default: the analysis' signal process)
    "backgrounds": None,         # background datasets (default: every label-0 dataset)
    "output": "dnn",             # folder for model.onnx, model.pt, metrics.json
    "epochs": 50,
    "patience": 5,
    "validation_fraction": 0.25,
    "seed": 0,
    "threads": 2,
    "weight_decay": 0.0,
    "progress": True,
    "max_events_per_dataset": None,  # cap (random) events per dataset, e.g. for quick tests
}


def load_training_options(path, overrides: Mapping | None = None) -> dict:
    """Options YAML (:data:`TRAINING_DEFAULTS` keys plus ``hidden``, ``layers``,
    ``learning_rate``, ``batch_size``); paths relative to the file."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise ValueError(f"{path}: cannot read training options ({err.strerror})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: training options are a mapping of keys")
    known = set(TRAINING_DEFAULTS) | set(SEED_SHAPES["resonant"])
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{path}: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
    options = {**TRAINING_DEFAULTS, **raw, **(overrides or {})}
    if options["analysis"] not in SEED_SHAPES:
        raise ValueError(f"{path}: analysis must be 'resonant' or 'nonresonant', got {options['analysis']!r}")
    options = {**SEED_SHAPES[options["analysis"]], **options}
    if options["features"] is None:
        raise ValueError(f"{path}: 'features' (the folder of hhcoffea export features) is missing")
    for key in ("features", "output"):
        p = Path(options[key]).expanduser()
        options[key] = str(p if p.is_absolute() else (path.parent / p).resolve())
    return options


def read_training_data(options: Mapping) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], dict]:
    """``(X, y, w, feature names, per-dataset counts)`` with the class weighting of the module docstring."""
    from ..scoring.export import read_feature_index, read_feature_table
    from ..scoring.features import features_for

    names = list(features_for(options["analysis"]))
    folder = Path(options["features"])
    index = read_feature_index(folder)
    datasets = index["datasets"]
    sig_process = options["analysis"]
    signal = options["signal"] or [d for d, e in datasets.items() if e["metadata"].get("process") == sig_process]
    backgrounds = options["backgrounds"] or [d for d, e in datasets.items() if e["label"] == 0]
    for d in signal + backgrounds:
        if d not in datasets:
            raise ValueError(f"{folder}: dataset {d!r} is not in features.json (has {sorted(datasets)})")
    if not signal or not backgrounds:
        raise ValueError(f"{folder}: need signal and background datasets, got {signal} and {backgrounds}")
    rng = np.random.default_rng(int(options["seed"]))
    xs, ys, ws, counts = [], [], [], {}
    cap = options.get("max_events_per_dataset")
    for label, group in ((1, signal), (0, backgrounds)):
        for d in group:
            table = read_feature_table(folder / datasets[d]["file"])
            x = np.stack([np.asarray(table[n], dtype=np.float64) for n in names], axis=1)
            w = np.abs(np.asarray(table["weight"], dtype=np.float64))
            keep = np.all(np.isfinite(x), axis=1)
            x, w = x[keep], w[keep]
            if cap and len(x) > cap:
                pick = rng.choice(len(x), int(cap), replace=False)
                x, w = x[pick], w[pick] * len(keep) / cap
            if label == 1:  # every signal dataset the same total (the seeds: equal events per point)
                w = np.full(len(x), 1.0 / max(len(x), 1))
            xs.append(x)
            ws.append(w)
            ys.append(np.full(len(x), label, dtype=np.float64))
            counts[d] = int(len(x))
    X, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
    for label in (0, 1):  # both classes the same total; mean weight 1 overall
        m = y == label
        w[m] *= (0.5 * len(w)) / w[m].sum()
    return X.astype(np.float32), y.astype(np.float32), w.astype(np.float32), names, counts


def weighted_auc(scores, labels, weights=None) -> float:
    """Area under the ROC curve with event weights (ties count half)."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels) > 0.5
    weights = np.ones(len(scores)) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(scores, kind="mergesort")
    s, lab, w = scores[order], labels[order], weights[order]
    # group equal scores: background below counts fully, at the same score half
    uniq, start = np.unique(s, return_index=True)
    bkg = np.add.reduceat(np.where(~lab, w, 0.0), start)
    sig = np.add.reduceat(np.where(lab, w, 0.0), start)
    below = np.cumsum(bkg) - bkg
    total = sig.sum() * bkg.sum()
    return float(np.sum(sig * (below + 0.5 * bkg)) / total) if total > 0 else float("nan")


def weighted_accuracy(scores, labels, weights=None, threshold: float = 0.5) -> float:
    labels = np.asarray(labels) > 0.5
    weights = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    right = (np.asarray(scores) > threshold) == labels
    return float(np.sum(weights * right) / np.sum(weights))


def _network(n_inputs: int, hidden: int, layers: int):
    import torch

    mods, width = [], n_inputs
    for _ in range(int(layers)):
        mods += [torch.nn.Linear(width, int(hidden)), torch.nn.ReLU()]
        width = int(hidden)
    mods.append(torch.nn.Linear(width, 1))
    return torch.nn.Sequential(*mods)


def train_dnn(options: Mapping, console=None) -> dict:
    """Train, early-stop, write ``model.onnx``, ``model.pt`` and ``metrics.json``; return the metrics."""
    import torch

    torch.manual_seed(int(options["seed"]))
    torch.set_num_threads(int(options["threads"]))
    X, y, w, names, counts = read_training_data(options)
    rng = np.random.default_rng(int(options["seed"]))
    perm = rng.permutation(len(X))
    n_val = max(1, int(round(float(options["validation_fraction"]) * len(X))))
    val, tr = perm[:n_val], perm[n_val:]
    mean = X[tr].astype(np.float64).mean(axis=0)
    std = X[tr].astype(np.float64).std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant feature (b-tags of four-tag events) stays as is
    Z = ((X - mean) / std).astype(np.float32)
    xt, yt, wt = (torch.from_numpy(a[tr]) for a in (Z, y, w))
    xv, yv, wv = (torch.from_numpy(a[val]) for a in (Z, y, w))
    net = _network(len(names), options["hidden"], options["layers"])
    opt = torch.optim.Adam(net.parameters(), lr=float(options["learning_rate"]), weight_decay=float(options["weight_decay"]))
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    batch = int(options["batch_size"])
    best, best_state, best_epoch, stale, history = math.inf, None, -1, 0, []
    t0 = time.perf_counter()
    progress = None
    if options.get("progress", True):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(TextColumn("training dnn"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                            TimeRemainingColumn(), console=console, transient=False)
        task = progress.add_task("epochs", total=int(options["epochs"]), info="")
        progress.start()
    try:
        for epoch in range(int(options["epochs"])):
            net.train()
            order = torch.randperm(len(xt))
            total = 0.0
            for i in range(0, len(xt), batch):
                idx = order[i:i + batch]
                opt.zero_grad()
                loss = (loss_fn(net(xt[idx]).squeeze(1), yt[idx]) * wt[idx]).sum() / wt[idx].sum()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            net.eval()
            with torch.no_grad():
                val_loss = float((loss_fn(net(xv).squeeze(1), yv) * wv).sum() / wv.sum())
            history.append({"epoch": epoch, "train_loss": total / len(xt), "validation_loss": val_loss})
            if val_loss < best - 1e-6:
                best, best_epoch, stale = val_loss, epoch, 0
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
            if progress is not None:
                progress.update(task, advance=1, info=f"validation loss {val_loss:.4f} (best {best:.4f} @ {best_epoch})")
            if stale >= int(options["patience"]):
                break
    finally:
        if progress is not None:
            progress.stop()
    net.load_state_dict(best_state)
    net.eval()
    with torch.no_grad():
        p_val = torch.sigmoid(net(xv).squeeze(1)).numpy()
    out = Path(options["output"])
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    write_onnx(out / "model.onnx", state, mean, std, names, options["analysis"])
    torch.save({"state_dict": net.state_dict(), "hidden": int(options["hidden"]), "layers": int(options["layers"]),
                "mean": mean, "std": std, "features": names, "analysis": options["analysis"]}, out / "model.pt")
    metrics = {
        "analysis": options["analysis"],
        "features": names,
        "validation_auc": weighted_auc(p_val, y[val], w[val]),
        "validation_accuracy": weighted_accuracy(p_val, y[val], w[val]),
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "validation_loss": best,
        "n_train": int(len(tr)),
        "n_validation": int(len(val)),
        "events_per_dataset": counts,
        "seconds": round(time.perf_counter() - t0, 1),
        "network": {"hidden": int(options["hidden"]), "layers": int(options["layers"]),
                    "learning_rate": float(options["learning_rate"]), "batch_size": batch},
        "int8": _int8_agreement(out / "model.onnx", X[val], y[val], w[val]),
        "options": {k: v for k, v in options.items() if k != "progress"},
        "history": history,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def _int8_agreement(path, X, y, w) -> dict:
    """The scorer's int8 inference of the exported model against its fp32 graph on validation events."""
    from .session import get_session

    scores = {}
    for name, transform in (("fp32", None), ("int8", int8_model_bytes)):
        session = get_session(path, 1, transform)
        scores[name] = np.concatenate([session.run(["score"], {"features": X[i:i + 4096]})[0]
                                       for i in range(0, len(X), 4096)]).astype(np.float64)
    delta = np.abs(scores["int8"] - scores["fp32"])
    return {"validation_auc": weighted_auc(scores["int8"], y, w), "max_abs_delta_score": float(delta.max()),
            "p99_abs_delta_score": float(np.quantile(delta, 0.99))}


def write_onnx(path, state: Mapping[str, np.ndarray], mean, std, features, analysis: str) -> Path:
    """The MLP of ``state`` (a ``torch.nn.Sequential`` state dict as numpy) as ONNX, with the
    input standardisation folded into the first layer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = sorted({k.split(".")[0] for k in state}, key=int)
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    nodes, inits, x = [], [], "features"
    for i, layer in enumerate(weights):
        W = np.asarray(state[f"{layer}.weight"], dtype=np.float64)  # (out, in)
        b = np.asarray(state[f"{layer}.bias"], dtype=np.float64)
        if i == 0:  # W (x - mean) / std + b
            b = b - W @ (mean / std)
            W = W / std[None, :]
        inits += [numpy_helper.from_array(W.astype(np.float32), f"W{i}"), numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [x, f"W{i}", f"b{i}"], [f"z{i}"], transB=1))
        x = f"z{i}"
        if i < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [x], [f"a{i}"]))
            x = f"a{i}"
    inits.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat"))
    nodes += [helper.make_node("Sigmoid", [x], ["p"]), helper.make_node("Reshape", ["p", "flat"], ["score"])]
    graph = helper.make_graph(
        nodes, "hhcoffea_dnn",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", len(features)])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="hhcoffea")
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    helper.set_model_props(model, {"hhcoffea.kind": "dnn", "hhcoffea.analysis": analysis,
                                   "hhcoffea.features": ",".join(features)})
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, path)
    return path


#: largest |int8 weight|: 7 bits, so that 2 x 255 x 63 fits the int16 pair sums of x86 u8 x s8 kernels
INT8_WEIGHT_MAX = 63


def dnn_layers(model) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """``([(W (out, in), b), ...], metadata)`` of a DNN graph written by :func:`write_onnx`
    (``model``: a path or an ``onnx.ModelProto``). Any other graph: ``ValueError`` naming it."""
    import onnx
    from onnx import numpy_helper

    where = "model" if isinstance(model, onnx.ModelProto) else str(model)
    if not isinstance(model, onnx.ModelProto):
        try:
            model = onnx.load(str(model))
        except Exception as err:  # DecodeError, OSError
            raise ValueError(f"{where}: not a readable ONNX model ({type(err).__name__}: {err})") from None
    graph = model.graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    ops = [n.op_type for n in graph.node]
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    expected = ["Gemm", "Relu"] * (len(gemms) - 1) + ["Gemm", "Sigmoid", "Reshape"]
    ok = bool(gemms) and ops == expected and all(
        len(n.input) == 3 and n.input[1] in init and n.input[2] in init
        and {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} == {"transB": 1} for n in gemms)
    if not ok:
        raise ValueError(f"{where}: not an hhcoffea DNN graph (Gemm/Relu layers, Sigmoid, Reshape; got "
                         f"{'/'.join(ops[:8])}{'...' if len(ops) > 8 else ''}); use the scorer's precision: fp32")
    layers = [(init[n.input[1]].astype(np.float64), init[n.input[2]].astype(np.float64)) for n in gemms]
    return layers, {p.key: p.value for p in model.metadata_props}


def _int8_weights(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-node (row) scales and int8 weights: each row's scale is the one of (0.5 .. 1) x its
    largest |w| / INT8_WEIGHT_MAX with the least squared rounding error (clipping a few large
    weights buys a finer step for the rest)."""
    amax = np.abs(W).max(axis=1, keepdims=True)
    amax[amax == 0] = 1.0
    best_err, best_scale = np.full(len(W), np.inf), np.ones(len(W))
    for c in np.linspace(0.5, 1.0, 26):
        scale = c * amax / INT8_WEIGHT_MAX
        err = ((np.clip(np.round(W / scale), -INT8_WEIGHT_MAX, INT8_WEIGHT_MAX) * scale - W) ** 2).sum(axis=1)
        better = err < best_err
        best_err[better], best_scale[better] = err[better], scale[better, 0]
    Wq = np.clip(np.round(W / best_scale[:, None]), -INT8_WEIGHT_MAX, INT8_WEIGHT_MAX).astype(np.int8)
    return best_scale, Wq


def int8_model(model):
    """The int8 version of a :func:`write_onnx` DNN (see the module docstring) as an ``onnx.ModelProto``:
    per-event uint8 activations, int8 weights in [-INT8_WEIGHT_MAX, INT8_WEIGHT_MAX], fp32 first
    and output layers. Same input, output and metadata (plus ``hhcoffea.precision: int8``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    layers, metadata = dnn_layers(model)
    n_features = layers[0][0].shape[1]
    nodes, inits, x = [], [], "features"

    def constant(array, name):
        inits.append(numpy_helper.from_array(array, name))

    constant(np.array([1.0 / 255.0], np.float32), "inv255")
    constant(np.array([1e-30], np.float32), "tiny")  # an all-zero row quantises to zeros, not NaN
    for i, (W, b) in enumerate(layers):
        if i in (0, len(layers) - 1):  # raw features in, one logit out: fp32, a few % of the work
            constant(W.astype(np.float32), f"W{i}")
            constant(b.astype(np.float32), f"b{i}")
            nodes.append(helper.make_node("Gemm", [x, f"W{i}", f"b{i}"], [f"z{i}"], transB=1, name=f"layer{i}"))
        else:
            scale, Wq = _int8_weights(W)
            constant(np.ascontiguousarray(Wq.T), f"Wq{i}")
            constant(scale.astype(np.float32)[None, :], f"w_scale{i}")
            constant(b.astype(np.float32), f"b{i}")
            nodes += [  # a: (batch, in) >= 0; s: (batch,) each event's own scale
                helper.make_node("ReduceMax", [x], [f"amax{i}"], axes=[1], keepdims=0, name=f"amax{i}"),
                helper.make_node("Mul", [f"amax{i}", "inv255"], [f"s_raw{i}"], name=f"s_raw{i}"),
                helper.make_node("Max", [f"s_raw{i}", "tiny"], [f"s{i}"], name=f"s{i}"),
                helper.make_node("QuantizeLinear", [x, f"s{i}"], [f"q{i}"], axis=0, name=f"quantise{i}"),
                helper.make_node("MatMulInteger", [f"q{i}", f"Wq{i}"], [f"y{i}"], name=f"layer{i}"),
                helper.make_node("DequantizeLinear", [f"y{i}", f"s{i}"], [f"ya{i}"], axis=0, name=f"dequantise{i}"),
                helper.make_node("Mul", [f"ya{i}", f"w_scale{i}"], [f"yf{i}"], name=f"w_scale{i}"),
                helper.make_node("Add", [f"yf{i}", f"b{i}"], [f"z{i}"], name=f"bias{i}"),
            ]
        x = f"z{i}"
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [x], [f"a{i}"], name=f"relu{i}"))
            x = f"a{i}"
    constant(np.array([-1], dtype=np.int64), "flat")
    nodes += [helper.make_node("Sigmoid", [x], ["p"], name="sigmoid"),
              helper.make_node("Reshape", ["p", "flat"], ["score"], name="flatten")]
    graph = helper.make_graph(
        nodes, "hhcoffea_dnn_int8",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", n_features])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])], inits,
    )
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="hhcoffea")
    out.ir_version = 8
    helper.set_model_props(out, {**metadata, "hhcoffea.precision": "int8"})
    onnx.checker.check_model(out)
    return out


def int8_model_bytes(path) -> bytes:
    """:func:`int8_model` of the file ``path``, serialised (a session transform, :mod:`hhcoffea.ml.session`)."""
    return int8_model(path).SerializeToString()
