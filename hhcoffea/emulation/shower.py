"""Showered samples: the emulation's hard process through Pythia 8, FastJet and the Delphes-like
detector (``hhcoffea generate ... --shower pythia``).

The fast emulation (``detector.simulate``) parametrises what a parton shower does to the b
quarks; this module does it for real, so that the parametrisation can be calibrated against it
(``benchmarks/fidelity.py``). One chunk of events goes through these steps:

1. **Hard process**: the same ``processes.HARD_PROCESSES`` draws as the fast emulation
   (resonant X -> hh, non-resonant hh at any kappa_lambda, QCD 4b, all-hadronic ttbar), boosted
   to zero transverse momentum (Pythia's initial-state shower gives the recoil), with gg
   incoming partons from the system's energy and longitudinal momentum.
2. **Les Houches events**: written as one LHEF file per chunk (numpy string operations, no
   per-event Python), with colour lines (colour-singlet hh/X production; a colour chain for
   QCD 4b; gg -> ttbar with t -> W b, W -> q q'), intermediate X, h, t, W as status-2
   resonances whose decays Pythia keeps.
3. **Pythia 8** (``pythia8mc``, Monash tune defaults): initial- and final-state showers,
   multiparton interactions, hadronisation and hadron decays (particles with c*tau > 10 mm are
   stable, as in LHC samples); ``Pythia.nextBatch`` returns the events as awkward arrays. Its
   seed comes from the chunk's random stream, so a chunk is deterministic.
4. **Jets**: anti-kT R = 0.4 (``fastjet``, all events of a chunk in one call) on the visible
   final-state particles (no neutrinos), particle-level pT > ``JET_PT_MIN_PARTICLE`` and
   |eta| < 4.5.
5. **Flavour**: cone labelling from weakly decaying hadrons (the ATLAS convention): a jet is b
   (5) if a b hadron with pT > 5 GeV lies within dR < 0.3 of its axis, else c (4) for a c
   hadron, else light (0); each hadron labels only its nearest jet.
6. **Detector**: ``detector.measure_jets`` (the fast emulation's pT resolution and angular
   smearing, no parametrised losses: the shower has the real ones) and
   ``detector._btag_bits`` (its b-tagging bitmask); jets kept above 20 GeV.
7. **MET** from neutrinos, jet mismeasurement and noise; **leptons**: isolated final-state
   electrons and muons (pT > 10, |eta| < 2.5, sum pT of other particles within dR < 0.3 below
   15% of the lepton pT).

GenPart has the fast emulation's layout and order (``processes`` module docstring): each hard
entry is taken from the Pythia record, resonances at their last copy (after the initial-state
recoil), their decay products as produced, so truth matching sees the same b quarks
(|pdgId| = 5, mother pdgId 25) as on Delphes samples. Events that Pythia rejects are skipped and
the chunk's spare hard events take their place (``SPARE_EVENTS``); every chunk has exactly the
events asked for.

Speed: about 80 events/s per core (Pythia and its awkward conversion take ~90% of it), so large
samples use ``workers`` in :func:`hhcoffea.emulation.writer.generate`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import awkward as ak
import numpy as np

from .. import constants as C
from ..columnar.kinematics import delta_phi
from .detector import MET_NOISE, _btag_bits, measure_jets
from .detector import _listoffset as listoffset
from .processes import PDG_B, PDG_G, PDG_H, PDG_T, PDG_W, HardProcess, _boost
from .xsec import SQRT_S

__all__ = ["SHOWERS", "available", "les_houches_events", "shower", "version"]

SHOWERS = ("pythia",)

# ---------------------------------------------------------------------------------------------
# Settings (not PHYSICS.md)
# ---------------------------------------------------------------------------------------------
JET_R = 0.4  # PHYSICS.md "Objects": anti-kT R = 0.4
JET_PT_MIN_PARTICLE = 10.0  # particle-level jets kept before the resolution (20 GeV after)
JET_ETA_MAX = 4.5
HADRON_LABEL_DR = 0.3  # cone labelling (ATLAS): hadrons with pT > 5 GeV within dR < 0.3
HADRON_LABEL_PT_MIN = 5.0
LEPTON_PT_MIN, LEPTON_ETA_MAX = 10.0, 2.5
LEPTON_ISOLATION_DR, LEPTON_ISOLATION_MAX = 0.3, 0.15
SPARE_EVENTS = (0.05, 20)  # extra hard events per chunk: fraction, minimum
NEUTRINOS = (12, 14, 16)
PYTHIA_SETTINGS = (
    "Beams:frameType = 4",  # Les Houches events
    "Print:quiet = on",
    "Next:numberCount = 0",
    "ParticleDecays:limitTau0 = on",  # c*tau > 10 mm stable (K0S, Lambda, ...), as in LHC samples
    "ParticleDecays:tau0Max = 10",
    "Check:event = on",
)


def available() -> bool:
    """Whether ``pythia8mc`` and ``fastjet`` can be imported (``pip install hhcoffea[shower]``)."""
    try:
        import fastjet  # noqa: F401
        import pythia8mc  # noqa: F401
    except ImportError:
        return False
    return True


def _require():
    if not available():
        raise ImportError("--shower pythia needs the pythia8mc and fastjet wheels: pip install 'hhcoffea[shower]'")


def version() -> str:
    """The shower's description written in the sidecar."""
    from importlib.metadata import version as v

    return f"pythia8mc {v('pythia8mc')} (Monash defaults, MPI on), fastjet {v('fastjet')} anti-kT R=0.4"


# ---------------------------------------------------------------------------------------------
# Les Houches events
# ---------------------------------------------------------------------------------------------
def _colours(hard: HardProcess, process: str):
    """(colour, anticolour) of every hard entry and of the two incoming gluons, (k,) each."""
    k = len(hard.pdg)
    pdg = np.array([p[0] for p in hard.pdg])
    mother = np.array(hard.mother)
    col = np.zeros(k, dtype=np.int64)
    acol = np.zeros(k, dtype=np.int64)
    quark = (np.abs(pdg) <= 6) & (pdg > 0)
    anti = (np.abs(pdg) <= 6) & (pdg < 0)
    if process == "qcd":  # g(501,502) g(503,501) -> b(503) bbar(-504) b(504) bbar(-502)
        incoming = ((501, 502), (503, 501))
        col[:] = (503, 0, 504, 0)
        acol[:] = (0, 504, 0, 502)
    elif process == "ttbar":  # g(501,502) g(502,503) -> t(501) tbar(-503); t -> b keeps the colour
        incoming = ((501, 502), (502, 503))
        top, antitop = np.flatnonzero(np.abs(pdg) == PDG_T)
        col[top], acol[antitop] = 501, 503
        for i in np.flatnonzero(np.abs(pdg) == PDG_B):
            col[i], acol[i] = col[mother[i]], acol[mother[i]]
        for tag, w in enumerate(np.flatnonzero(np.abs(pdg) == PDG_W)):  # W -> q q': a singlet pair
            kids = mother == w
            col[kids & quark], acol[kids & anti] = 504 + tag, 504 + tag
    else:  # colour-singlet production: g(501,502) g(502,501); each h -> b bbar its own singlet
        incoming = ((501, 502), (502, 501))
        for tag, h in enumerate(np.flatnonzero(pdg == PDG_H)):
            kids = mother == h
            col[kids & quark], acol[kids & anti] = 503 + tag, 503 + tag
    return incoming, col, acol


def les_houches_events(hard: HardProcess, process: str) -> str:
    """The hard events as Les Houches Event File text (version 3.0), boosted to zero pT."""
    n = hard.n
    (px, py, pz, e), mass, pdg, status, mother, final = hard.columns()
    sx, sy, sz, se = (a[:, final].sum(axis=1) for a in (px, py, pz, e))
    zero = np.zeros(n)
    px, py, pz, e = _boost((px, py, pz, e), (-sx[:, None] / se[:, None], -sy[:, None] / se[:, None], zero[:, None]))
    sz, se = pz[:, final].sum(axis=1), e[:, final].sum(axis=1)
    shat = np.sqrt(np.maximum(se * se - sz * sz, 0.0))
    e1, e2 = 0.5 * (se + sz), 0.5 * (se - sz)
    k = px.shape[1]
    incoming, col, acol = _colours(hard, process)
    # shower starting scale: half the system mass (QCD 4b: the mean b-quark pT)
    scale = np.hypot(px[:, final], py[:, final]).mean(axis=1) if process == "qcd" else 0.5 * shat

    rows = k + 2
    ids = np.empty((n, rows), dtype=np.int64)
    ids[:, :2] = PDG_G
    ids[:, 2:] = pdg
    stat = np.empty((n, rows), dtype=np.int64)
    stat[:, :2] = -1
    stat[:, 2:] = np.where(final, 1, 2)
    lhe_mother = np.where(mother[0] < 0, 1, mother[0] + 3)  # 1-based, after the two incoming
    mo1 = np.broadcast_to(np.concatenate([[0, 0], lhe_mother]), (n, rows))
    mo2 = np.broadcast_to(np.concatenate([[0, 0], np.where(mother[0] < 0, 2, mother[0] + 3)]), (n, rows))
    colour = np.broadcast_to(np.concatenate([[incoming[0][0], incoming[1][0]], col]), (n, rows))
    anticolour = np.broadcast_to(np.concatenate([[incoming[0][1], incoming[1][1]], acol]), (n, rows))
    mom = np.zeros((n, rows, 5))
    mom[:, 0, 2], mom[:, 0, 3] = e1, e1
    mom[:, 1, 2], mom[:, 1, 3] = -e2, e2
    mom[:, 2:, 0], mom[:, 2:, 1], mom[:, 2:, 2], mom[:, 2:, 3], mom[:, 2:, 4] = px, py, pz, e, mass
    ints = np.stack([ids, stat, mo1, mo2, colour, anticolour], axis=2).reshape(-1, 6)
    table = np.concatenate([ints.astype(np.float64), mom.reshape(-1, 5)], axis=1)
    fmt = "%d %d %d %d %d %d %.12e %.12e %.12e %.12e %.9e 0 9"
    import io

    buf = io.StringIO()
    np.savetxt(buf, table, fmt=fmt)
    lines = np.array(buf.getvalue().splitlines(), dtype=object).reshape(n, rows)
    text = np.char.mod(f"<event>\n{rows} 1 1 %.9e 0.0078125 0.118", scale).astype(object)
    for r in range(rows):  # the few particle lines, vectorised over events
        text = text + "\n" + lines[:, r]
    events = "\n</event>\n".join(text) + "\n</event>\n"
    beam = SQRT_S / 2
    init = f'<LesHouchesEvents version="3.0">\n<init>\n2212 2212 {beam:.1f} {beam:.1f} 0 0 0 0 3 1\n1.0 0.0 1.0 1\n</init>\n'
    return init + events + "</LesHouchesEvents>\n"


# ---------------------------------------------------------------------------------------------
# Pythia
# ---------------------------------------------------------------------------------------------
def _run_pythia(lhe_path: Path, n: int, seed: int, m_x: float | None) -> ak.Array:
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    settings = [*PYTHIA_SETTINGS, f"Beams:LHEF = {lhe_path}", "Random:setSeed = on", f"Random:seed = {seed}"]
    if m_x is not None:  # the X (pdgId 35) of the resonant sample: its mass and a narrow width
        from .processes import X_WIDTH

        settings += [f"35:m0 = {m_x}", f"35:mWidth = {X_WIDTH}", f"35:mMin = {2 * C.HIGGS_MASS}", "35:mMax = 0"]
    for s in settings:
        if not pythia.readString(s):
            raise RuntimeError(f"Pythia refused the setting {s!r}")
    if not pythia.init():
        raise RuntimeError(f"Pythia failed to initialise on {lhe_path}")
    return pythia.nextBatch(n, "skip").prt


def _flat(prt: ak.Array):
    counts = ak.to_numpy(ak.num(prt.id, axis=1))
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    cols = {f: ak.to_numpy(ak.flatten(prt[f])) for f in ("id", "status", "mother1", "daughter1", "daughter2")}
    for f in ("px", "py", "pz", "e"):
        cols[f] = ak.to_numpy(ak.flatten(prt.p[f]))
    cols["m"] = ak.to_numpy(ak.flatten(prt.m))
    return counts, starts, cols


def _last_copy(local, starts, cols, through_branchings=False):
    """Follow a particle down its copies (a single daughter, d2 = d1 or 0, with the same pdgId)
    to the last one; with ``through_branchings`` also through emissions (a daughter with the
    same pdgId among two or three: a W radiating a photon, a top a gluon), which is how a
    resonance reaches its decay.

    ``local``: indices within each event's record; ``starts``: where each event's record begins
    in the flat columns. Vectorised over events; chains are a few steps long."""
    local = local.copy()
    size = len(cols["id"])
    for _ in range(500):
        g = starts + local
        d1, d2 = cols["daughter1"][g], cols["daughter2"][g]
        own = cols["id"][g]
        nxt = np.full(len(local), -1, dtype=np.int64)
        copy = ((d1 == d2) | (d2 == 0)) & (d1 > 0)
        same = copy & (cols["id"][np.minimum(starts + d1, size - 1)] == own)
        nxt[same] = d1[same]
        if through_branchings:
            for r in range(3):
                cand = d1 + r
                ok = (nxt < 0) & (d1 > 0) & (cand <= d2) & (cols["id"][np.minimum(starts + cand, size - 1)] == own)
                nxt[ok] = cand[ok]
        step = nxt >= 0
        if not step.any():
            return local
        local[step] = nxt[step]
    raise RuntimeError("copy chain longer than 500 entries in Pythia's record")


def _truth(hard: HardProcess, counts, starts, cols):
    """GenPart of the hard entries, in the fast emulation's order, from the Pythia record."""
    n = len(counts)
    k = len(hard.pdg)
    mother = np.array(hard.mother)
    final = np.asarray(hard.final)
    local = np.zeros((n, k), dtype=np.int64)
    top_rank = 0
    pdg_hard = hard.columns()[2]
    for j in range(k):  # the few hard entries, vectorised over events
        if mother[j] < 0:  # 0 system, 1-2 beams, 3-4 incoming, then the outgoing in LHE order
            local[:, j] = 5 + top_rank
            top_rank += 1
        else:  # among the decay products of the mother's last copy, the k-th with this pdgId
            # (k = earlier siblings with the same pdgId: X -> h h takes the first, then the second)
            parent = starts + local[:, mother[j]]
            d1, d2 = cols["daughter1"][parent], cols["daughter2"][parent]
            siblings = [i for i in range(j) if mother[i] == mother[j]]
            rank = (pdg_hard[:, siblings] == pdg_hard[:, j : j + 1]).sum(axis=1) if siblings else np.zeros(n, dtype=np.int64)
            found = np.full(n, -1, dtype=np.int64)
            seen = np.zeros(n, dtype=np.int64)
            for r in range(4):  # two- or three-body decays
                cand = d1 + r
                same = (cand <= d2) & (cols["id"][starts + np.minimum(cand, counts - 1)] == pdg_hard[:, j])
                ok = (found < 0) & same & (seen == rank)
                found[ok] = cand[ok]
                seen += same
            local[:, j] = np.maximum(found, 0)
        if not final[j]:  # a resonance: where it decays
            local[:, j] = _last_copy(local[:, j], starts, cols, through_branchings=True)
        elif mother[j] < 0:  # a hard parton from the beams: after the initial-state recoil
            local[:, j] = _last_copy(local[:, j], starts, cols)
    index = starts[:, None] + local
    px, py, pz = (cols[f][index] for f in ("px", "py", "pz"))
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(pz / pt)
    phi = np.arctan2(py, px)
    _, _, pdg, status, mom, _ = hard.columns()
    got = cols["id"][index]
    if not np.array_equal(got, pdg):
        raise RuntimeError("Pythia's record does not follow the hard process (pdgId mismatch)")
    counts_g = np.full(n, k)
    return listoffset(
        {
            "pt": pt.ravel().astype(np.float32),
            "eta": eta.ravel().astype(np.float32),
            "phi": phi.ravel().astype(np.float32),
            "mass": np.asarray(cols["m"][index]).ravel().astype(np.float32),
            "pdgId": got.ravel().astype(np.int32),
            "status": status[:n].ravel().astype(np.int32),
            "genPartIdxMother": mom[:n].ravel().astype(np.int32),
        },
        counts_g,
    )


def _heavy_flavour(pdg):
    """Heaviest quark of a hadron from its pdgId (baryons: thousands digit; mesons: hundreds)."""
    a = np.abs(pdg)
    baryon = (a // 1000) % 10
    return np.where(baryon > 0, baryon, (a // 100) % 10)


def _weak_hadrons(cols, counts, starts):
    """Boolean masks of weakly decaying b and c hadrons (no hadron of the same flavour below)."""
    pdg = cols["id"]
    hadron = (np.abs(cols["status"]) >= 81) & ((np.abs(pdg) // 10) % 10 > 0) & (np.abs(pdg) > 100)
    flav = np.where(hadron, _heavy_flavour(pdg), 0)
    out = {}
    for q in (5, 4):
        is_q = flav == q
        parent = np.repeat(starts, counts) + np.maximum(cols["mother1"], 0)
        not_last = np.zeros(len(pdg), dtype=bool)
        child = np.flatnonzero(is_q & (cols["mother1"] > 0))
        not_last[parent[child][is_q[parent[child]]]] = True
        out[q] = is_q & ~not_last
    return out


def _jet_flavour(jet_eta, jet_phi, jet_counts, hadrons):
    """Cone label of each (flat) jet: 5 / 4 / 0; each hadron labels its nearest jet only."""
    label = np.zeros(len(jet_eta), dtype=np.int32)
    jet_starts = np.cumsum(jet_counts) - jet_counts
    width = max(int(jet_counts.max()) if len(jet_counts) else 0, 1)
    local = np.arange(width)
    valid = local[None, :] < jet_counts[:, None]
    flat_index = np.where(valid, jet_starts[:, None] + local[None, :], 0)
    eta_block = np.where(valid, jet_eta[flat_index], np.nan)
    phi_block = np.where(valid, jet_phi[flat_index], np.nan)
    for q in (4, 5):  # b after c: b wins
        evt, h_eta, h_phi = hadrons[q]
        if evt.size == 0:
            continue
        dr = np.hypot(eta_block[evt] - h_eta[:, None], delta_phi(phi_block[evt], h_phi[:, None]))
        dr = np.where(np.isfinite(dr), dr, np.inf)
        nearest = np.argmin(dr, axis=1)
        ok = dr[np.arange(evt.size), nearest] < HADRON_LABEL_DR
        label[flat_index[evt[ok], nearest[ok]]] = q
    return label


def shower(rng, hard: HardProcess, process: str, working_point: str, m_x: float | None = None, spare: HardProcess | None = None) -> dict:
    """One chunk of showered events, in the layout ``detector.simulate`` writes.

    ``hard`` has the chunk's events; ``spare`` (optional) more hard events of the same process
    that replace those Pythia rejects. Draws the Pythia seed and the detector smearing from
    ``rng`` in a fixed order (determinism).
    """
    _require()
    import fastjet

    n = hard.n
    both = hard if spare is None else _concat(hard, spare)
    seed = int(rng.integers(1, 900_000_000))
    with tempfile.TemporaryDirectory(prefix="hhcoffea-lhe-") as tmp:
        lhe = Path(tmp) / "events.lhe"
        lhe.write_text(les_houches_events(both, process))
        with open(os.devnull, "w") as devnull, _quiet_stdout(devnull):
            prt = _run_pythia(lhe, n, seed, m_x)
    if len(prt) < n:
        raise RuntimeError(f"Pythia showered only {len(prt)} of {n} events (too many rejected)")
    # which hard events Pythia kept: the record's hard entries follow the LHE order; match
    # them to the hard events by the first outgoing particle's longitudinal momentum
    counts, starts, cols = _flat(prt)
    kept = _kept_events(both, starts, cols)
    hard_kept = _take(both, kept)
    genpart = _truth(hard_kept, counts, starts, cols)

    evt = np.repeat(np.arange(n), counts)
    aid = np.abs(cols["id"])
    final = cols["status"] > 0
    visible = final & ~np.isin(aid, NEUTRINOS)
    pt_all = np.hypot(cols["px"], cols["py"])
    with np.errstate(divide="ignore", invalid="ignore"):
        eta_all = np.arcsinh(cols["pz"] / pt_all)
    phi_all = np.arctan2(cols["py"], cols["px"])

    # --- anti-kT R = 0.4 on the visible final state, every event of the chunk in one call
    vis_counts = np.bincount(evt[visible], minlength=n)
    particles = ak.unflatten(
        ak.zip({f: cols[src][visible] for f, src in (("px", "px"), ("py", "py"), ("pz", "pz"), ("E", "e"))}),
        vis_counts,
    )
    with open(os.devnull, "w") as devnull, _quiet_stdout(devnull):  # FastJet's banner
        sequence = fastjet.ClusterSequence(particles, fastjet.JetDefinition(fastjet.antikt_algorithm, JET_R))
        jets = sequence.inclusive_jets(min_pt=JET_PT_MIN_PARTICLE)
    jcounts = ak.to_numpy(ak.num(jets, axis=1))
    jx, jy, jz, je = (ak.to_numpy(ak.flatten(jets[f])) for f in ("px", "py", "pz", "E"))
    jpt = np.hypot(jx, jy)
    jeta = np.arcsinh(jz / jpt)
    jphi = np.arctan2(jy, jx)
    jmass = np.sqrt(np.maximum(je * je - jx * jx - jy * jy - jz * jz, 0.0))
    jevt = np.repeat(np.arange(n), jcounts)
    # pT order within each event (fastjet's inclusive jets are unordered)
    order = np.lexsort((-jpt, jevt))
    jpt, jeta, jphi, jmass = jpt[order], jeta[order], jphi[order], jmass[order]

    # --- flavour from weakly decaying b/c hadrons
    weak = _weak_hadrons(cols, counts, starts)
    hadrons = {}
    for q, mask in weak.items():
        sel = mask & (pt_all > HADRON_LABEL_PT_MIN)
        hadrons[q] = (evt[sel], eta_all[sel], phi_all[sel])
    flav = _jet_flavour(jeta, jphi, jcounts, hadrons)

    # --- detector: resolution, angles, acceptance, b-tagging
    pt_m, eta_m, phi_m, mass_m = measure_jets(rng, jpt, jeta, jphi, jmass)
    in_calo = np.abs(eta_m) < JET_ETA_MAX
    keep = in_calo & (pt_m >= C.JET_PT_CONSIDERED)
    # MET: neutrinos + jet mismeasurement (particle-level - measured) + noise
    nu = final & np.isin(aid, NEUTRINOS)
    lost = np.where(in_calo, jpt - pt_m, jpt)
    noise = rng.standard_normal((2, n)) * MET_NOISE
    met_x = np.bincount(evt[nu], weights=cols["px"][nu], minlength=n) + np.bincount(jevt, weights=lost * np.cos(jphi), minlength=n) + noise[0]
    met_y = np.bincount(evt[nu], weights=cols["py"][nu], minlength=n) + np.bincount(jevt, weights=lost * np.sin(jphi), minlength=n) + noise[1]
    # re-order after smearing: measured pT order
    sel = np.flatnonzero(keep)
    order2 = sel[np.lexsort((-pt_m[sel], jevt[sel]))]
    jet_count = np.bincount(jevt[sel], minlength=n)
    btag = _btag_bits(rng.uniform(0.0, 1.0, order2.size), flav[order2], eta_m[order2], working_point)
    jets_out = listoffset(
        {
            "pt": pt_m[order2].astype(np.float32),
            "eta": eta_m[order2].astype(np.float32),
            "phi": phi_m[order2].astype(np.float32),
            "mass": mass_m[order2].astype(np.float32),
            "btag": btag,
            "hadronFlavour": flav[order2].astype(np.int32),
        },
        jet_count,
    )
    out = {"Jet": jets_out, "GenPart": genpart}
    out["MET_pt"] = np.hypot(met_x, met_y).astype(np.float32)
    out["MET_phi"] = np.arctan2(met_y, met_x).astype(np.float32)
    for name, pdg_lepton in (("Electron", 11), ("Muon", 13)):
        out[name] = _isolated_leptons(pdg_lepton, evt, n, cols, final, visible, pt_all, eta_all, phi_all)
    out["genWeight"] = np.ones(n, dtype=np.float32)
    return out


def _isolated_leptons(pdg_lepton, evt, n, cols, final, visible, pt, eta, phi):
    lep = np.flatnonzero(final & (np.abs(cols["id"]) == pdg_lepton) & (pt > LEPTON_PT_MIN) & (np.abs(eta) < LEPTON_ETA_MAX))
    iso = np.zeros(lep.size)
    if lep.size:
        # the other visible particles of the lepton's event within dR < 0.3 (one block per lepton)
        vis = np.flatnonzero(visible)
        vis_evt = evt[vis]
        lo = np.searchsorted(vis_evt, evt[lep], "left")
        hi = np.searchsorted(vis_evt, evt[lep], "right")
        width = int((hi - lo).max())
        pos = lo[:, None] + np.arange(width)[None, :]
        ok = pos < hi[:, None]
        other = vis[np.where(ok, pos, 0)]
        dr = np.hypot(eta[other] - eta[lep][:, None], delta_phi(phi[other], phi[lep][:, None]))
        inside = ok & (dr < LEPTON_ISOLATION_DR) & (other != lep[:, None])
        iso = np.where(inside, pt[other], 0.0).sum(axis=1)
    lep = lep[iso < LEPTON_ISOLATION_MAX * pt[lep]]
    lep = lep[np.lexsort((-pt[lep], evt[lep]))]
    return listoffset(
        {
            "pt": pt[lep].astype(np.float32),
            "eta": eta[lep].astype(np.float32),
            "phi": phi[lep].astype(np.float32),
            "charge": np.where(cols["id"][lep] > 0, -1, 1).astype(np.int32),
        },
        np.bincount(evt[lep], minlength=n),
    )


# ---------------------------------------------------------------------------------------------
# bookkeeping of the hard events
# ---------------------------------------------------------------------------------------------
def _concat(a: HardProcess, b: HardProcess) -> HardProcess:
    out = HardProcess(a.n + b.n)
    for j in range(len(a.p4)):
        p4 = tuple(np.concatenate([x, y]) for x, y in zip(a.p4[j], b.p4[j]))
        out.add(p4, np.concatenate([a.mass[j], b.mass[j]]), np.concatenate([a.pdg[j], b.pdg[j]]),
                a.status[j], a.mother[j], a.final[j])
    return out


def _take(h: HardProcess, rows) -> HardProcess:
    out = HardProcess(len(rows))
    for j in range(len(h.p4)):
        out.add(tuple(c[rows] for c in h.p4[j]), h.mass[j][rows], h.pdg[j][rows], h.status[j], h.mother[j], h.final[j])
    return out


def _kept_events(both: HardProcess, starts, cols) -> np.ndarray:
    """Rows of ``both`` that Pythia showered, in order. Pythia reads the file in order and skips
    the events it rejects, so record event i is hard row i + s_i with s_i non-decreasing; s_i is
    found from the longitudinal momentum of the incoming gluons (Pythia keeps it; it rescales
    their energies slightly)."""
    (px, py, pz, e), *_, final = both.columns()
    lhe_pz = pz[:, final].sum(axis=1)
    lhe_e = e[:, final].sum(axis=1)
    record_pz = cols["pz"][starts + 3] + cols["pz"][starts + 4]
    n, spare = len(starts), both.n - len(starts)
    shifts = np.arange(spare + 1)
    rows = np.minimum(np.arange(n)[:, None] + shifts[None, :], both.n - 1)
    distance = np.abs(lhe_pz[rows] - record_pz[:, None]) / lhe_e[rows]
    shift = shifts[np.argmin(distance, axis=1)]
    best = distance[np.arange(n), shift]
    if np.any(np.diff(shift) < 0) or np.any(best > 1e-7):
        raise RuntimeError("could not match Pythia's events to the hard events")
    return np.arange(n) + shift


class _quiet_stdout:
    """Redirect the C-level stdout (Pythia's and FastJet's banners) while the shower runs."""

    def __init__(self, sink):
        self.sink = sink

    def __enter__(self):
        import sys

        sys.stdout.flush()
        self.saved = os.dup(1)
        os.dup2(self.sink.fileno(), 1)
        return self

    def __exit__(self, *exc):
        os.dup2(self.saved, 1)
        os.close(self.saved)
        return False
