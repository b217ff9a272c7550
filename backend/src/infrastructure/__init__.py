"""The `src.infrastructure` layer.

`pythonpath = ["src"]` in the pytest config also makes this folder importable as a top-level
`infrastructure` package; a second import name would mean a second copy of every module (two
settings objects, two engines, two brokers), so that name is refused here.
"""

if __name__ != "src.infrastructure":  # pragma: no cover - only reached by a wrong import
    raise ImportError(f"import 'src.infrastructure', not {__name__!r}: one module, one name")
