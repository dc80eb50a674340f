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
model (``model.onnx``, ``model.pt``).

The ONNX graph is written directly with ``onnx.helper`` (Gemm + Relu, Sigmoid, Reshape): an MLP
needs nothing more, and this avoids torch's deprecated TorchScript exporter and the onnxscript
dependency of the new one. Input ``features`` float32 ``[batch, n]``, output ``score`` float32
``[batch]``; metadata ``hhcoffea.features`` (comma-separated names), ``hhcoffea.analysis``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "SEED_SHAPES",
    "TRAINING_DEFAULTS",
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
        "options": {k: v for k, v in options.items() if k != "progress"},
        "history": history,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


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
