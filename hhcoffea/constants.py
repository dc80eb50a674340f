"""Every physics constant of hhcoffea, in one place.

Each block cites the section of ``shared/PHYSICS.md`` (the analysis reference) it comes from.
Units: GeV, radians, fb, fb^-1.
"""

from __future__ import annotations

import math

# --- PHYSICS.md "Objects and preselection" ---------------------------------------------------
HIGGS_MASS = 125.0
JET_PT_CONSIDERED = 20.0  # jets below this are not reconstructed
SPANET_MAX_JETS = 10  # the 10 highest-pT jets go into SPA-Net
JER_CONSTANT = 0.052  # sigma(pT) = sqrt((0.052 pT)^2 + 1.502^2 pT)
JER_STOCHASTIC = 1.502
FOUR_TAG_N_BJETS = 4
FOUR_TAG_PT_MIN = 40.0
FOUR_TAG_ETA_MAX = 2.5
TRUTH_MATCH_DR = 0.4

# b-tagging working points: efficiency for b, rejection (1/mistag) of c and light jets.
BTAG_WORKING_POINTS: dict[str, dict[str, float]] = {
    "MV2c10_70": {"b_efficiency": 0.70, "c_rejection": 12.0, "light_rejection": 385.0},
    "DL1r_77": {"b_efficiency": 0.77, "c_rejection": 4.9, "light_rejection": 130.0},
}
RESONANT_WORKING_POINT = "MV2c10_70"
NONRESONANT_WORKING_POINT = "DL1r_77"

# --- PHYSICS.md "Pairings" ------------------------------------------------------------------
# Pairing codes for four pT-ordered jets j0..j3; ties keep the lower code.
HH_PAIRING_CODES = (((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2)))
DHH_M4J_SPLIT = 1250.0
# m4j < 1250: a/m4j + b < dR < c/m4j + d, as (a, b, c, d)
DHH_LEAD_WINDOW = (360.0, -0.5, 653.0, 0.475)
DHH_SUBL_WINDOW = (235.0, 0.0, 875.0, 0.35)
DHH_HIGH_M4J_DR_MAX = 1.0  # m4j > 1250: 0 < dR < 1 for both candidates
DHH_MASS_RATIO = 120.0 / 110.0
CHI2_HIGGS_MASS = 125.0
CHI2_HIGGS_MASS_SEED_CODE = 125.10  # the seeds' author's value, with the every-subset option
# Not in PHYSICS.md: the every-subset chi2 option looks at most at this many (highest-pT)
# b-tagged jets (a fixed block size for the vectorised search); job files may override it.
CHI2_EXHAUSTIVE_MAX_BTAGGED = 8
MASS_AGNOSTIC_K = 125.0 / 120.0

# --- PHYSICS.md "Cut-based selection (after pairing)" -----------------------------------------
RESONANT_LEAD_PT = (0.5, -103.0)  # pT_lead > 0.5 m4j - 103
RESONANT_SUBL_PT = (0.33, -73.0)  # pT_subl > 0.33 m4j - 73
DETA_HH_MAX = 1.5
TOP_VETO_W_MASS = 80.0
TOP_VETO_TOP_MASS = 173.0
TOP_VETO_RESOLUTION = 0.1
TOP_VETO_X_WT_MIN = 1.5
SIGNAL_REGION_LEAD_MASS = 120.0
SIGNAL_REGION_SUBL_MASS = 110.0
SIGNAL_REGION_RESOLUTION = 0.1
SIGNAL_REGION_X_HH_MAX = 1.6

# --- PHYSICS.md "ML selections" ---------------------------------------------------------------
KAPPA_LAMBDA_TRAINING = (-5.0, -3.0, -1.0, 1.0, 2.0, 3.0, 5.0, 7.0, 9.0, 12.0)
RESONANT_TRAINING_MASSES = tuple(float(m) for m in range(300, 1201, 100))

# --- PHYSICS.md "Statistics" ------------------------------------------------------------------
CLS_LEVEL = 0.05  # 95% CL
PROFILE_SCAN_THRESHOLD = 1.96**2  # -2 dlnL below this: the 95% interval
REFERENCE_LUMINOSITY = 300.0  # fb^-1 at 14 TeV (also 139, 3000)
REFERENCE_LUMINOSITIES = (139.0, 300.0, 3000.0)  # fb^-1, the luminosity scans
KAPPA_LAMBDA_SM = 1.0  # the stated hypothesis of the expected kappa_lambda constraints
# expected kappa_lambda intervals at 300 fb^-1, 14 TeV (paper table VI, mu as POI, CLs)
REFERENCE_KAPPA_INTERVAL_MIN_DR_DNN = (-1.44, 8.49)
REFERENCE_KAPPA_INTERVAL_SPANET = (-1.57, 7.49)
# every row of table VI (expected, 300 fb^-1, mu as POI): the demo's comparison table
REFERENCE_KAPPA_INTERVALS_TABLE_VI = {
    "cut_based_min_dr": (-3.30, 10.38),
    "cut_based_spanet": (-3.58, 10.47),
    "dnn_min_dr": REFERENCE_KAPPA_INTERVAL_MIN_DR_DNN,
    "dnn_spanet": (-1.72, 8.94),
    "spanet": REFERENCE_KAPPA_INTERVAL_SPANET,
}
# the same rows of table VI with kappa_lambda as POI (seed 003 sec. VI, table VI right half;
# PHYSICS.md "Statistics"): expected profile-likelihood intervals, 300 fb^-1, 14 TeV
REFERENCE_KAPPA_INTERVALS_TABLE_VI_KAPPA_POI = {
    "cut_based_min_dr": (-3.27, 10.33),
    "cut_based_spanet": (-3.55, 10.43),
    "dnn_min_dr": (-1.44, 8.49),
    "dnn_spanet": (-1.72, 8.99),
    "spanet": (-1.56, 7.57),
}
# equivalent luminosity: mixing SPANet2 at 300 fb^-1 <-> min-dR DNN at ~400 fb^-1
# (seed 000 table 28: 405 profile likelihood, 425 CLs)
REFERENCE_EQUIVALENT_LUMINOSITY = {"profile": 405.0, "cls": 425.0}
# Not in PHYSICS.md: relative luminosity uncertainty used when the job file gives none
# (ATLAS Run-2 value, 1.7%); the job file's statistics.systematics.lumi overrides it.
DEFAULT_LUMI_RELATIVE_UNCERTAINTY = 0.017

# --- PHYSICS.md "Calibration numbers for the sample emulation" --------------------------------
# ggF HH at 13 TeV (NNLO): sigma(k) = c0 + c1 k + c2 k^2 fb
GGF_HH_XSEC_13TEV = (70.3874, -50.4111, 11.0595)
GGF_HH_XSEC_SM_13TEV = 31.05
GGF_HH_XSEC_SM_14TEV = 36.69
# 13 -> 14 TeV cross-section rescaling applied to 13 TeV kinematics (documented factor).
SQRT_S_RESCALE_13_TO_14 = GGF_HH_XSEC_SM_14TEV / GGF_HH_XSEC_SM_13TEV
BR_H_BB = 0.5824
BR_HH_4B = BR_H_BB**2
# after the four-tag cut (13 TeV, MV2c10-70), seed 001 table 3
QCD_4B_XSEC_AFTER_FOUR_TAG = 6.03e3
RESONANT_XSEC_AFTER_FOUR_TAG = {500.0: 3.64, 1000.0: 0.081}
# the same QCD background in the m_hh windows (four highest-pT b-jets) of m_H = 500 and 1000 GeV,
# after the four-tag cut: 2.57e3 fb in [350, 550], 3.32e2 fb in [800, 1050] (seed 001 table 3)
QCD_4B_XSEC_MHH_WINDOWS = {(350.0, 550.0): 2.57e3, (800.0, 1050.0): 3.32e2}

# --- Background references that PHYSICS.md does not list (seed 003_03dc9ab77963b172.txt) -------
# Cut-based selection efficiency of the QCD pp -> bbbb background, range over the pairings:
# "the ratio of the number of events that pass the final cut to the total number of events
# without applying any cuts" (seed 003 sec. V.B at Fig. 4: resonant, MV2c10-70; sec. VI.B,
# Fig. 10 caption: non-resonant, DL1r-77). The denominator is the seeds' generated MadGraph
# sample, whose generator-level cuts and cross section the seeds do not state: these are not
# comparable with an efficiency per event of another generated phase space (only yields are).
REFERENCE_QCD_SELECTION_EFFICIENCY = {"resonant": (9.4e-5, 2.82e-4), "nonresonant": (9.7e-5, 2.72e-4)}
# ttbar "contributes to less than 10% of the dominant background and is not included in the
# analysis" (seed 003 sec. II.B): an upper bound on ttbar / QCD, and table VI has no ttbar
REFERENCE_TTBAR_FRACTION_MAX = 0.10


def jet_resolution(pt):
    """Delphes hadronic jet pT resolution sigma(pT) in GeV (PHYSICS.md, Objects)."""
    import numpy as np

    pt = np.asarray(pt, dtype=np.float64)
    return np.sqrt((JER_CONSTANT * pt) ** 2 + JER_STOCHASTIC**2 * pt)


def ggf_hh_xsec_13tev(kappa_lambda):
    """NNLO sigma(ggF HH) at 13 TeV in fb as a function of kappa_lambda (PHYSICS.md, Calibration)."""
    c0, c1, c2 = GGF_HH_XSEC_13TEV
    return c0 + c1 * kappa_lambda + c2 * kappa_lambda**2


assert math.isclose(ggf_hh_xsec_13tev(1.0), GGF_HH_XSEC_SM_13TEV, rel_tol=1e-3)

# every upper-case name and the two formulas: generated, so it cannot drift from the definitions
__all__ = [name for name in dict(globals()) if name.isupper()] + ["ggf_hh_xsec_13tev", "jet_resolution"]
