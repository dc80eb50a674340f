"""One registry for every kind of plugin (pairers, scorers), read from entry points.

Follows xarray's backend registry, with lazy loading:

* entry points are read once per process and cached (:func:`plugins`). Listing reads only the
  installed packages' metadata: no plugin module is imported, so a worker that runs a job
  without ML plugins never imports torch or onnxruntime because such a plugin is installed;
* a plugin is imported when a job asks for it (:func:`get`), once, and the result is cached;
* a plugin that fails to import warns (naming it and the error) when it is loaded, and
  :func:`get` then raises :class:`PluginLoadError`. :func:`check` loads everything and reports
  the failures (``hhcoffea plugins --check``);
* a duplicate name warns and keeps the built-in (or, between third parties, the first target in
  sorted order), whatever the install order;
* an unknown name is a one-line :class:`PluginNotFoundError` listing the available names.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

__all__ = [
    "GROUPS",
    "PluginInfo",
    "PluginLoadError",
    "PluginNotFoundError",
    "check",
    "clear_cache",
    "get",
    "plugins",
    "unknown_options_error",
]

#: entry-point group for each plugin kind
GROUPS: dict[str, str] = {
    "pairer": "hhcoffea.pairers",
    "scorer": "hhcoffea.scorers",
}

_BUILTIN_DISTRIBUTION = "hhcoffea"


class PluginNotFoundError(KeyError):
    """Asked for a plugin name nobody registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it one readable line
        return str(self.args[0])


class PluginLoadError(PluginNotFoundError):
    """A registered plugin whose module or attribute fails to import; ``cause`` is the error."""

    def __init__(self, message: str, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause or message


@dataclass(frozen=True)
class PluginInfo:
    """A registered plugin, as its entry point describes it; ``loaded`` imports it on first use."""

    kind: str
    name: str
    target: str  # "module:attr" as written in the entry point
    distribution: str  # package that registered it
    entry_point: EntryPoint = field(repr=False, compare=False)

    @property
    def loaded(self) -> Any:
        """The class or factory (imported now if it was not yet; :class:`PluginLoadError` if broken)."""
        return _load(self)

    @property
    def is_loaded(self) -> bool:
        """Whether this plugin was imported in this process already (successfully or not)."""
        return self in _LOAD_RESULTS


def _distribution_name(ep) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or "?"


@functools.cache
def plugins(kind: str) -> dict[str, PluginInfo]:
    """Every plugin of ``kind`` registered in entry points, read once and cached; none imported."""
    try:
        group = GROUPS[kind]
    except KeyError:
        raise PluginNotFoundError(f"unknown plugin kind {kind!r}; known: {sorted(GROUPS)}") from None
    found: dict[str, PluginInfo] = {}
    # built-ins win a name clash; otherwise a stable order, whatever the install order
    eps = entry_points(group=group)
    for ep in sorted(eps, key=lambda e: (e.name, _distribution_name(e) != _BUILTIN_DISTRIBUTION, e.value)):
        dist = _distribution_name(ep)
        if ep.name in found:
            if found[ep.name].target != ep.value:
                warnings.warn(
                    f"{kind} plugin {ep.name!r} is registered twice: keeping {found[ep.name].target} "
                    f"({found[ep.name].distribution}), ignoring {ep.value} ({dist})",
                    RuntimeWarning,
                    stacklevel=2,
                )
            continue
        found[ep.name] = PluginInfo(kind, ep.name, ep.value, dist, ep)
    return found


# PluginInfo -> the loaded object, or the PluginLoadError it raised (a broken plugin is imported,
# and warns, once per process)
_LOAD_RESULTS: dict[PluginInfo, Any] = {}


def _load(info: PluginInfo) -> Any:
    if info not in _LOAD_RESULTS:
        try:
            _LOAD_RESULTS[info] = info.entry_point.load()
        except Exception as err:  # a broken third-party plugin must not take the framework down
            cause = f"{type(err).__name__}: {err}"
            message = f"{info.kind} plugin {info.name!r} ({info.target}, from {info.distribution}) failed to load: {cause}"
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            _LOAD_RESULTS[info] = PluginLoadError(message, cause)
    result = _LOAD_RESULTS[info]
    if isinstance(result, PluginLoadError):
        raise result
    return result


def get(kind: str, name: str) -> PluginInfo:
    """The plugin ``name`` of ``kind``, imported (once; cached), or a one-line error.

    Raises:
        PluginNotFoundError: nobody registered ``name`` (the message lists what exists).
        PluginLoadError: it is registered but fails to import (it also warns, once).
    """
    available = plugins(kind)
    if name not in available:
        raise PluginNotFoundError(
            f"no {kind} named {name!r} is registered (entry-point group {GROUPS[kind]!r}); "
            f"available: {', '.join(sorted(available)) or 'none'}"
        )
    info = available[name]
    _load(info)
    return info


def check(kind: str | None = None) -> list[tuple[PluginInfo, str | None]]:
    """Load every plugin (of ``kind``, or of every kind): ``[(info, error or None)]`` in listing
    order, the error as ``"Type: message"``. Each broken plugin warns, as it would when a job
    loads it."""
    results = []
    for k in [kind] if kind else list(GROUPS):
        for _, info in sorted(plugins(k).items()):
            try:
                _load(info)
                results.append((info, None))
            except PluginLoadError as err:
                results.append((info, err.cause))
    return results


def clear_cache() -> None:
    """Forget what was read and loaded (for tests that install a plugin package mid-session)."""
    plugins.cache_clear()
    _LOAD_RESULTS.clear()


def unknown_options_error(kind: str, name: str, unknown, accepted) -> TypeError:
    """The one-line ``TypeError`` for options a plugin does not know: names them and lists the
    valid ones (``kind``: "pairer" or "scorer")."""
    return TypeError(
        f"{kind} {name!r} got unknown option(s) {', '.join(map(repr, sorted(unknown)))}; "
        f"it accepts: {', '.join(sorted(accepted)) or 'no options'}"
    )
