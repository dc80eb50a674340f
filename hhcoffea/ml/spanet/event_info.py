"""SPANet's event-info YAML: inputs and their transforms, the event particles and their decay
products, permutation symmetries, classification targets.

The keys are SPANet's own (``INPUTS/SEQUENTIAL``, ``INPUTS/GLOBAL``, ``EVENT``, ``PERMUTATIONS``,
``REGRESSIONS``, ``CLASSIFICATIONS``) so that the official package reads the files we write, and
we read the files it uses. Feature options: ``none``, ``log`` (log(x+1)), ``normalize``
(mean/std of the training set) and ``log_normalize`` (both). Our model supports what HH and HHH
need: one sequential input of jets, particles that each decay to two jets of it, an optional
global input, and event-level classifications.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = [
    "FEATURE_OPTIONS",
    "EventInfo",
    "Feature",
    "default_event_info",
]

FEATURE_OPTIONS = ("none", "log", "normalize", "log_normalize")
#: jet features written to HDF5 and built for inference (the jet quantity each is computed from)
JET_FEATURES = ("pt", "eta", "phi", "sinphi", "sin_phi", "cosphi", "cos_phi", "mass", "btag", "energy", "e")
DEFAULT_JET_FEATURES = (("pt", "log_normalize"), ("eta", "normalize"), ("sinphi", "normalize"),
                        ("cosphi", "normalize"), ("mass", "log_normalize"), ("btag", "none"))


@dataclass(frozen=True)
class Feature:
    """One input feature and its SPANet option."""

    name: str
    option: str = "none"

    @property
    def log(self) -> bool:
        return "log" in self.option

    @property
    def normalize(self) -> bool:
        return "normalize" in self.option


@dataclass
class EventInfo:
    """A parsed event file. ``particles`` maps each event particle to its two decay products."""

    sequential: dict[str, tuple[Feature, ...]]
    particles: dict[str, tuple[str, ...]]
    global_inputs: dict[str, tuple[Feature, ...]] = field(default_factory=dict)
    event_permutations: list = field(default_factory=list)
    product_permutations: dict[str, list] = field(default_factory=dict)
    classifications: tuple[str, ...] = ()
    source: str = "<memory>"

    # --- what the model and the pairer use ------------------------------------------------
    @property
    def jet_input(self) -> str:
        return next(iter(self.sequential))

    @property
    def jet_features(self) -> tuple[Feature, ...]:
        return self.sequential[self.jet_input]

    @property
    def global_input(self) -> str | None:
        return next(iter(self.global_inputs), None)

    @property
    def global_features(self) -> tuple[Feature, ...]:
        return self.global_inputs[self.global_input] if self.global_inputs else ()

    @property
    def particle_names(self) -> tuple[str, ...]:
        return tuple(self.particles)

    @property
    def n_particles(self) -> int:
        return len(self.particles)

    def check_supported(self) -> EventInfo:
        """Raise a one-line ``ValueError`` unless this topology is one our SPA-Net handles."""
        if len(self.sequential) != 1:
            raise ValueError(f"{self.source}: INPUTS/SEQUENTIAL must hold exactly one jet input, got {list(self.sequential)}")
        if len(self.global_inputs) > 1:
            raise ValueError(f"{self.source}: INPUTS/GLOBAL may hold at most one input, got {list(self.global_inputs)}")
        if not self.particles:
            raise ValueError(f"{self.source}: EVENT lists no particles")
        for name, products in self.particles.items():
            if len(products) != 2:
                raise ValueError(f"{self.source}: EVENT/{name} must decay to two jets (h -> bb), got {list(products)}")
        for f in (*self.jet_features, *self.global_features):
            if f.option not in FEATURE_OPTIONS:
                raise ValueError(f"{self.source}: feature {f.name!r} has option {f.option!r}; expected one of {FEATURE_OPTIONS}")
        for f in self.jet_features:
            if f.name not in JET_FEATURES:
                raise ValueError(f"{self.source}: jet feature {f.name!r} is not one hhcoffea can build; known: {JET_FEATURES}")
        return self

    # --- YAML ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        jets = self.jet_input
        out = {
            "INPUTS": {
                "SEQUENTIAL": {name: {f.name: f.option for f in feats} for name, feats in self.sequential.items()},
                "GLOBAL": {name: {f.name: f.option for f in feats} for name, feats in self.global_inputs.items()} or None,
            },
            "EVENT": {p: [{d: jets} for d in products] for p, products in self.particles.items()},
            "PERMUTATIONS": {
                "EVENT": [list(g) for g in self.event_permutations],
                **{p: [list(g) for g in perms] for p, perms in self.product_permutations.items()},
            },
            "REGRESSIONS": None,
            "CLASSIFICATIONS": {"EVENT": list(self.classifications)} if self.classifications else None,
        }
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_yaml())
        return path

    @classmethod
    def from_dict(cls, config: dict, source: str = "<memory>") -> EventInfo:
        if not isinstance(config, dict) or "INPUTS" not in config or "EVENT" not in config:
            raise ValueError(f"{source}: a SPANet event file needs the keys INPUTS and EVENT")
        inputs = config["INPUTS"] or {}

        def features(block, kind):
            out = {}
            for name, feats in (block or {}).items():
                if not isinstance(feats, dict) or not feats:
                    raise ValueError(f"{source}: INPUTS/{kind}/{name} must map feature names to options")
                out[name] = tuple(Feature(str(k), str(v).lower()) for k, v in feats.items())
            return out

        sequential = features(inputs.get("SEQUENTIAL"), "SEQUENTIAL")
        global_inputs = features(inputs.get("GLOBAL"), "GLOBAL")
        if not sequential:
            raise ValueError(f"{source}: INPUTS/SEQUENTIAL is empty; SPANet needs one jet input")
        particles = {}
        for particle, products in (config["EVENT"] or {}).items():
            names = [next(iter(p)) if isinstance(p, dict) else str(p) for p in products or []]
            particles[str(particle)] = tuple(names)
        perms = config.get("PERMUTATIONS") or {}
        event_perms = [list(g) for g in (perms.get("EVENT") or [])]
        product_perms = {p: [list(g) for g in (perms.get(p) or [])] for p in particles if perms.get(p)}
        classes = config.get("CLASSIFICATIONS") or {}
        classifications = tuple(classes.get("EVENT") or ()) if isinstance(classes, dict) else ()
        return cls(sequential=sequential, particles=particles, global_inputs=global_inputs,
                   event_permutations=event_perms, product_permutations=product_perms,
                   classifications=classifications, source=source)

    @classmethod
    def from_yaml(cls, text: str, source: str = "<memory>") -> EventInfo:
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"{source}: not valid YAML ({str(err).splitlines()[0]})") from None
        return cls.from_dict(config, source)

    @classmethod
    def read(cls, path: str | Path) -> EventInfo:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise ValueError(f"{path}: cannot read SPANet event file ({err.strerror})") from None
        return cls.from_yaml(text, str(path))


def default_event_info(n_higgs: int = 2, global_features: tuple[str, ...] = (),
                       classification: bool = True) -> EventInfo:
    """The HH (``n_higgs=2``) or HHH (3) event file: jets ``Source`` with pt, eta, sinphi, cosphi,
    mass, btag; particles h1..hN -> b1 b2, all Higgs interchangeable and b1 <-> b2 in each;
    ``EVENT/signal`` classification; optional global features (e.g. ``kappa_lambda``) in ``GLOBAL``."""
    names = [f"h{i + 1}" for i in range(n_higgs)]
    return EventInfo(
        sequential={"Source": tuple(Feature(n, o) for n, o in DEFAULT_JET_FEATURES)},
        particles={n: ("b1", "b2") for n in names},
        global_inputs={"GLOBAL": tuple(Feature(g, "normalize") for g in global_features)} if global_features else {},
        event_permutations=[names],
        product_permutations={n: [["b1", "b2"]] for n in names},
        classifications=("signal",) if classification else (),
    )
