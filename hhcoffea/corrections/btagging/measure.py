"""Efficiency counts: jets per working point, flavour, |η| and pT, tagged or not (``hist``), and
the maps made from them (:func:`maps_from_counts`). The coffea processor that fills the counts
is ``hhcoffea.processors.btag_efficiency``; ``hhcoffea btag measure`` runs it."""

from __future__ import annotations

import hist
import numpy as np

from .maps import FLAVOURS, efficiency_maps

__all__ = ["book_counts", "fill_counts", "maps_from_counts", "summary_rows"]


def book_counts(abseta_edges, pt_edges, working_points=()) -> hist.Hist:
    """Empty counts: axes working_point (growing), flavor (5, 4, 0), abseta, pt, tagged; Σw and Σw²."""
    return hist.Hist(
        hist.axis.StrCategory(list(working_points), name="working_point", growth=True),
        hist.axis.IntCategory(list(FLAVOURS), name="flavor"),
        hist.axis.Variable([float(e) for e in abseta_edges], name="abseta", label="|eta|"),
        hist.axis.Variable([float(e) for e in pt_edges], name="pt", label="pT [GeV]"),
        hist.axis.Boolean(name="tagged"),
        storage=hist.storage.Weight(),
    )


def fill_counts(counts: hist.Hist, working_point: str, flavour, abseta, pt, tagged, weight) -> None:
    flavour = np.asarray(flavour)
    flavour = np.where((flavour == 5) | (flavour == 4), flavour, 0)
    counts.fill(working_point=working_point, flavor=flavour, abseta=abseta, pt=pt, tagged=tagged, weight=weight)


def maps_from_counts(counts: hist.Hist, table: dict, min_jets: float) -> dict:
    """working point -> flavour -> :class:`~.maps.EfficiencyMap` (``table``: name -> WorkingPoint,
    whose nominal efficiency fills a flavour with too few jets)."""
    out = {}
    for wp in counts.axes["working_point"]:
        by_flavour = {}
        for flavour in FLAVOURS:
            view = counts[{"working_point": wp, "flavor": hist.loc(flavour)}].view()  # (abseta, pt, tagged)
            values, variances = view["value"], view["variance"]
            nominal = float(table[wp].efficiency(flavour)) if wp in table else 0.5
            by_flavour[flavour] = efficiency_maps(values.sum(-1), variances.sum(-1), values[..., 1], nominal, min_jets)
        out[wp] = by_flavour
    return out


def summary_rows(counts: hist.Hist, table: dict) -> list[dict]:
    """Per working point and flavour: jets, measured efficiency over all bins, nominal (table)."""
    rows = []
    for wp in counts.axes["working_point"]:
        for flavour in FLAVOURS:
            view = counts[{"working_point": wp, "flavor": hist.loc(flavour)}].view()["value"]
            total, tagged = view.sum(), view[..., 1].sum()
            nominal = float(table[wp].efficiency(flavour)) if wp in table else float("nan")
            rows.append({"working_point": wp, "flavor": flavour, "jets": float(total),
                         "efficiency": float(tagged / total) if total > 0 else float("nan"), "nominal": nominal})
    return rows
