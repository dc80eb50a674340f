"""One registry for every kind of plugin (pairers, scorers), read from entry points.

Follows xarray's backend registry: entry points are read once per process and cached, a plugin
that fails to import warns (naming it) instead of crashing, and a duplicate name warns and keeps
the built-in (or, between third parties, the first in module order).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

#: entry-point group for each plugin kind
GROUPS: dict[str, str] = {
    "pairer": "hhcoffea.pairers",
    "scorer": "hhcoffea.scorers",
}


class PluginNotFoundError(KeyError):
    """Asked for a plugin name nobody registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it one readable line
        return str(self.args[0])


@dataclass(frozen=True)
class PluginInfo:
    kind: str
    name: str
    target: str  # "module:attr" as written in the entry point
    distribution: str  # package that registered it
    loaded: Any  # the class or factory


def _distribution_name(ep) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or "?"


@functools.cache
def plugins(kind: str) -> dict[str, PluginInfo]:
    """All working plugins of ``kind``, read from entry points once and cached."""
    try:
        group = GROUPS[kind]
    except KeyError:
        raise PluginNotFoundError(f"unknown plugin kind {kind!r}; known: {sorted(GROUPS)}") from None
    found: dict[str, PluginInfo] = {}
    # built-ins win a name clash; otherwise a stable order, whatever the install order
    eps = entry_points(group=group)
    for ep in sorted(eps, key=lambda e: (e.name, _distribution_name(e) != "hhcoffea", e.value)):
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
        try:
            loaded = ep.load()
        except Exception as err:  # a broken third-party plugin must not take the framework down
            warnings.warn(
                f"{kind} plugin {ep.name!r} ({ep.value}, from {dist}) failed to load and is "
                f"skipped: {type(err).__name__}: {err}",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        found[ep.name] = PluginInfo(kind, ep.name, ep.value, dist, loaded)
    return found


def get(kind: str, name: str) -> PluginInfo:
    """The plugin ``name`` of ``kind``, or a one-line error listing what exists."""
    available = plugins(kind)
    if name not in available:
        raise PluginNotFoundError(
            f"no {kind} named {name!r} is registered (entry-point group {GROUPS[kind]!r}); "
            f"available: {', '.join(sorted(available)) or 'none'}"
        )
    return available[name]


def clear_cache() -> None:
    """Forget what was read (for tests that install a plugin package mid-session)."""
    plugins.cache_clear()
