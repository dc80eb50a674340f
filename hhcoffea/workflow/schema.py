"""The job-file schema: one pydantic model per section, checked before anything runs.

Why pydantic (v2) rather than jsonschema: the checks are Python types with constraints
(positive ints, increasing bin edges, a sample's process options), cross-field rules (a
histogram's systematics must be defined) and checks that need code (constructing every pairer
with its options); pydantic keeps them in one class per section, next to the field
descriptions the README table is rendered from, and returns the normalised config the runner
uses. Strict mode: ``chunksize: "100"`` or ``workers: true`` are errors, not coerced.

Every problem is one line ``key.path: got VALUE; expected ...`` (:func:`validate_job` collects
all of them). To add a section: write a ``Section`` subclass, add it as a field of
:class:`JobModel` (and its default to ``job.DEFAULTS``); the README table and ``hhcoffea check``
pick it up.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "BTagMeasureSection",
    "BTagOverrideSection",
    "BTagSection",
    "ClusterSection",
    "DatasetSection",
    "ExecutorSection",
    "HistogramSection",
    "JobModel",
    "JobSchemaError",
    "PluginSection",
    "SampleSection",
    "ScaleFactorFileSection",
    "SystematicSection",
    "TagSection",
    "construct_plugins",
    "schema_markdown",
    "validate_job",
]

EXECUTOR_NAMES = ("iterative", "futures", "dask", "dask-awkward")
CLUSTER_TYPES = ("slurm", "htcondor", "pbs")


class JobSchemaError(ValueError):
    """Problems with a job file, one line each (``.lines``)."""

    def __init__(self, lines: list[str]):
        self.lines = list(lines)
        super().__init__("\n".join(self.lines))


class Section(BaseModel):
    """Base of every section: strict types, unknown keys rejected (typos)."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=False)


def _positive(name: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number")
    return value


# --- histograms ---------------------------------------------------------------------------------


class RegularBins(Section):
    """``{n: 20, lo: 0, hi: 1000}``: n equal bins from lo to hi."""

    n: int = Field(ge=1, description="number of equal-width bins")
    lo: float = Field(allow_inf_nan=False, description="lower edge")
    hi: float = Field(allow_inf_nan=False, description="upper edge (> lo)")

    @model_validator(mode="after")
    def _ordered(self):
        if not self.hi > self.lo:
            raise ValueError(f"hi ({self.hi:g}) must be greater than lo ({self.lo:g})")
        return self

    def as_binning(self):
        return (int(self.n), float(self.lo), float(self.hi))


class EdgeBins(Section):
    """``{edges: [250, 300, 400]}``: bin edges, strictly increasing, at least two."""

    edges: list[float] = Field(min_length=2, description="bin edges, strictly increasing")

    @field_validator("edges")
    @classmethod
    def _increasing(cls, edges):
        if not all(math.isfinite(e) for e in edges):
            raise ValueError("edges must be finite numbers")
        bad = [i for i in range(1, len(edges)) if not edges[i] > edges[i - 1]]
        if bad:
            i = bad[0]
            raise ValueError(f"edges must increase strictly, but edge {i} ({edges[i]:g}) <= edge {i - 1} ({edges[i - 1]:g})")
        return edges

    def as_binning(self):
        return [float(e) for e in self.edges]  # floats: read as edges, never as (n, lo, hi)


def _bins_kind(value):
    if isinstance(value, dict):
        return "edge_bins" if "edges" in value else "regular_bins" if "n" in value else None
    if isinstance(value, (RegularBins, EdgeBins)):
        return "edge_bins" if isinstance(value, EdgeBins) else "regular_bins"
    return None


BINS_FORMS = "{n: 20, lo: 0, hi: 1000} (regular) or {edges: [250, 300, 400]} (edges)"
Bins = Annotated[
    Annotated[RegularBins, Tag("regular_bins")] | Annotated[EdgeBins, Tag("edge_bins")],
    Discriminator(_bins_kind, custom_error_type="bins_form",
                  custom_error_message=f"bins must be {BINS_FORMS}"),
]


class HistogramSection(Section):
    """One histogram of ``hhcoffea.histograms``: its binning and the variations it is filled for."""

    bins: Bins | None = Field(None, description=f"{BINS_FORMS}; default: the built-in binning")
    systematics: list[str] = Field(default_factory=list, description="variations (names under `systematics`) to fill; opt-in")

    @field_validator("bins", mode="before")
    @classmethod
    def _no_list(cls, value):
        if isinstance(value, (list, tuple)):
            # [n, lo, hi] and a 3-edge list look the same: only the explicit forms are accepted
            raise ValueError(f"a plain list is ambiguous; write {BINS_FORMS}")
        return value


# --- the other sections -----------------------------------------------------------------------


class SystematicSection(Section):
    """A systematic variation, filled as ``<name>_up`` and ``<name>_down``."""

    type: Literal["jet_energy_scale"] = Field("jet_energy_scale", description="kind of variation")
    size: float = Field(gt=0, lt=1, allow_inf_nan=False, description="relative size (0 < size < 1): jet pT x (1 ± size)")


class SelectionSection(Section):
    """Object selection of the four-tag cut (PHYSICS.md "Objects and preselection")."""

    jet_pt_min: float | None = Field(None, ge=0, allow_inf_nan=False, description="jet pT threshold [GeV]; default 40")
    jet_eta_max: float | None = Field(None, gt=0, allow_inf_nan=False, description="jet |eta| limit; default 2.5")


class PluginSection(Section):
    """A plugin (pairer or scorer) under a label; constructed with its options before the run."""

    plugin: str | None = Field(None, description="registered plugin name; default: the label")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword options of the plugin's constructor")


class ScoreSelectionSection(Section):
    """A selection on a scorer's output (hhcoffea.scoring.selections): a region of the histograms."""

    pairer: str = Field(description="label of one of the job's pairers")
    scorer: str = Field(description="label of one of the job's scorers")
    threshold: Literal["optimise", "optimize"] | Annotated[float, Field(ge=0, le=1)] = Field(
        "optimise", description="p_th (events with score > p_th pass), or optimise: maximise S/sqrt(B) after the run")
    after: str = Field("four_tag", description="processor region the cut applies in")
    signal: list[str] | None = Field(None, description="datasets of S (default: every signal process)")
    backgrounds: list[str] | None = Field(None, description="datasets of B (default: every other dataset)")
    min_background: float = Field(1.0, ge=0, allow_inf_nan=False, description="optimise: least weighted B above p_th")
    min_background_mc: float = Field(10.0, ge=0, allow_inf_nan=False,
                                     description="optimise: least effective MC events (sum w)^2/sum w^2 in B above p_th")


class MetadataSection(Section):
    """Dataset metadata; events weigh genWeight x xsec_fb x luminosity / n_generated."""

    process: str | None = Field(None, description="resonant, nonresonant, qcd, ttbar or any background name")
    xsec_fb: float | None = Field(None, gt=0, allow_inf_nan=False, description="cross section x BR [fb] (> 0)")
    n_generated: int | None = Field(None, ge=1, description="events generated (> 0)")
    m_x: float | None = Field(None, gt=0, allow_inf_nan=False, description="resonance mass [GeV]")
    kappa_lambda: float | None = Field(None, allow_inf_nan=False, description="Higgs self-coupling modifier")
    working_point: str | None = Field(None, description="b-tagging working point")
    sqrt_s: float | None = Field(None, gt=0, description="centre-of-mass energy [TeV]")

    @model_validator(mode="after")
    def _both_or_neither(self):
        if (self.xsec_fb is None) != (self.n_generated is None):
            given, missing = ("xsec_fb", "n_generated") if self.n_generated is None else ("n_generated", "xsec_fb")
            raise ValueError(f"{given} is given without {missing}: weights need both (or neither, for genWeight only)")
        return self


class TagSection(Section):
    """How a jet's tag is read: one bit of the tag bitmask, or a discriminant above a threshold."""

    bit: int | None = Field(None, ge=0, le=63, description="bit of Jet_btag / Jet.BTag")
    branch: str | None = Field(None, description="discriminant branch without the `Jet_` prefix, e.g. btagDeepFlavB")
    threshold: float | None = Field(None, allow_inf_nan=False, description="tagged when the discriminant is above it")

    @model_validator(mode="after")
    def _one(self):
        if (self.bit is None) == (self.branch is None):
            raise ValueError("give either bit or branch (with threshold)")
        if (self.branch is None) != (self.threshold is None):
            raise ValueError("threshold goes with branch (and branch needs one)")
        return self


class ScaleFactorFileSection(Section):
    """A correctionlib scale-factor file in the CMS BTV layout, and which correction(s) to use."""

    file: str = Field("default", description="path (relative to the job file) or `default`")
    correction: str | dict[str, str] | None = Field(
        None, description="its name, or `{bc: NAME, light: NAME}`; default: the file's only one")


class BTagOverrideSection(Section):
    """b-tagging of one dataset (``datasets.<name>.btagging``): any key overrides the top-level one."""

    working_point: str | None = Field(None, description="a name from the working-point table (hhcoffea.corrections.btagging)")
    tag: TagSection | None = Field(None, description="overrides the table's rule for reading the tag")
    efficiency: str | None = Field(None, description="correctionlib efficiency maps (`hhcoffea btag measure`; made by `run` when missing)")
    scale_factors: str | ScaleFactorFileSection | None = Field(
        None, description="`default` (unit SFs shipped), a file, or `{file, correction}`")
    method: Literal["cut", "weight", "truth_tag"] | None = Field(
        None, description="cut on tags (default), weight (scale factors, method 1a) or truth_tag")
    seed: int | None = Field(None, description="seed of the truth-tag draws (default 0)")


class BTagMeasureSection(Section):
    """Binning of `hhcoffea btag measure`."""

    abseta: list[float] | None = Field(None, min_length=2, description="|eta| edges (default 0, 0.6, 1.2, 1.8, 2.5)")
    pt: list[float] | None = Field(None, min_length=2, description="pT edges, the last may be .inf (default 40 ... 1000, inf)")
    min_jets: float | None = Field(None, gt=0, description="bins with fewer (effective) jets are merged (default 100)")
    flow: Literal["error", "clamp"] | None = Field(None, description="out-of-range inputs: error (default) or clamp")


class BTagSection(BTagOverrideSection):
    """The job's b-tagging (``btagging``); without it, bit 0 of the bitmask and a cut."""

    working_points: dict[str, dict[str, Any]] | None = Field(
        None, description="extends the working-point table: name -> {b_efficiency, c_rejection, light_rejection, tag, correction_key}")
    measure: BTagMeasureSection | None = Field(None, description="binning of `hhcoffea btag measure`")


class DatasetSection(Section):
    """Input files of one dataset and its metadata."""

    files: list[str] | str | None = Field(
        None, description="ROOT files (paths relative to the job file, or URLs); at least one, unless the dataset is a generated sample")
    sample: str | None = Field(None, description="a generated sample whose files and metadata this dataset reuses")
    metadata: MetadataSection = Field(default_factory=MetadataSection, description="see `datasets.<name>.metadata.*`")
    btagging: BTagOverrideSection | None = Field(None, description="this dataset's b-tagging, see `btagging.*`")

    @field_validator("files")
    @classmethod
    def _some(cls, files):
        files = [files] if isinstance(files, str) else files
        if not files:
            raise ValueError("a dataset needs at least one file")
        return files


class SampleSection(Section):
    """An emulated sample, made by ``hhcoffea generate`` when missing or when its settings change."""

    process: Literal["resonant", "nonresonant", "qcd", "ttbar"] = Field(description="emulated process")
    n_events: int = Field(ge=1, description="events to generate")
    m_x: float | None = Field(None, description="X mass [GeV] (resonant only)")
    kappa_lambda: float | None = Field(None, description="kappa_lambda (nonresonant only; default 1)")
    working_point: str | None = Field(None, description="MV2c10_70 or DL1r_77 (default by process)")
    shower: Literal["pythia"] | None = Field(None, description="pythia: shower with Pythia 8 (slow) instead of the fast emulation")

    @model_validator(mode="after")
    def _arguments(self):
        from ..emulation.chunks import check_arguments

        check_arguments(self.process, self.n_events, self.m_x, self.kappa_lambda, self.working_point, 1, 0, self.shower)
        return self


class SamplesSection(Section):
    """Emulated samples of the job (they become datasets)."""

    directory: str = Field("data", description="where the files go (relative to the job file)")
    seed: int = Field(0, description="base seed; each sample's seed derives from it and its name")
    generate: dict[str, SampleSection] = Field(default_factory=dict, description="name -> sample")


class AdaptSection(Section):
    """Adaptive scaling of a batch cluster (``cluster.adapt``)."""

    minimum: int = Field(0, ge=0, description="fewest jobs kept")
    maximum: int = Field(ge=1, description="most jobs")

    @model_validator(mode="after")
    def _ordered(self):
        if self.minimum > self.maximum:
            raise ValueError(f"minimum ({self.minimum}) must not exceed maximum ({self.maximum})")
        return self


class ClusterSection(Section):
    """A batch cluster through dask-jobqueue: each batch job runs ``processes`` dask workers."""

    type: Literal["slurm", "htcondor", "pbs"] = Field(description="batch system")
    cores: int = Field(1, ge=1, description="cores per batch job")
    processes: int = Field(1, ge=1, description="dask worker processes per batch job")
    memory: str = Field(description='memory per batch job, e.g. "4GB"')
    walltime: str | None = Field(None, description='wall time per job, e.g. "01:00:00" (slurm, pbs)')
    queue: str | None = Field(None, description="queue / partition (slurm, pbs)")
    account: str | None = Field(None, description="account / project to charge (slurm, pbs)")
    disk: str | None = Field(None, description='disk per job, e.g. "2GB" (htcondor; required there)')
    job_extra_directives: list[str] = Field(default_factory=list, description="extra lines for the job's header (#SBATCH ..., +Requirements ...)")
    job_script_prologue: list[str] = Field(default_factory=list, description="shell lines run before the worker starts (e.g. source env)")
    python: str | None = Field(None, description="python executable on the batch nodes; default: this one")
    log_directory: str | None = Field(None, description="folder for the batch jobs' logs")
    local_directory: str | None = Field(None, description="worker scratch folder on the node")
    jobs: int = Field(1, ge=0, description="batch jobs to start (when not adaptive)")
    adapt: AdaptSection | None = Field(None, description="`{minimum, maximum}` jobs: scale with the work instead of `jobs`")

    @model_validator(mode="after")
    def _needs(self):
        if self.type == "htcondor" and not self.disk:
            raise ValueError("an htcondor cluster needs disk (e.g. disk: 2GB)")
        if self.processes > self.cores:
            raise ValueError(f"processes ({self.processes}) must not exceed cores ({self.cores})")
        return self


class ExecutorSection(Section):
    """Where chunks run."""

    name: Literal["iterative", "futures", "dask", "dask-awkward"] = Field(
        "iterative", description="iterative (one process), futures (process pool), dask (Runner on dask.distributed), "
        "dask-awkward (coffea's dask path: the processor per partition, histograms through hist.dask)")
    workers: int = Field(2, ge=1, description="worker processes (futures, dask and dask-awkward on a LocalCluster)")
    chunksize: int = Field(100_000, ge=1, description="events per chunk (per partition for dask-awkward)")
    address: str | None = Field(None, description="address of a running dask scheduler (instead of a LocalCluster)")
    cluster: ClusterSection | None = Field(None, description="a batch cluster (dask-jobqueue), see `executor.cluster.*`")
    checkpoint: str | None = Field(None, description="folder of per-chunk checkpoints; a rerun reuses the chunks of the same job")

    @model_validator(mode="after")
    def _consistent(self):
        if self.cluster is not None and self.name not in ("dask", "dask-awkward"):
            raise ValueError(f"cluster needs executor name dask or dask-awkward, not {self.name!r}")
        if self.cluster is not None and self.address:
            raise ValueError("give either address (a running scheduler) or cluster (start one), not both")
        return self


class JobModel(Section):
    """A job file. Every key is optional except one of ``datasets`` / ``samples``."""

    name: str = Field("job", description="job name (summary title)")
    output: str = Field("output", description="output folder, relative to the job file")
    luminosity: float = Field(300.0, gt=0, allow_inf_nan=False, description="integrated luminosity [fb^-1]")
    samples: SamplesSection | None = Field(None, description="emulated samples, see `samples.*`")
    datasets: dict[str, DatasetSection] = Field(default_factory=dict, description="name -> files and metadata")
    pairers: dict[str, PluginSection | None] = Field(default_factory=lambda: {"min_dr": PluginSection()},
                                                          description="label -> pairer; order = output order")
    histograms: dict[str, HistogramSection] = Field(default_factory=dict, description="histogram name -> binning / variations")
    systematics: dict[str, SystematicSection] = Field(default_factory=dict, description="name -> variation")
    selection: SelectionSection = Field(default_factory=SelectionSection, description="object selection")
    executor: ExecutorSection = Field(default_factory=ExecutorSection, description="see `executor.*`")
    quick_chunks: int = Field(2, ge=1, description="chunks per dataset with `--quick`")
    on_bad_file: Literal["skip", "fail"] = Field("skip", description="skip (count, report) or fail on an unreadable file")
    normalise: Literal["generated", "processed"] = Field(
        "generated", description="weights divide by n_generated, or by the events this run read")
    scorers: dict[str, PluginSection | None] = Field(default_factory=dict, description="label -> scorer plugin")
    selections: dict[str, ScoreSelectionSection] = Field(
        default_factory=dict, description="name -> score-based selection (a histogram region)")
    statistics: dict[str, Any] | None = Field(None, description="read by `hhcoffea limits` (hhcoffea.stats.config)")
    export: dict[str, Any] | None = Field(None, description="read by `hhcoffea export` (hhcoffea.workflow.spanet_export)")
    btagging: BTagSection | None = Field(None, description="working point, tag rule, efficiency maps, scale factors, method; see `btagging.*`")

    @field_validator("pairers", mode="before")
    @classmethod
    def _pairer_list(cls, value):
        return {p: {} for p in value} if isinstance(value, list) else value

    @field_validator("pairers")
    @classmethod
    def _fill(cls, value):
        if not value:
            raise ValueError("at least one pairer is needed")
        return {k: v or PluginSection() for k, v in value.items()}

    @model_validator(mode="after")
    def _inputs(self):
        if not self.datasets and not (self.samples and self.samples.generate):
            raise ValueError("no 'datasets' and no 'samples': nothing to run on")
        return self


# --- errors ---------------------------------------------------------------------------------------


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unwrap(annotation):
    """Strip Optional/Annotated/unions down to a model class or a ``dict[str, X]``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            models = [a for a in args if _unwrap(a) is not None]
            if not models:
                return None
            annotation = models[0]
        else:
            return annotation


def _model_at(loc: tuple):
    """The section class at ``loc`` (``("executor",)`` -> ExecutorSection)."""
    current = JobModel
    parts = list(loc)
    while parts:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(parts.pop(0))
            if field is None:
                return None
            current = _unwrap(field.annotation)
        elif typing.get_origin(current) is dict:
            parts.pop(0)
            current = _unwrap(typing.get_args(current)[1])
        else:
            return None
    if typing.get_origin(current) is dict:
        return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _line(error: dict) -> str:
    loc = tuple(p for p in error["loc"] if p not in ("regular_bins", "edge_bins", "list[str]", "str"))
    path = ".".join(str(p) for p in loc) or "(top level)"
    kind, message = error["type"], error["msg"]
    message = message.removeprefix("Value error, ")
    if kind == "extra_forbidden":
        tags = {"edge_bins": EdgeBins, "regular_bins": RegularBins}
        parent = next((tags[p] for p in error["loc"] if p in tags), None) or _model_at(loc[:-1])
        known = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{path}: unknown key; {hint}known: {', '.join(known)}"
    if kind == "missing":
        return f"{path}: missing; {message.lower()}"
    if kind == "value_error" and isinstance(error.get("input"), dict):  # a rule over a whole section
        return f"{path}: {message}"
    return f"{path}: got {_short(error.get('input'))}; {message}"


# --- validation -----------------------------------------------------------------------------------


def construct_plugins(model: JobModel) -> tuple[dict, list[str]]:
    """Construct every pairer with its options: ``({label: Pairer}, [error lines])``."""
    from ..pairing import get_pairer

    pairers, errors = {}, []
    for label, spec in model.pairers.items():
        name = spec.plugin or label
        try:
            pairer = get_pairer(name, **spec.options)
        except Exception as err:  # noqa: BLE001 - a plugin may raise anything for bad options
            where = f"pairers.{label}.options" if spec.options else f"pairers.{label}"
            errors.append(f"{where}: pairer {name!r} with options {_short(spec.options)}: {str(err).splitlines()[0]}")
            continue
        if getattr(pairer, "n_higgs", 2) != 2:
            errors.append(f"pairers.{label}: pairer {name!r} builds {pairer.n_higgs} Higgs candidates; the HH processor needs 2")
            continue
        pairers[label] = pairer
    return pairers, errors


def _cross_checks(model: JobModel) -> list[str]:
    from ..histograms import OBSERVABLES

    known_hists = [*OBSERVABLES, "m_h1_m_h2"]
    errors = []
    btag_variations = ()
    generated = set(model.samples.generate) if model.samples else set()
    for name, dataset in model.datasets.items():
        if dataset.files is None and dataset.sample is None and name not in generated:
            errors.append(f"datasets.{name}.files: missing; a dataset needs files (or is a generated sample, or names one with sample:)")
        if dataset.sample is not None and dataset.sample not in generated:
            errors.append(f"datasets.{name}.sample: got {dataset.sample!r}; expected a sample under samples.generate "
                          f"({', '.join(sorted(generated)) or 'none'})")
    if model.btagging is not None or any(d.btagging is not None for d in model.datasets.values()):
        from ..corrections.btagging import parse_btagging

        dump = model.model_dump(mode="python")
        try:
            btag_variations = parse_btagging(dump["btagging"], dump["datasets"], load_corrections=False).variations
        except ValueError as err:
            errors.append(str(err))
    for name, spec in model.histograms.items():
        if name not in known_hists:
            close = difflib.get_close_matches(name, known_hists, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            errors.append(f"histograms.{name}: unknown histogram; {hint}known: {', '.join(known_hists)}")
            continue
        if name == "m_h1_m_h2" and spec.bins is not None:
            errors.append("histograms.m_h1_m_h2.bins: the mass plane has fixed binning; only systematics can be set")
        for s in spec.systematics:
            if s not in model.systematics and s not in btag_variations:
                errors.append(f"histograms.{name}.systematics: got {s!r}; expected one of the names under "
                              f"'systematics' ({', '.join(model.systematics) or 'none defined'})"
                              + ("; btag_bc/btag_light need btagging.method weight or truth_tag" if s.startswith("btag_") else ""))
    for name, sel in model.selections.items():
        for what, labels in (("pairer", model.pairers), ("scorer", model.scorers)):
            if getattr(sel, what) not in labels:
                errors.append(f"selections.{name}.{what}: got {getattr(sel, what)!r}; expected one of the job's "
                              f"{what}s ({', '.join(labels) or 'none defined'})")
    return errors


def validate_job(raw: Any, *, plugins: bool = True) -> JobModel:
    """The validated job, or :class:`JobSchemaError` with one line per problem.

    ``plugins``: also construct every pairer with its options (needs the plugin registry).
    """
    if not isinstance(raw, dict):
        raise JobSchemaError([f"(top level): got {type(raw).__name__}; expected a mapping of keys"])
    try:
        model = JobModel.model_validate(raw)
    except ValidationError as err:
        raise JobSchemaError([_line(e) for e in err.errors()]) from None
    errors = _cross_checks(model)
    if plugins:
        errors += construct_plugins(model)[1]
    if errors:
        raise JobSchemaError(errors)
    return model


def normalised_config(model: JobModel) -> dict:
    """The plain-dict config the runner reads (bins as the ``(n, lo, hi)`` tuple or float edges)."""
    config = model.model_dump(mode="python")
    for name, spec in model.histograms.items():
        config["histograms"][name]["bins"] = spec.bins.as_binning() if spec.bins is not None else None
    return config


# --- documentation ----------------------------------------------------------------------------------


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if all(isinstance(a, type) and issubclass(a, BaseModel) for a in map(_unwrap, args)) and len(args) > 1:
            return "mapping"
        return " or ".join(_type_name(a) for a in args)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin is dict:
        return f"{{name: {_type_name(typing.get_args(annotation)[1])}}}"
    if origin is list:
        return f"list of {_type_name(typing.get_args(annotation)[0])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(field) -> str:
    parts = []
    for m in field.metadata:
        for attr, sym in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤"), ("min_length", "length ≥")):
            if getattr(m, attr, None) is not None:
                parts.append(f"{sym} {getattr(m, attr)}")
    return ", ".join(parts)


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        value = value.model_dump(exclude_defaults=True)
    if isinstance(value, dict):
        value = {k: v.model_dump(exclude_defaults=True) if isinstance(v, BaseModel) else v for k, v in value.items()}
    if value in (None, {}, []):
        return "—"
    return f"`{value}`"


def schema_markdown() -> str:
    """The README's job-file table, rendered from the models (key path, type, default, meaning)."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]

    def walk(model, prefix):
        for name, field in model.model_fields.items():
            path = f"{prefix}{name}"
            kind = _type_name(field.annotation)
            limits = _constraints(field)
            rows.append(f"| `{path}` | {kind}{' (' + limits + ')' if limits else ''} | {_default(field)} | "
                        f"{(field.description or '').replace('|', chr(92) + '|')} |")
            inner = _unwrap(field.annotation)
            if typing.get_origin(inner) is dict:
                value = _unwrap(typing.get_args(inner)[1])
                if isinstance(value, type) and issubclass(value, BaseModel):
                    walk(value, f"{path}.<name>.")
            elif isinstance(inner, type) and issubclass(inner, BaseModel):
                if inner in (RegularBins,):
                    continue
                walk(inner, f"{path}.")

    walk(JobModel, "")
    return "\n".join(rows) + "\n"
