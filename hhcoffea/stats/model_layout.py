"""How :class:`hhcoffea.stats.likelihood.FastModel` reads a pyhf model: rows, modifiers, gammas.

pyhf's semantics: a sample name is one row over the bins of all channels; every modifier has a
mask of the (sample, bin) cells it acts on -- the bins of the channels in which that sample lists
it -- and modifiers of one name are one parameter (set) wherever they appear (correlated across
channels). :func:`read_layout` splits each sample into one *row* per channel it appears in (its
yields in that channel's bins, zero elsewhere). A modifier's mask is then a set of whole rows, so

* a scalar factor (``normfactor``, ``lumi``, ``normsys``) multiplies exactly the rows of the
  channels where the sample carries it (``lumi`` in every channel: once per row, not squared),
* a ``histosys`` shifts its row's bins (its own up/down templates in each channel),
* a ``staterror`` named in several channels is one gamma per bin of those channels: gamma ``k`` of
  the parameter set belongs to the ``k``-th of their bins, in the model's channel order,

and the likelihood code works row by row without any per-bin mask. For a model whose samples each
appear in one channel the rows are the samples, in ``model.config.samples`` order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ModelLayout", "read_layout", "check_background", "UnsupportedModelError", "SUPPORTED_MODIFIERS", "YIELD_FLOOR"]

#: floor for yields pulled to zero by a fit step (only inside minimisation; FastModel and the toy kernel)
YIELD_FLOOR = 1e-12

#: modifier type -> the interpolation code FastModel implements (None: no interpolation)
SUPPORTED_MODIFIERS = {"normfactor": None, "lumi": None, "staterror": None, "normsys": "code4", "histosys": "code4p"}


class UnsupportedModelError(ValueError):
    """The pyhf model uses a modifier, interpolation code or yield FastModel does not implement."""


@dataclass
class ModelLayout:
    """A pyhf model as rows of (sample, channel): R rows, B bins over all channels."""

    samples: list[str]  # model.config.samples
    channels: list[str]  # model.config.channels (the bin order)
    channel_slices: dict[str, slice]  # bins of each channel
    rows: list[tuple[str, str]]  # (sample, channel) of each row
    row_bins: list[slice]  # the bins of each row's channel (the row is zero outside)
    nominal: np.ndarray  # (R, B)
    stat_index: np.ndarray  # (R, B) staterror gamma (parameter index) of each cell, -1 for none
    factors: list[tuple]  # (row, parameter index, type, (hi, lo) or None): scalar factors of whole rows
    histosys: list[tuple]  # (row, parameter index, bins, up - nominal, nominal - down)
    row_has_poi: np.ndarray  # (R,) the row carries the POI normfactor

    @property
    def nbins(self) -> int:
        return self.nominal.shape[1]

    def row_mask(self) -> np.ndarray:
        """(R, B): True in the bins of each row's channel."""
        mask = np.zeros(self.nominal.shape, dtype=bool)
        for r, sl in enumerate(self.row_bins):
            mask[r, sl] = True
        return mask


def interpolation_codes(model) -> dict[str, str]:
    """Interpolation code per modifier type as pyhf applies it (not as requested)."""
    appliers = getattr(model.main_model, "modifiers_appliers", {})
    return {k: getattr(a, "interpcode", None) for k, a in appliers.items()}


def _check_modifier(mod: dict, sample: str, channel: str, codes: dict) -> None:
    kind, name = mod["type"], mod["name"]
    if kind not in SUPPORTED_MODIFIERS:
        raise UnsupportedModelError(
            f"modifier {name!r} (type {kind!r}, sample {sample!r}, channel {channel!r}) is not "
            f"implemented by FastModel (it implements {', '.join(SUPPORTED_MODIFIERS)})"
        )
    want = SUPPORTED_MODIFIERS[kind]
    if want is not None and codes.get(kind) != want:
        raise UnsupportedModelError(
            f"modifier {name!r} (type {kind!r}) uses interpolation {codes.get(kind)!r}; FastModel "
            f"implements {kind} only with {want!r} (pyhf's default)"
        )


def _staterror_bins(cfg, spec_channels: dict, channel_slices: dict) -> dict[str, np.ndarray]:
    """Per staterror name: the parameter index of each bin (-1 outside its channels).

    pyhf gives a staterror one gamma per bin of the channels where a sample lists it (the same
    channels for every sample, or pyhf refuses the model), in channel order."""
    channels_of: dict[str, list[str]] = {}
    for ch in cfg.channels:
        for sample in spec_channels[ch]["samples"]:
            for mod in sample.get("modifiers", []):
                if mod["type"] == "staterror" and ch not in channels_of.setdefault(mod["name"], []):
                    channels_of[mod["name"]].append(ch)
    nbins = sum(cfg.channel_nbins[ch] for ch in cfg.channels)
    out = {}
    for name, chans in channels_of.items():
        bins = np.concatenate([np.arange(channel_slices[ch].start, channel_slices[ch].stop) for ch in chans])
        psl = cfg.par_slice(name)
        if bins.size != psl.stop - psl.start:
            raise UnsupportedModelError(
                f"staterror {name!r} has {psl.stop - psl.start} parameters but channels {chans} have {bins.size} "
                "bins: FastModel expects one gamma per bin of the channels that list it"
            )
        gamma = np.full(nbins, -1, dtype=int)
        gamma[bins] = np.arange(psl.start, psl.stop)
        out[name] = gamma
    return out


def read_layout(model) -> ModelLayout:
    """The rows, modifiers and gammas of ``model`` (see the module docstring).

    Raises :class:`UnsupportedModelError` (one line) for a modifier type or interpolation code
    FastModel does not implement, a sample listed twice in one channel, or a sample carrying
    two staterrors in one channel."""
    cfg = model.config
    codes = interpolation_codes(model)
    spec_channels = {ch["name"]: ch for ch in model.spec["channels"]}
    channel_slices, start = {}, 0
    for ch in cfg.channels:
        channel_slices[ch] = slice(start, start + cfg.channel_nbins[ch])
        start += cfg.channel_nbins[ch]
    samples, channels = list(cfg.samples), list(cfg.channels)
    gamma_of_bin = _staterror_bins(cfg, spec_channels, channel_slices)
    entries = []  # (sample index, channel index, sample dict)
    for c, ch in enumerate(channels):
        seen = set()
        for sample in spec_channels[ch]["samples"]:
            if sample["name"] in seen:
                raise UnsupportedModelError(f"sample {sample['name']!r} is listed twice in channel {ch!r}")
            seen.add(sample["name"])
            entries.append((samples.index(sample["name"]), c, sample))
    entries.sort(key=lambda e: (e[0], e[1]))  # sample-major: one-channel samples keep pyhf's order
    nominal = np.zeros((len(entries), start))
    stat_index = np.full(nominal.shape, -1, dtype=int)
    factors, histosys, rows, row_bins = [], [], [], []
    row_has_poi = np.zeros(len(entries), dtype=bool)
    for r, (s, c, sample) in enumerate(entries):
        ch = channels[c]
        sl = channel_slices[ch]
        rows.append((samples[s], ch))
        row_bins.append(sl)
        nom = np.asarray(sample["data"], dtype=float)
        nominal[r, sl] = nom
        for mod in sample.get("modifiers", []):
            _check_modifier(mod, sample["name"], ch, codes)
            kind, name = mod["type"], mod["name"]
            p = cfg.par_slice(name).start
            if kind in ("normfactor", "lumi"):
                factors.append((r, p, kind, None))
                row_has_poi[r] |= kind == "normfactor" and name == cfg.poi_name
            elif kind == "normsys":
                factors.append((r, p, kind, (float(mod["data"]["hi"]), float(mod["data"]["lo"]))))
            elif kind == "staterror":
                if np.any(stat_index[r, sl] >= 0):
                    raise UnsupportedModelError(
                        f"sample {sample['name']!r} carries two staterror modifiers in channel {ch!r}"
                    )
                stat_index[r, sl] = gamma_of_bin[name][sl]
            else:  # histosys
                up = np.asarray(mod["data"]["hi_data"], dtype=float)
                dn = np.asarray(mod["data"]["lo_data"], dtype=float)
                histosys.append((r, p, sl, up - nom, nom - dn))
    return ModelLayout(samples, channels, channel_slices, rows, row_bins, nominal, stat_index, factors, histosys,
                       row_has_poi)


def check_background(layout: ModelLayout) -> None:
    """Refuse a bin whose expectation without the POI-scaled rows is zero (logpdf -inf at mu = 0)."""
    bkg = ~layout.row_has_poi
    total = layout.nominal[bkg].sum(axis=0) if bkg.any() else np.zeros(layout.nbins)
    bad = np.flatnonzero(~(total > 0))
    if bad.size:
        b = int(bad[0])
        ch = next(c for c, sl in layout.channel_slices.items() if sl.start <= b < sl.stop)
        raise UnsupportedModelError(
            f"channel {ch!r} bin {b - layout.channel_slices[ch].start} has {total[b]:g} expected background events: "
            "the likelihood needs a positive background in every bin (merge or drop empty bins)"
        )
