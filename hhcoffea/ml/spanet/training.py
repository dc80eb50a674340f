"""``hhcoffea train spanet OPTIONS.yaml``: train our SPA-Net on SPANet HDF5 files.

Options (YAML; names as in SPANet's options files where they exist; paths relative to the
options file)::

    event_info_file: event.yaml       # SPANet event file (the number of Higgs comes from it)
    training_file: training.h5
    validation_file: ''               # '' -> the last (1 - train_validation_split) of training_file
    testing_file: ''                  # optional: metrics on it too
    train_validation_split: 0.95
    output: spanet_run                # checkpoint.pt, metrics.json, options.yaml
    hidden_dim: 32, num_encoder_layers: 2, num_branch_encoder_layers: 1, num_attention_heads: 4,
    transformer_dim_scale: 2.0, num_detector_layers: 1, num_classification_layers: 1, dropout: 0.0
    learning_rate: 0.0015, l2_penalty: 0.0002, gradient_clip: 0.0 (0 = off), epochs: 10,
    batch_size: 512, learning_rate_warmup_epochs: 1.0, learning_rate_schedule: cosine | constant
    partial_events: 1                 # 1: train on partial events, unreconstructable Higgs masked
    assignment_loss_scale: 1.0, detection_loss_scale: 1.0, classification_loss_scale: 1.0
    seed: 0, num_threads: 1, resume: true, progress: true

AdamW with ``l2_penalty`` as weight decay. A checkpoint is written every epoch; a rerun with
``resume`` continues from the last one. ``metrics.json`` next to it holds, per epoch, the
training and validation losses and the validation metrics of :mod:`.metrics`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import yaml

from .dataset import read_h5
from .decoding import decode_assignments
from .event_info import EventInfo
from .metrics import pairing_metrics

__all__ = ["DEFAULT_OPTIONS", "load_checkpoint", "load_options", "model_from_checkpoint", "train"]

DEFAULT_OPTIONS: dict = {
    "event_info_file": "event.yaml",
    "training_file": "training.h5",
    "validation_file": "",
    "testing_file": "",
    "train_validation_split": 0.95,
    "output": "spanet_run",
    "hidden_dim": 32,
    "num_encoder_layers": 2,
    "num_branch_encoder_layers": 1,
    "num_attention_heads": 4,
    "transformer_dim_scale": 2.0,
    "num_detector_layers": 1,
    "num_classification_layers": 1,
    "dropout": 0.0,
    "learning_rate": 0.0015,
    "l2_penalty": 0.0002,
    "gradient_clip": 0.0,
    "epochs": 10,
    "batch_size": 512,
    "learning_rate_warmup_epochs": 1.0,
    "learning_rate_schedule": "cosine",
    "partial_events": 1,
    "assignment_loss_scale": 1.0,
    "detection_loss_scale": 1.0,
    "classification_loss_scale": 1.0,
    "seed": 0,
    "num_threads": 1,  # 2 threads on a shared 2-core machine run several times slower
    "resume": True,
    "progress": True,
}
_PATH_KEYS = ("event_info_file", "training_file", "validation_file", "testing_file", "output")


def load_options(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Options from a YAML (or JSON) file over :data:`DEFAULT_OPTIONS`; paths made absolute."""
    raw, base = {}, Path.cwd()
    if path is not None:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except OSError as err:
            raise ValueError(f"{path}: cannot read options file ({err.strerror})") from None
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: an options file is a mapping, got {type(raw).__name__}")
        base = path.parent
    raw = {**raw, **(overrides or {})}
    unknown = set(raw) - set(DEFAULT_OPTIONS)
    if unknown:
        raise ValueError(f"{path}: unknown option(s) {sorted(unknown)}; known: {sorted(DEFAULT_OPTIONS)}")
    options = {**DEFAULT_OPTIONS, **raw}
    for key in _PATH_KEYS:
        if options[key]:
            p = Path(str(options[key])).expanduser()
            options[key] = str(p if p.is_absolute() else (base / p).resolve())
    return options


def _model_config(options: dict, info: EventInfo):
    from .model import SpanetConfig

    names = {f.name for f in fields(SpanetConfig)}
    cfg = {k: options[k] for k in names if k in options}
    return SpanetConfig(n_features=len(info.jet_features), n_globals=len(info.global_features),
                        n_particles=info.n_particles, n_classes=2 if info.classifications else 0, **cfg)


def _statistics(data: dict, info: EventInfo):
    """Masked mean/std of the normalised features (0/1 for the others), as SPANet computes them."""
    x = data["source_data"][data["source_mask"]]
    mean, std = x.mean(0), x.std(0)
    std[std < 1e-5] = 1.0
    norm = np.array([f.normalize for f in info.jet_features])
    mean[~norm], std[~norm] = 0.0, 1.0
    gmean = gstd = None
    if data["global_data"] is not None:
        g = data["global_data"]
        gmean, gstd = g.mean(0), g.std(0)
        gstd[gstd < 1e-5] = 1.0
        gnorm = np.array([f.normalize for f in info.global_features])
        gmean[~gnorm], gstd[~gnorm] = 0.0, 1.0
    return mean, std, gmean, gstd


def _subset(data: dict, rows) -> dict:
    return {k: (v[rows] if v is not None else None) for k, v in data.items()}


def predict(model, data: dict, batch_size: int = 4096) -> dict:
    """Assignment log-probabilities, detection and signal probabilities of a data dict."""
    import torch

    model.eval()
    out = {"assignment": [], "detection": [], "signal": []}
    with torch.no_grad():
        for start in range(0, len(data["source_mask"]), batch_size):
            sl = slice(start, start + batch_size)
            g = torch.from_numpy(data["global_data"][sl]) if data["global_data"] is not None else None
            a, d, c = model(torch.from_numpy(data["source_data"][sl]), torch.from_numpy(data["source_mask"][sl]), g)
            out["assignment"].append(a.numpy())
            out["detection"].append(torch.sigmoid(d).numpy())
            out["signal"].append(torch.softmax(c, -1)[:, 1].numpy() if c is not None else np.full(len(d), np.nan))
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate(model, data: dict, options: dict) -> dict:
    """Loss terms and pairing/classification metrics on ``data``."""
    import torch

    from .model import spanet_loss

    pred = predict(model, data)
    pairs, _ = decode_assignments(pred["assignment"], data["source_mask"])
    metrics = pairing_metrics(pairs, data["targets"], data["n_jets"], data["labels"], pred["signal"])
    logit = lambda p: np.log(np.clip(p, 1e-7, 1 - 1e-7) / np.clip(1 - p, 1e-7, 1))  # noqa: E731
    sig = pred["signal"]
    cls = None
    if not np.isnan(sig).all():
        cls = torch.from_numpy(np.stack([np.zeros_like(sig), logit(sig)], 1).astype(np.float32))
    losses = spanet_loss(
        (torch.from_numpy(pred["assignment"]), torch.from_numpy(logit(pred["detection"]).astype(np.float32)), cls),
        torch.from_numpy(data["targets"]), torch.from_numpy(data["labels"]), torch.from_numpy(data["weights"]),
        assignment_loss_scale=options["assignment_loss_scale"], detection_loss_scale=options["detection_loss_scale"],
        classification_loss_scale=options["classification_loss_scale"], partial_events=bool(options["partial_events"]),
    )
    metrics["loss"] = {k: float(v) for k, v in losses.items()}
    return metrics


def load_checkpoint(path: str | Path) -> dict:
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as err:
        raise ValueError(f"{path}: not a readable hhcoffea SPA-Net checkpoint ({err})") from None


def model_from_checkpoint(checkpoint: dict):
    """``(model, event_info)`` rebuilt from a checkpoint dict (eval mode)."""
    from .model import SpanetConfig, SpanetModel

    if not isinstance(checkpoint, dict) or "model_state" not in checkpoint:
        raise ValueError("not an hhcoffea SPA-Net checkpoint (no model_state)")
    model = SpanetModel(SpanetConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["model_state"])
    model.eval()
    return model, EventInfo.from_yaml(checkpoint["event_info"], "checkpoint")


def train(options: dict, console=None) -> dict:
    """Train (or resume) with ``options`` (:func:`load_options`); returns the final metrics."""
    import torch

    from .model import SpanetModel, spanet_loss

    torch.set_num_threads(int(options["num_threads"] or 1))
    torch.manual_seed(int(options["seed"]))
    info = EventInfo.read(options["event_info_file"]).check_supported()
    data = read_h5(options["training_file"], info)
    n = len(data["source_mask"])
    if options["validation_file"]:
        train_data, valid_data = data, read_h5(options["validation_file"], info)
    else:
        cut = int(round(float(options["train_validation_split"]) * n))
        train_data, valid_data = _subset(data, slice(0, cut)), _subset(data, slice(cut, n))
    if not len(train_data["source_mask"]) or not len(valid_data["source_mask"]):
        raise ValueError(f"{options['training_file']}: too few events ({n}) for a training and a validation set")
    out_dir = Path(options["output"])
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, metrics_path = out_dir / "checkpoint.pt", out_dir / "metrics.json"

    config = _model_config(options, info)
    model = SpanetModel(config)
    model.set_normalisation(*(torch.from_numpy(s) if s is not None else None for s in _statistics(train_data, info)))
    opt = torch.optim.AdamW(model.parameters(), lr=float(options["learning_rate"]), weight_decay=float(options["l2_penalty"]))
    history, start_epoch = [], 0
    if options["resume"] and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        if ckpt.get("config") != config.to_dict():
            raise ValueError(f"{ckpt_path}: checkpoint of a different architecture; remove it or set resume: false")
        model.load_state_dict(ckpt["model_state"])
        opt.load_state_dict(ckpt["optimizer_state"])
        history, start_epoch = ckpt.get("history", []), int(ckpt["epoch"]) + 1
    (out_dir / "options.yaml").write_text(yaml.safe_dump(options, sort_keys=False))

    batch = int(options["batch_size"])
    n_train = len(train_data["source_mask"])
    steps_per_epoch = max(math.ceil(n_train / batch), 1)
    epochs = int(options["epochs"])
    total_steps = steps_per_epoch * epochs
    warmup = float(options["learning_rate_warmup_epochs"]) * steps_per_epoch
    base_lr = float(options["learning_rate"])

    def lr_at(step):
        if warmup and step < warmup:
            return base_lr * (step + 1) / warmup
        if options["learning_rate_schedule"] == "cosine":
            return base_lr * 0.5 * (1 + math.cos(math.pi * min(step - warmup, total_steps) / max(total_steps - warmup, 1)))
        return base_lr

    tensors = {k: torch.from_numpy(v) if v is not None else None for k, v in train_data.items()}
    progress = None
    if options["progress"]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=console, transient=False)
        progress.start()
    metrics = history[-1]["validation"] if history else {}
    try:
        for epoch in range(start_epoch, epochs):
            # one generator per epoch: a resumed run shuffles as an uninterrupted one
            order = torch.randperm(n_train, generator=torch.Generator().manual_seed(int(options["seed"]) * 7919 + epoch))
            model.train()
            task = progress.add_task(f"epoch {epoch + 1}/{epochs}", total=steps_per_epoch) if progress else None
            running, t0 = 0.0, time.perf_counter()
            for step in range(steps_per_epoch):
                idx = order[step * batch:(step + 1) * batch]
                for group in opt.param_groups:
                    group["lr"] = lr_at(epoch * steps_per_epoch + step)
                g = tensors["global_data"][idx] if tensors["global_data"] is not None else None
                outputs = model(tensors["source_data"][idx], tensors["source_mask"][idx], g)
                losses = spanet_loss(
                    outputs, tensors["targets"][idx], tensors["labels"][idx], tensors["weights"][idx],
                    assignment_loss_scale=float(options["assignment_loss_scale"]),
                    detection_loss_scale=float(options["detection_loss_scale"]),
                    classification_loss_scale=float(options["classification_loss_scale"]),
                    partial_events=bool(options["partial_events"]),
                )
                opt.zero_grad(set_to_none=True)
                losses["loss"].backward()
                if float(options["gradient_clip"]) > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), float(options["gradient_clip"]))
                opt.step()
                value = float(losses["loss"].detach())
                running = 0.98 * running + 0.02 * value if step else value
                if progress:
                    progress.update(task, advance=1, description=f"epoch {epoch + 1}/{epochs} loss {running:.4f}")
            train_seconds = time.perf_counter() - t0
            metrics = evaluate(model, valid_data, options)
            entry = {"epoch": epoch, "train_loss": running, "seconds": train_seconds, "validation": metrics}
            if options["testing_file"]:
                entry["testing"] = evaluate(model, read_h5(options["testing_file"], info), options)
            history.append(entry)
            torch.save({"model_state": model.state_dict(), "optimizer_state": opt.state_dict(), "epoch": epoch,
                        "config": config.to_dict(), "options": options, "event_info": info.to_yaml(),
                        "history": history}, ckpt_path)
            metrics_path.write_text(json.dumps({"history": history, "final": entry}, indent=1, default=float))
            if console is not None:
                console.print(f"epoch {epoch + 1}: train loss {running:.4f}, validation loss "
                              f"{metrics['loss']['loss']:.4f}, event efficiency {metrics['event_efficiency']:.3f}")
    finally:
        if progress:
            progress.stop()
    return metrics
