"""The `src.infrastructure` layer.

`pythonpath = ["src"]` in the pytest config also makes this folder importable as a top-level
`infrastructure` package, and the Testing page uses that spelling
(`from infrastructure.taskiq import default_broker`,
`monkeypatch.setattr("infrastructure.taskiq.brokers.default_broker", ...)`). Both spellings work
and name THE SAME module objects: `infrastructure.X` is an alias of `src.infrastructure.X`, never
a second copy (one settings object, one engine, one broker; a monkeypatch through either name
reaches the app).

How: when this file runs under the bare name (the path finder found `src/infrastructure/` first),
it imports the real `src.infrastructure`, installs `_AliasFinder` at the front of
`sys.meta_path` (once) and puts the real package in `sys.modules["infrastructure"]`; the import
system returns `sys.modules[name]` after loading, so the importer gets the real package. From
then on the finder answers for `infrastructure` and `infrastructure.*` (any depth, lazily: a
submodule is imported only when asked for) with a loader whose `create_module` imports and
returns the real `src.` module and whose `exec_module` runs nothing.

Written by hand, on purpose: it is small, and the obvious shortcuts are wrong. A second path
entry or `sys.modules` copying after the fact leaves two module objects per file; a finder that
returns the real module's spec makes the import system execute the module again under the
`src.` name. One importlib detail matters: `module_from_spec()` always assigns the alias spec to
`module.__spec__` (it keeps `__name__`, `__loader__`, `__package__`, `__path__`, `__file__`), so
`exec_module` puts the real spec back; the real modules keep their `src.` identity.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

_ALIAS = "infrastructure"
_REAL = "src.infrastructure"


def _real_name(fullname: str) -> str | None:
    """`infrastructure.a.b` -> `src.infrastructure.a.b`; None for names that are not ours."""
    if fullname == _ALIAS or fullname.startswith(_ALIAS + "."):
        return _REAL + fullname[len(_ALIAS) :]
    return None


class _AliasLoader(importlib.abc.Loader):
    """Hands out the real `src.infrastructure...` module; executes nothing."""

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        module = importlib.import_module(_REAL + spec.name[len(_ALIAS) :])
        spec.loader_state = module.__spec__  # module_from_spec() overwrites it; restored below
        return module

    def exec_module(self, module: ModuleType) -> None:
        alias_spec = module.__spec__
        if alias_spec is not None and alias_spec.loader is self:
            module.__spec__ = alias_spec.loader_state


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Answers for `infrastructure` and `infrastructure.*` when the real module exists."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        real_name = _real_name(fullname)
        if real_name is None or importlib.util.find_spec(real_name) is None:
            return None
        return ModuleSpec(fullname, _LOADER)


_LOADER = _AliasLoader()
_FINDER = _AliasFinder()


def _install_alias() -> None:
    """Route the bare `infrastructure` name to this package (idempotent)."""
    if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FINDER)
    sys.modules[_ALIAS] = sys.modules[_REAL]


if __name__ == _ALIAS:  # pragma: no cover - the bare name, first import (tested in a subprocess)
    # Loaded by the path finder as a throwaway module: hand over to the one real package.
    import src.infrastructure as _real_package

    _real_package._install_alias()
