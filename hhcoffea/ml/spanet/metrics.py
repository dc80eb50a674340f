"""Validation metrics in the seeds' form (seed 000 tables 1-8, seed 002 purities): event and
Higgs efficiency by jet multiplicity (4, 5, >= 6 jets with pT >= 20 GeV), classification
accuracy and AUC. numpy only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["auc", "jet_multiplicity_category", "pairing_metrics"]

CATEGORIES = ("4", "5", ">=6")


def jet_multiplicity_category(n_jets: np.ndarray) -> np.ndarray:
    """'4', '5' or '>=6' per event (events with fewer than 4 jets count as '4')."""
    return np.array(CATEGORIES)[np.clip(np.asarray(n_jets) - 4, 0, 2)]


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN without both classes."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    # average ranks of tied values
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def pairing_metrics(pairs: np.ndarray, targets: np.ndarray, n_jets: np.ndarray,
                    labels: np.ndarray | None = None, signal_score: np.ndarray | None = None) -> dict:
    """Metrics of predicted ``pairs`` ``(n, H, 2)`` against ``targets`` ``(n, H, 2)`` (-1: none).

    Over fully reconstructable events (every Higgs has both jets): per jet-multiplicity
    category and in total, ``event_fraction`` (share of those events), ``event_efficiency``
    (all Higgs right) and ``higgs_efficiency`` (share of Higgs right); ``higgs_efficiency_partial``
    counts every reconstructable Higgs of every event. With labels: ``accuracy``, ``auc``.
    """
    pairs = np.sort(pairs, axis=2)
    truth = np.sort(targets, axis=2)
    has = (truth >= 0).all(axis=2)  # (n, H) reconstructable Higgs
    full = has.all(axis=1)
    # a true Higgs is found when some predicted pair equals it (any particle: h1 <-> h2 symmetric)
    same = (pairs[:, :, None, :] == truth[:, None, :, :]).all(axis=3) & (pairs[:, :, None, 0] >= 0)
    found = same.any(axis=1) & has  # (n, H)
    category = jet_multiplicity_category(n_jets)
    out = {"n_events": int(len(pairs)), "n_full": int(full.sum()), "by_jets": {}}
    for name in (*CATEGORIES, "total"):
        sel = full & ((category == name) if name != "total" else True)
        n_sel = int(sel.sum())
        out["by_jets"][name] = {
            "events": n_sel,
            "event_fraction": n_sel / max(int(full.sum()), 1),
            "event_efficiency": float(found[sel].all(axis=1).mean()) if n_sel else float("nan"),
            "higgs_efficiency": float(found[sel].mean()) if n_sel else float("nan"),
        }
    out["event_efficiency"] = out["by_jets"]["total"]["event_efficiency"]
    out["higgs_efficiency"] = out["by_jets"]["total"]["higgs_efficiency"]
    out["higgs_efficiency_partial"] = float(found.sum() / max(int(has.sum()), 1))
    if labels is not None and signal_score is not None:
        labelled = np.asarray(labels) >= 0
        if labelled.any():
            y = np.asarray(labels)[labelled] == 1
            s = np.asarray(signal_score)[labelled]
            out["accuracy"] = float(((s > 0.5) == y).mean())
            out["auc"] = auc(s, y)
    return out
