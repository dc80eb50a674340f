"""Calibration of the emulated samples: four-tag efficiencies measured with this emulation and the
cross sections tuned from them, plus the two measurements that produce them.

These are emulation tuning numbers, not PHYSICS.md constants. What they are calibrated *to* is in
PHYSICS.md ("Calibration numbers for the sample emulation") and lives in ``hhcoffea.constants``:
the four-tag accepted cross sections ``RESONANT_XSEC_AFTER_FOUR_TAG`` (3.64 fb at m_X = 500,
0.081 fb at m_X = 1000) and ``QCD_4B_XSEC_AFTER_FOUR_TAG`` (6.03e3 fb).

* resonant: ``RESONANT_XSEC_TABLE`` sigma(pp -> X -> hh -> 4b) in fb vs m_X such that, after the
  four-tag cut (>= 4 b-tagged jets, pT > 40, |eta| < 2.5, MV2c10_70), the accepted cross section
  is 3.64 fb at m_X = 500 and 0.081 fb at m_X = 1000; other masses follow a power law
  sigma_acc ~ m_X^-5.49 through those two points (:func:`resonant_accepted_target`) divided by
  the four-tag efficiency measured with this generator (``RESONANT_FOUR_TAG_EFFICIENCY``).
  Four-tag efficiency 5.20% at 500 GeV, 11.1% at 1000 GeV -> sigma x BR = 70.0 fb and 0.732 fb.
* qcd: ``QCD_FOUR_TAG_EFFICIENCY`` (2.10%) for the generator-level cut of ``processes``, so that
  sigma = 6.03e3 fb / 0.0210 = 2.88e5 fb (``xsec.QCD_XSEC_FB``).

Re-measure them with ``python benchmarks/generate.py --calibrate``; it uses :func:`four_tag_passed`
(the four-tag cut of ``hhcoffea.selection``, the one the processor applies) and
:func:`leading_bjets_mass`.
"""

from __future__ import annotations

import math

import numpy as np

from .. import constants as C

__all__ = [
    "QCD_FOUR_TAG_EFFICIENCY",
    "RESONANT_ACCEPTED_POWER",
    "RESONANT_FOUR_TAG_EFFICIENCY",
    "RESONANT_XSEC_TABLE",
    "four_tag_passed",
    "leading_bjets_mass",
    "resonant_accepted_target",
]

# Four-tag efficiencies (>= 4 b-tags, pT > 40, |eta| < 2.5, MV2c10_70) measured with this
# generator (EMULATION_VERSION 3: kT-based FSR, ISR recoil) after its calibration against showered
# samples, 150k events per mass (`python benchmarks/generate.py --calibrate -n 150000`, seed 1;
# statistical errors <= 0.0009).
# Above ~1.2 TeV the b quarks of a Higgs start to merge into one jet (dR < 0.4).
RESONANT_FOUR_TAG_EFFICIENCY: dict[float, float] = {
    260.0: 0.01452, 300.0: 0.01673, 350.0: 0.02335, 400.0: 0.03291, 450.0: 0.04321,
    500.0: 0.05200, 600.0: 0.06955, 700.0: 0.08394, 800.0: 0.09426, 900.0: 0.10326,
    1000.0: 0.11066, 1100.0: 0.11236, 1200.0: 0.11124, 1400.0: 0.08259, 1600.0: 0.05778,
    2000.0: 0.03239, 2500.0: 0.01771, 3000.0: 0.01124,
}  # fmt: skip
# The four-tag accepted cross section is a power law through PHYSICS.md's calibration points,
# sigma_acc(m) = 3.64 fb (m / 500)^-p with p = ln(3.64 / 0.081) / ln 2 = 5.49, so it passes
# through 3.64 fb at 500 GeV and 0.081 fb at 1000 GeV (constants.RESONANT_XSEC_AFTER_FOUR_TAG).
RESONANT_ACCEPTED_POWER = math.log(
    C.RESONANT_XSEC_AFTER_FOUR_TAG[500.0] / C.RESONANT_XSEC_AFTER_FOUR_TAG[1000.0]
) / math.log(2.0)
# sigma(pp -> X -> hh -> bbbb) at 13 TeV in fb = sigma_acc(m) / efficiency(m); log-interpolated
# by xsec.resonant_xsec.
RESONANT_XSEC_TABLE: dict[float, float] = {
    260.0: 9083.2, 300.0: 3594.3, 350.0: 1104.8, 400.0: 376.49, 450.0: 150.21,
    500.0: 70.0, 600.0: 19.237, 700.0: 6.8377, 800.0: 2.9254, 900.0: 1.3988,
    1000.0: 0.73197, 1100.0: 0.4272, 1200.0: 0.26763, 1400.0: 0.15465, 1600.0: 0.1062,
    2000.0: 0.055643, 2500.0: 0.029903, 3000.0: 0.017313,
}  # fmt: skip
# QCD pp -> bbbb (after the generator-level cut): four-tag efficiency measured with 600k events,
# seed 1; 6.03e3 fb (constants.QCD_4B_XSEC_AFTER_FOUR_TAG) / this = xsec.QCD_XSEC_FB
QCD_FOUR_TAG_EFFICIENCY = 0.020972  # +- 0.000185


def resonant_accepted_target(m_x):
    """The four-tag accepted sigma the resonant table is calibrated to (fb): a power law through
    PHYSICS.md's 3.64 fb (m_X = 500) and 0.081 fb (m_X = 1000)."""
    return C.RESONANT_XSEC_AFTER_FOUR_TAG[500.0] * (np.asarray(m_x, dtype=float) / 500.0) ** (-RESONANT_ACCEPTED_POWER)


def four_tag_passed(jets) -> np.ndarray:
    """Per event, whether the jagged ``jets`` (fields pt, eta, btag) pass the four-tag cut.

    Applies ``hhcoffea.selection.four_tag_flat``, the processor's own implementation, to the
    flat columns.
    """
    import awkward as ak  # here, not at the top: the generator itself needs neither

    from ..columnar.selection import four_tag_flat

    counts = ak.to_numpy(ak.num(jets.pt, axis=1))
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    flat = {f: ak.to_numpy(ak.flatten(jets[f], axis=1)) for f in ("pt", "eta", "btag")}
    return four_tag_flat(offsets, flat["pt"], flat["eta"], (flat["btag"] & 1) != 0)  # bit 0: the sample's working point


def leading_bjets_mass(jets, n_jets: int = 4) -> np.ndarray:
    """Mass of the ``n_jets`` highest-pT b-tagged jets with pT > 40, |eta| < 2.5 (NaN if fewer)."""
    import awkward as ak

    from ..columnar.kinematics import invariant_mass, to_cartesian
    from ..columnar.selection import good_jets

    good = good_jets(jets)
    sel = good[(good.btag & 1) != 0][:, :n_jets]  # bit 0: the sample's working point
    px, py, pz, e = to_cartesian(*(ak.fill_none(ak.pad_none(sel[f], n_jets, clip=True), 0.0).to_numpy()
                                   for f in ("pt", "eta", "phi", "mass")))
    out = invariant_mass(px.sum(1), py.sum(1), pz.sum(1), e.sum(1))
    return np.where(ak.to_numpy(ak.num(sel)) >= n_jets, out, np.nan)
