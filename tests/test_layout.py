"""The layout tells the architecture: every public module imports, and imports point one way.

core (events, columnar, pairing, scoring, corrections, emulation, stats, ml, ...) -> plugins ->
processors -> workflow -> cli. A module may import only from its own layer or those before it,
including imports inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import hhcoffea

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["core", "hhcoffea.plugins", "hhcoffea.processors", "hhcoffea.workflow", "hhcoffea.cli"]


def _layer(module: str) -> int:
    for i, prefix in enumerate(LAYERS[1:], start=1):
        if module == prefix or module.startswith(prefix + "."):
            return i
    return 0


def _modules() -> list[str]:
    import hhcoffea.plugins
    import hhcoffea.processors

    names = ["hhcoffea", "hhcoffea.plugins", "hhcoffea.processors"]
    # plugins/ and processors/ are installed into the package from their own folders
    for package in (hhcoffea, hhcoffea.plugins, hhcoffea.processors):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith("__main__") and info.name not in names:
                names.append(info.name)
    return sorted(names)


def _imports(module: str) -> set[str]:
    """Every hhcoffea module that ``module``'s source imports, at any depth of its code."""
    spec = importlib.util.find_spec(module)
    tree = ast.parse(Path(spec.origin).read_text())
    package = module if spec.submodule_search_locations else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m == "hhcoffea" or m.startswith("hhcoffea.")}


def test_every_public_module_imports_and_declares_all():
    modules = _modules()
    assert {"hhcoffea.events", "hhcoffea.columnar.selection", "hhcoffea.pairing", "hhcoffea.workflow.runner",
            "hhcoffea.cli", "hhcoffea.plugins.min_dr", "hhcoffea.processors.hh4b"} <= set(modules)
    missing = []
    for name in modules:
        module = importlib.import_module(name)
        is_package = hasattr(module, "__path__")
        if not is_package and not hasattr(module, "__all__"):
            missing.append(name)
        for exported in getattr(module, "__all__", ()):
            assert hasattr(module, exported), f"{name}.__all__ names {exported!r}, which it does not define"
    assert not missing, f"modules without __all__: {missing}"


@pytest.mark.parametrize("module", _modules())
def test_imports_point_one_way(module):
    if module == "hhcoffea":  # the package's lazy public API names every layer by string only
        return
    own = _layer(module)
    later = sorted(m for m in _imports(module) if m != "hhcoffea" and _layer(m) > own)
    assert not later, f"{module} ({LAYERS[own]}) imports from a later layer: {later}"


def test_the_layer_rule_would_catch_a_violation(tmp_path):
    """The checker itself: a core module importing a processor is reported."""
    assert _layer("hhcoffea.events.model") == 0 and _layer("hhcoffea.processors.hh4b") == 2
    assert "hhcoffea.workflow.runner" in _imports("hhcoffea.cli.run")


def test_public_api_resolves_every_name():
    for name in hhcoffea.__all__:
        assert getattr(hhcoffea, name) is not None
    with pytest.raises(AttributeError):
        hhcoffea.no_such_name  # noqa: B018


def test_readme_examples_run_as_doctests():
    """The README's "write your own pairer/scorer" examples are doctests: they run, and their
    printed results are checked."""
    failures, tried = doctest.testfile(str(ROOT / "README.md"), module_relative=False,
                                       optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert tried >= 6, tried
    assert failures == 0


def test_package_docstrings_run_as_doctests():
    failures, tried = doctest.testmod(hhcoffea)
    assert tried > 0 and failures == 0
