"""SPA-Net: event file, HDF5 export against the truth, our torch model's symmetries, the decoder
against brute force, ONNX against torch, a short training, an official-interface ONNX model
through the pairer, and the processor hook for pairers that take all jets."""

from __future__ import annotations

import itertools
import math
import pickle

import awkward as ak
import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
h5py = pytest.importorskip("h5py")
pytest.importorskip("onnxruntime")

from hhcoffea.ml.spanet.decoding import decode_assignments  # noqa: E402
from hhcoffea.ml.spanet.event_info import EventInfo, default_event_info  # noqa: E402
from hhcoffea.ml.spanet.model import SpanetConfig, SpanetModel, spanet_loss  # noqa: E402

DATA = {}


# --- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small job (resonant + non-resonant signal + QCD) exported with two chunk sizes."""
    from hhcoffea.workflow.job import load_job
    from hhcoffea.workflow.spanet_export import run_spanet_export

    base = tmp_path_factory.mktemp("spanet_export")
    job_text = {
        "name": "t", "output": "out",
        "samples": {"directory": "data", "seed": 3, "generate": {
            "X500": {"process": "resonant", "m_x": 500.0, "n_events": 12000},
            "hh_k5": {"process": "nonresonant", "kappa_lambda": 5.0, "n_events": 8000},
            "qcd": {"process": "qcd", "n_events": 20000}}},
        "executor": {"name": "iterative", "chunksize": 2500},
        "export": {"spanet": {"n_jets": 6, "test_fraction": 0.25, "seed": 4, "global": ["kappa_lambda"],
                              "background_values": {"kappa_lambda": [-1.0, 7.0]},
                              "datasets": {"X500": {}, "hh_k5": {"weight": 2.0}, "qcd": {"fraction": 0.5}}}},
    }
    (base / "job.yaml").write_text(yaml.safe_dump(job_text))
    report = run_spanet_export(load_job(base / "job.yaml", plugins=False), base / "exp", status=False)
    job_text["executor"]["chunksize"] = 7001
    (base / "job2.yaml").write_text(yaml.safe_dump(job_text))
    run_spanet_export(load_job(base / "job2.yaml", plugins=False), base / "exp2", status=False)
    return base, report


def _h5(path):
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda name, obj: out.__setitem__(name, obj[:]) if isinstance(obj, h5py.Dataset) else None)
        out["datasets"] = [d.decode() for d in f["INFO"].attrs["datasets"]]
    return out


# --- event file --------------------------------------------------------------------------------
def test_event_file_uses_spanet_keys_and_round_trips(tmp_path):
    info = default_event_info(3, global_features=("kappa_lambda",))
    raw = yaml.safe_load(info.to_yaml())
    assert set(raw) == {"INPUTS", "EVENT", "PERMUTATIONS", "REGRESSIONS", "CLASSIFICATIONS"}
    assert list(raw["INPUTS"]["SEQUENTIAL"]["Source"]) == ["pt", "eta", "sinphi", "cosphi", "mass", "btag"]
    assert raw["INPUTS"]["SEQUENTIAL"]["Source"]["pt"] == "log_normalize"
    assert raw["INPUTS"]["GLOBAL"] == {"GLOBAL": {"kappa_lambda": "normalize"}}
    assert raw["EVENT"]["h3"] == [{"b1": "Source"}, {"b2": "Source"}]
    assert raw["PERMUTATIONS"]["EVENT"] == [["h1", "h2", "h3"]]
    assert raw["CLASSIFICATIONS"] == {"EVENT": ["signal"]}
    back = EventInfo.read(info.write(tmp_path / "e.yaml"))
    assert back.particle_names == ("h1", "h2", "h3") and back.global_features[0].name == "kappa_lambda"
    assert [f.log for f in back.jet_features] == [True, False, False, False, True, False]


def test_event_file_of_the_official_style_is_read_and_unsupported_topologies_refused():
    # the structure of SPANet's own ttbar example: plain product lists, no sources
    text = """
INPUTS:
  SEQUENTIAL:
    Source: {mass: log_normalize, pt: log_normalize, eta: normalize, phi: normalize, btag: none}
  GLOBAL:
EVENT:
  t1: [q1, q2, b]
  t2: [q1, q2, b]
PERMUTATIONS:
  EVENT: [[t1, t2]]
  t1: [[q1, q2]]
CLASSIFICATIONS:
"""
    info = EventInfo.from_yaml(text, "ttbar.yaml")
    assert info.particles == {"t1": ("q1", "q2", "b"), "t2": ("q1", "q2", "b")}
    assert [f.name for f in info.jet_features] == ["mass", "pt", "eta", "phi", "btag"]
    with pytest.raises(ValueError, match="ttbar.yaml: EVENT/t1 must decay to two jets"):
        info.check_supported()
    with pytest.raises(ValueError, match="needs the keys INPUTS and EVENT"):
        EventInfo.from_yaml("EVENT: {}", "x.yaml")


# --- export ------------------------------------------------------------------------------------
def test_export_targets_match_the_truth_event_by_event(exported):
    """Every written target is recomputed from the ROOT file with plain Python per event."""
    import uproot

    base, report = exported
    data = _h5(base / "exp" / "training.h5")
    test = _h5(base / "exp" / "testing.h5")
    assert data["datasets"] == ["X500", "hh_k5", "qcd"]
    n_jets = data["INPUTS/Source/MASK"].shape[1]
    assert n_jets == 6
    checked = 0
    for code, name in enumerate(data["datasets"]):
        with uproot.open(base / "data" / f"{name}.root") as f:
            tree = f["Events"]
            arrays = tree.arrays(["Jet_pt", "Jet_eta", "Jet_phi", "Jet_btag", "GenPart_pdgId",
                                  "GenPart_genPartIdxMother", "GenPart_eta", "GenPart_phi"], library="np")
        rows = np.flatnonzero(data["INFO/dataset"] == code)
        written = set(data["INFO/entry"][rows]) | set(test["INFO/entry"][test["INFO/dataset"] == code])
        assert len(written) == report["counts"][name]["written"] == len(rows) + (test["INFO/dataset"] == code).sum()
        for row in rows[:400]:
            e = data["INFO/entry"][row]
            pt, eta, phi = arrays["Jet_pt"][e], arrays["Jet_eta"][e], arrays["Jet_phi"][e]
            keep = np.flatnonzero(pt >= 20.0)
            order = keep[np.argsort(-pt[keep], kind="stable")]
            k = min(len(order), n_jets)
            assert np.allclose(data["INPUTS/Source/pt"][row, :k], pt[order[:k]], rtol=1e-6)
            assert data["INPUTS/Source/MASK"][row].sum() == k and data["INFO/n_jets"][row] == len(order)
            assert data["CLASSIFICATIONS/EVENT/signal"][row] == (name != "qcd")
            assert data["TARGETS/h1/WEIGHT"][row] == (2.0 if name == "hh_k5" else 1.0)
            kl = data["INPUTS/GLOBAL/kappa_lambda"][row]
            assert kl == {"X500": kl, "hh_k5": 5.0}.get(name, kl) and (name != "qcd" or kl in (-1.0, 7.0))
            got = {tuple(sorted((data[f"TARGETS/{h}/b1"][row], data[f"TARGETS/{h}/b2"][row]))) for h in ("h1", "h2")}
            if name == "qcd":
                assert got == {(-1, -1)}
                checked += 1
                continue
            pdg, mother = arrays["GenPart_pdgId"][e], arrays["GenPart_genPartIdxMother"][e]
            higgs = [i for i in range(len(pdg)) if pdg[i] == 25]
            expected = set()
            for h in higgs:
                quarks = [q for q in range(len(pdg)) if abs(pdg[q]) == 5 and mother[q] == h]
                slots = []
                for q in quarks:
                    dr = [math.hypot(eta[j] - arrays["GenPart_eta"][e][q],
                                     (phi[j] - arrays["GenPart_phi"][e][q] + math.pi) % (2 * math.pi) - math.pi)
                          for j in order]
                    inside = [i for i, d in enumerate(dr) if d < 0.4]
                    assert len(inside) <= 1, "an ambiguous event was written"
                    slots.append(inside[0] if inside and inside[0] < n_jets else -1)
                expected.add(tuple(sorted(slots)) if -1 not in slots else (-1, -1))
            assert got == expected, (name, e)
            checked += 1
    assert checked > 500
    counts = report["counts"]
    assert counts["X500"]["ambiguous"] + counts["hh_k5"]["ambiguous"] > 0  # the drop is exercised
    assert counts["X500"]["written"] == counts["X500"]["selected"] - counts["X500"]["ambiguous"] - counts["X500"]["shared_jet"]
    assert 0.4 < counts["qcd"]["sampled"] / counts["qcd"]["selected"] < 0.6  # fraction 0.5


def test_export_is_independent_of_chunking(exported):
    base, _ = exported
    a, b = _h5(base / "exp" / "training.h5"), _h5(base / "exp2" / "training.h5")
    assert a.keys() == b.keys()
    for key in a:
        if key != "datasets":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# --- model -------------------------------------------------------------------------------------
def _random_batch(b=64, n=8, f=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, f, generator=g)
    counts = torch.randint(4, n + 1, (b,), generator=g)
    mask = torch.arange(n)[None, :] < counts[:, None]
    return x * mask[..., None], mask


def test_assignment_is_symmetric_masked_normalised_and_permutes_with_the_jets():
    torch.manual_seed(1)
    model = SpanetModel(SpanetConfig(hidden_dim=16, num_encoder_layers=2, num_branch_encoder_layers=1,
                                     num_attention_heads=2, n_globals=1)).eval()
    x, mask = _random_batch()
    g = torch.randn(len(x), 1)
    with torch.no_grad():
        logp, det, cls = model(x, mask, g)
        p = logp.exp()
        assert torch.allclose(p, p.transpose(2, 3), atol=1e-7)
        assert torch.all(torch.diagonal(p, dim1=2, dim2=3) == 0)
        assert torch.allclose(p.sum((2, 3)), torch.ones(p.shape[:2]), atol=1e-5)
        padded = ~mask
        assert torch.all(p.masked_select(padded[:, None, :, None].expand_as(p)) == 0)
        # shuffle every event's jets (padding included) with its own permutation
        perm = torch.stack([torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(i)) for i in range(len(x))])
        xs = torch.gather(x, 1, perm[..., None].expand_as(x))
        ms = torch.gather(mask, 1, perm)
        logp2, det2, cls2 = model(xs, ms, g)
        rows = torch.arange(len(x))[:, None, None, None]
        expected = logp[rows, torch.arange(2)[None, :, None, None], perm[:, None, :, None], perm[:, None, None, :]]
        real = (ms[:, None, :, None] & ms[:, None, None, :]).expand_as(logp2)
        assert torch.allclose(logp2[real], expected[real], atol=1e-4)
        assert torch.allclose(det2, det, atol=1e-5) and torch.allclose(cls2, cls, atol=1e-5)


def test_loss_takes_the_best_higgs_order_and_masks_unreconstructable_higgs():
    b, n = 3, 5
    logp = torch.full((b, 2, n, n), -50.0)
    logp[:, 0, 0, 1] = logp[:, 0, 1, 0] = math.log(0.5)  # particle 0 certain of (0, 1)
    logp[:, 1, 2, 3] = logp[:, 1, 3, 2] = math.log(0.5)  # particle 1 certain of (2, 3)
    det = torch.full((b, 2), 20.0)
    swapped = torch.tensor([[[2, 3], [0, 1]]] * b)
    loss = spanet_loss((logp, det, None), swapped, None, detection_loss_scale=0.0)
    assert float(loss["assignment"]) < 1e-6  # h1 <-> h2 is the same answer
    wrong = torch.tensor([[[0, 2], [1, 3]]] * b)
    assert float(spanet_loss((logp, det, None), wrong, None, detection_loss_scale=0.0)["assignment"]) > 10
    partial = torch.tensor([[[-1, -1], [0, 1]]] * b)  # h1 unreconstructable: only (0, 1) counts
    out = spanet_loss((logp, det, None), partial, None)
    assert float(out["assignment"]) < 1e-6
    assert float(out["detection"]) > 5  # but the model says both are there
    no_partial = spanet_loss((logp, det, None), torch.tensor([[[-1, -1], [0, 2]]] * b), None, partial_events=False)
    assert float(no_partial["assignment"]) == 0.0


# --- decoding ----------------------------------------------------------------------------------
def _brute_force(scores, mask):
    """Among all complete non-overlapping assignments, the one whose cell values, sorted
    descending, are lexicographically largest: what greedy highest-cell-first picks."""
    h, n, _ = scores.shape
    jets = [j for j in range(n) if mask[j]]
    best, best_key = None, None
    for combo in itertools.permutations(itertools.combinations(jets, 2), h):
        used = [j for pair in combo for j in pair]
        if len(set(used)) != len(used):
            continue
        key = sorted((scores[p, i, j] for p, (i, j) in enumerate(combo)), reverse=True)
        if best_key is None or key > best_key:
            best, best_key = combo, key
    return np.array(best)


@pytest.mark.parametrize("n_higgs,n_jets", [(2, 4), (2, 7), (3, 7)])
def test_decoder_equals_brute_force_on_random_tensors(n_higgs, n_jets):
    rng = np.random.default_rng(n_higgs * 10 + n_jets)
    n = 150
    raw = rng.random((n, n_higgs, n_jets, n_jets))
    scores = raw + raw.transpose(0, 1, 3, 2)  # symmetric, as the model's
    mask = np.ones((n, n_jets), bool)
    counts = rng.integers(2 * n_higgs, n_jets + 1, n)
    mask &= np.arange(n_jets)[None, :] < counts[:, None]
    pairs, values = decode_assignments(scores, mask)
    for e in range(n):
        expected = _brute_force(scores[e], mask[e])
        np.testing.assert_array_equal(pairs[e], np.sort(expected, axis=1))
        assert np.allclose(values[e], [scores[e, p, i, j] for p, (i, j) in enumerate(expected)])


def test_decoder_ties_go_to_the_first_particle_and_first_cell_and_short_events_get_none():
    scores = np.ones((2, 2, 5, 5))
    mask = np.array([[True] * 5, [True, True, True, False, False]])
    pairs, _ = decode_assignments([scores[:, 0], scores[:, 1]], mask)
    np.testing.assert_array_equal(pairs[0], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(pairs[1], [[0, 1], [-1, -1]])  # three jets: one Higgs only


# --- ONNX --------------------------------------------------------------------------------------
def _save_checkpoint(path, model, info):
    torch.save({"model_state": model.state_dict(), "config": model.config.to_dict(), "event_info": info.to_yaml(),
                "epoch": 0, "options": {}, "history": []}, path)


@pytest.mark.parametrize("with_globals", [False, True])
def test_onnx_export_matches_torch_and_carries_the_event_file(tmp_path, with_globals):
    import onnxruntime as ort

    from hhcoffea.ml.spanet.onnx_export import METADATA_EVENT_INFO, export_onnx

    info = default_event_info(2, global_features=("kappa_lambda",) if with_globals else ())
    torch.manual_seed(2)
    model = SpanetModel(SpanetConfig(hidden_dim=16, num_attention_heads=2, n_globals=1 if with_globals else 0)).eval()
    model.set_normalisation(torch.linspace(0.5, 1.5, 6), torch.linspace(1.0, 2.0, 6),
                            torch.tensor([3.0]), torch.tensor([4.0]))
    _save_checkpoint(tmp_path / "c.pt", model, info)
    path = export_onnx(tmp_path / "c.pt", tmp_path / "m.onnx", n_jets=10)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == (["Source_data", "Source_mask", "GLOBAL_data"] if with_globals
                     else ["Source_data", "Source_mask"])
    assert [o.name for o in session.get_outputs()] == [
        "h1_assignment_probability", "h2_assignment_probability", "h1_detection_probability",
        "h2_detection_probability", "EVENT/signal"]
    meta = session.get_modelmeta().custom_metadata_map
    assert EventInfo.from_yaml(meta[METADATA_EVENT_INFO]).particle_names == ("h1", "h2")
    for n_jets in (10, 7):  # the jet axis is dynamic in our exports
        x, mask = _random_batch(b=33, n=n_jets, seed=n_jets)
        g = torch.randn(33, 1)
        feed = {"Source_data": x.numpy(), "Source_mask": mask.numpy()}
        if with_globals:
            feed.update(GLOBAL_data=g[:, None, :].numpy())
        got = session.run(None, feed)
        with torch.no_grad():
            logp, det, cls = model(x, mask, g if with_globals else None)
        want = [logp[:, 0].exp(), logp[:, 1].exp(), torch.sigmoid(det[:, 0]), torch.sigmoid(det[:, 1]),
                torch.softmax(cls, -1)]
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b.numpy(), atol=1e-5, rtol=0)


class _OfficialStyle(torch.nn.Module):
    """Stands for an official export: fixed N (a constant N x N diagonal mask in the graph),
    mean/std normalisation inside, no log. Feature order: mass, pt, eta, sin_phi, cos_phi, btag.
    h1 prefers the two hardest jets, h2 jets near pT = 60 GeV in log(pT + 1)."""

    def __init__(self, n_jets, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.register_buffer("offdiag", (1 - torch.eye(n_jets))[None].bool())
        self.target = (math.log(61.0) - mean[1]) / std[1]

    def forward(self, source_data, source_mask):
        z = (source_data - self.mean) / self.std
        s1 = z[:, :, 1]
        s2 = -torch.abs(z[:, :, 1] - self.target)
        valid = source_mask[:, :, None] & source_mask[:, None, :] & self.offdiag
        outs = []
        for s in (s1, s2):
            logits = (s[:, :, None] + s[:, None, :]).masked_fill(~valid, -1e9)
            b, n, _ = logits.shape
            outs.append(torch.softmax(logits.reshape(b, n * n), 1).reshape(b, n, n))
        det = torch.ones(source_data.shape[0])
        return outs[0], outs[1], 0.3 * det, 0.6 * det, torch.stack([det * 0.5, det * 0.5], 1)


def _official_expected(jets, n_jets, mean, std):
    """Per event in plain Python: the pairs the official-style model and SPANet's decoding give."""
    target = (math.log(61.0) - mean[1]) / std[1]
    out = []
    for event in ak.to_list(jets):
        pts = [j["pt"] for j in event]
        order = sorted(range(len(pts)), key=lambda i: -pts[i])[:n_jets]
        z = [(math.log(pts[i] + 1) - mean[1]) / std[1] for i in order]
        scores = [[z[a] + z[b] for b in range(len(z))] for a in range(len(z))], \
                 [[-abs(z[a] - target) - abs(z[b] - target) for b in range(len(z))] for a in range(len(z))]
        free, chosen = set(range(len(z))), [None, None]
        for _ in range(2):
            best = None
            for p in range(2):
                if chosen[p] is not None:
                    continue
                for a in range(len(z)):
                    for b in range(len(z)):
                        if a != b and a in free and b in free and (best is None or scores[p][a][b] > best[0]):
                            best = (scores[p][a][b], p, a, b)
            if best is None:
                break
            _, p, a, b = best
            chosen[p] = sorted((order[a], order[b]))
            free -= {a, b}
        out.append(chosen)
    return out


def test_official_interface_onnx_is_decoded_like_spanet(tmp_path):
    from hhcoffea.plugins.spanet import SpanetPairer

    n_jets = 8
    mean = [3.0, 4.2, 0.0, 0.0, 0.0, 0.0]
    std = [0.8, 0.6, 1.0, 1.0, 1.0, 1.0]
    model = _OfficialStyle(n_jets, mean, std).eval()
    example = (torch.zeros(2, n_jets, 6), torch.ones(2, n_jets, dtype=torch.bool))
    path = tmp_path / "official.onnx"
    names_out = ["h1_assignment_probability", "h2_assignment_probability", "h1_detection_probability",
                 "h2_detection_probability", "EVENT/signal"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, str(path), input_names=["Source_data", "Source_mask"], output_names=names_out,
                          dynamic_axes={"Source_data": {0: "batch_size", 1: "num_Source"},
                                        "Source_mask": {0: "batch_size", 1: "num_Source"}},
                          opset_version=17, dynamo=False)
    event_file = tmp_path / "official.yaml"
    event_file.write_text("""
INPUTS:
  SEQUENTIAL:
    Source: {mass: log_normalize, pt: log_normalize, eta: normalize, sin_phi: normalize, cos_phi: normalize, btag: none}
  GLOBAL:
EVENT:
  h1: [b1, b2]
  h2: [b1, b2]
PERMUTATIONS:
  EVENT: [[h1, h2]]
  h1: [[b1, b2]]
  h2: [[b1, b2]]
CLASSIFICATIONS:
  EVENT: [signal]
""")
    rng = np.random.default_rng(5)
    counts = rng.integers(3, 13, 300)  # fewer and more jets than the model's 8
    pt = np.sort(rng.uniform(20, 300, counts.sum()))[::-1].copy()
    rng.shuffle(pt)
    jets = ak.unflatten(ak.zip({"pt": pt, "eta": rng.normal(0, 1.5, len(pt)), "phi": rng.uniform(-3, 3, len(pt)),
                                "mass": rng.uniform(5, 20, len(pt)), "btag": rng.random(len(pt)) < 0.5}), counts)
    jets = jets[ak.argsort(jets.pt, ascending=False)]  # pT-ordered, as the processor passes them
    pairer = SpanetPairer(model=str(path), event_info=str(event_file), batch_size=64)
    assert pairer.n_jets == n_jets  # probed from the graph, not the default 10
    result = pairer(jets)
    expected = _official_expected(jets, n_jets, mean, std)
    for e, want in enumerate(expected):
        if None in want:
            assert not result.accepted[e] and (result.higgs_jet_indices[e] == -1).all()
        else:
            assert result.accepted[e]
            np.testing.assert_array_equal(np.sort(result.higgs_jet_indices[e], axis=1), want)
    assert result.accepted.sum() == (counts >= 4).sum()
    strict = SpanetPairer(model=str(path), event_info=str(event_file), detection_threshold=0.7)
    assert not strict(jets).accepted.any()  # best detection probability is 0.6
    # the pairer ships to workers as paths and options only
    blob = pickle.dumps(pairer)
    assert len(blob) < 20_000 and b"InferenceSession" not in blob
    np.testing.assert_array_equal(pickle.loads(blob)(jets).higgs_jet_indices, result.higgs_jet_indices)


# --- training ----------------------------------------------------------------------------------
def test_short_training_lowers_the_loss_and_beats_random_pairing(exported, tmp_path):
    from hhcoffea.ml.spanet.dataset import read_h5
    from hhcoffea.ml.spanet.metrics import pairing_metrics
    from hhcoffea.ml.spanet.training import load_options, train

    base, _ = exported
    exp = base / "exp"
    options = load_options(None, {
        "event_info_file": str(exp / "event.yaml"), "training_file": str(exp / "training.h5"),
        "output": str(tmp_path / "run"), "epochs": 4, "batch_size": 64, "hidden_dim": 16,
        "num_attention_heads": 2, "learning_rate": 0.003, "progress": False, "train_validation_split": 0.8,
    })
    metrics = train(options)
    history = __import__("json").loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    assert len(history) == 4
    assert history[-1]["validation"]["loss"]["loss"] < history[0]["validation"]["loss"]["loss"]
    # random pairing of the same validation events: uniform assignment scores, random ties broken by noise
    info = EventInfo.read(exp / "event.yaml")
    data = read_h5(exp / "training.h5", info)
    cut = int(round(0.8 * len(data["labels"])))
    mask, targets, n_jets = data["source_mask"][cut:], data["targets"][cut:], data["n_jets"][cut:]
    rng = np.random.default_rng(0)
    random_pairs, _ = decode_assignments(rng.random((len(mask), 2, 6, 6)), mask)
    random_eff = pairing_metrics(random_pairs, targets, n_jets)["event_efficiency"]
    assert metrics["event_efficiency"] > random_eff + 0.25, (metrics["event_efficiency"], random_eff)
    assert set(metrics["by_jets"]) == {"4", "5", ">=6", "total"} and 0.5 < metrics["auc"] <= 1.0
    # resume: a rerun with more epochs continues from the checkpoint
    more = dict(options, epochs=5)
    train(more)
    history = __import__("json").loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2, 3, 4]


# --- processor hook ------------------------------------------------------------------------------
class _LeadingAllJets:
    """A pairer that takes all jets >= 20 GeV and pairs (j0 j1)(j2 j3) of them."""

    name = "leading_all"
    n_higgs = 2
    jets = "all"

    def __call__(self, jets):
        from hhcoffea.pairing import PairingResult

        n = len(jets)
        counts = ak.to_numpy(ak.num(jets.pt))
        idx = np.broadcast_to(np.array([[0, 1], [2, 3]]), (n, 2, 2)).copy()
        ok = counts >= 4
        return PairingResult(np.where(ok[:, None, None], idx, -1), ok)


def test_processor_gives_all_jets_to_a_pairer_that_asks_and_keeps_its_candidates(tmp_path):
    """m_hh of (j0 j1)(j2 j3) of the jets >= 20 GeV, filled by the processor, against numpy on the file."""
    import uproot
    from coffea import processor

    from hhcoffea.emulation import generate
    from hhcoffea.events import AutoSchema
    from hhcoffea.processors.hh4b import HH4bProcessor

    path = tmp_path / "X700.root"
    generate("resonant", 6000, path, seed=8, m_x=700.0)
    proc = HH4bProcessor(pairers={"leading_all": _LeadingAllJets()}, luminosity=1.0)
    runner = processor.Runner(executor=processor.IterativeExecutor(), schema=AutoSchema, chunksize=2000)
    out = runner({"X700": {"files": {str(path): "Events"}, "metadata": {"process": "resonant"}}}, proc)
    h = out["histograms"]["m_hh"][{"dataset": "X700", "region": "four_tag", "pairer": "leading_all",
                                    "systematic": "nominal"}]
    with uproot.open(path) as f:
        a = f["Events"].arrays(["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btag", "genWeight"])
    good = (a.Jet_pt > 40) & (abs(a.Jet_eta) < 2.5)
    four_tag = ak.to_numpy(ak.sum(good & (a.Jet_btag % 2 == 1), axis=1) >= 4)  # bit 0: tagged
    considered = a.Jet_pt >= 20
    j = a[four_tag]
    sel = considered[four_tag]
    order = ak.argsort(j.Jet_pt[sel], ascending=False)
    pt, eta, phi, mass = (ak.to_numpy(ak.fill_none(ak.pad_none(x[sel][order], 4, clip=True), 0.0)).astype(float)
                          for x in (j.Jet_pt, j.Jet_eta, j.Jet_phi, j.Jet_mass))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    m4j = np.sqrt(np.maximum(e.sum(1) ** 2 - px.sum(1) ** 2 - py.sum(1) ** 2 - pz.sum(1) ** 2, 0))
    weights = ak.to_numpy(j.genWeight).astype(float)
    edges = h.axes[0].edges
    expected, _ = np.histogram(m4j, bins=edges, weights=weights)
    assert four_tag.sum() > 100
    np.testing.assert_allclose(h.values(), expected, rtol=1e-6)
    truth = out["histograms"]["pairing_truth"]
    assert truth[{"dataset": "X700", "pairer": "leading_all"}].sum(flow=True) > 0


def test_shipped_model_pairs_out_of_the_box_and_per_multiplicity_runs_equal_padded_ones(monkeypatch):
    """``pairers: {spanet: {}}``: the packaged model and its metadata event file; running each
    jet multiplicity at its own N gives the pairs of running everything padded to 10 jets."""
    from hhcoffea.plugins.spanet import SpanetPairer, default_model

    assert default_model().is_file() and default_model().stat().st_size < 2_000_000
    pairer = SpanetPairer()
    assert pairer.n_jets == 10 and pairer.dynamic_jets and pairer.event_info.particle_names == ("h1", "h2")
    rng = np.random.default_rng(9)
    counts = rng.integers(4, 14, 400)
    pt = rng.uniform(20, 250, counts.sum())
    jets = ak.unflatten(ak.zip({"pt": pt, "eta": rng.normal(0, 1.5, len(pt)), "phi": rng.uniform(-3, 3, len(pt)),
                                "mass": rng.uniform(5, 25, len(pt)), "btag": rng.random(len(pt)) < 0.6}), counts)
    jets = jets[ak.argsort(jets.pt, ascending=False)]
    grouped = pairer(jets)
    monkeypatch.setattr(SpanetPairer, "dynamic_jets", property(lambda self: False))
    padded = pairer(jets)
    np.testing.assert_array_equal(grouped.higgs_jet_indices, padded.higgs_jet_indices)
    assert grouped.accepted.all()
    idx = grouped.higgs_jet_indices.reshape(len(jets), 4)
    assert (np.sort(idx, axis=1)[:, 1:] != np.sort(idx, axis=1)[:, :-1]).all()  # four distinct jets
    assert (idx < 10).all()  # only the 10 leading jets go in
