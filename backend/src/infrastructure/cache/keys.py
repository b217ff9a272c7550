"""Cache keys built from a call's arguments: `"user:{username}"` or a function of them.

A template names the decorated function's parameters (`{username}`, `{pagination.page}`,
`{user[id]}`); a callable key takes some of those parameters by name and returns the key
(useful to normalise, e.g. lower-case a username, in one place shared with invalidation).
Both are checked when the decorator is applied, so a typo fails at import time, not in
production. Formatted values are percent-quoted, so a value holding `:` or `*` can neither
collide with another key nor act as a pattern.
"""

from __future__ import annotations

import inspect
import re
import string
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

KeySpec = str | Callable[..., str]
"""A key (or tag) template such as `"user:{username}"`, or a function of named arguments."""

_FIELD_ROOT = re.compile(r"[.\[]")


class _QuotingFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        return quote(format(value, format_spec), safe="")


_formatter = _QuotingFormatter()


class KeyBuilder:
    """Turns the bound arguments of one call into the key a `KeySpec` describes."""

    def __init__(self, spec: KeySpec, parameters: Mapping[str, inspect.Parameter]) -> None:
        self._spec = spec
        if isinstance(spec, str):
            self._names = _template_fields(spec)
            self._callable_names: tuple[str, ...] = ()
        elif callable(spec):
            self._names = tuple(inspect.signature(spec).parameters)
            self._callable_names = self._names
        else:
            raise TypeError(f"a cache key is a template string or a callable, not {spec!r}")
        unknown = [name for name in self._names if name not in parameters]
        if unknown:
            raise ValueError(
                f"cache key {spec!r} names {', '.join(unknown)}, which the function does "
                f"not take (it takes {', '.join(parameters) or 'nothing'})"
            )

    def build(self, arguments: Mapping[str, Any]) -> str:
        if isinstance(self._spec, str):
            return _formatter.vformat(self._spec, (), arguments)
        return self._spec(**{name: arguments[name] for name in self._callable_names})


def _template_fields(template: str) -> tuple[str, ...]:
    names: list[str] = []
    for _, field, _, _ in string.Formatter().parse(template):
        if field is None:
            continue
        root = _FIELD_ROOT.split(field, maxsplit=1)[0]
        if not root or root.isdigit():
            raise ValueError(
                f"cache key {template!r}: name the argument in each field, e.g. {{username}}"
            )
        names.append(root)
    return tuple(dict.fromkeys(names))
