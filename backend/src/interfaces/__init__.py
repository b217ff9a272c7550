"""The `src.interfaces` layer.

`pythonpath = ["src"]` in the pytest config also makes this folder importable as a top-level
`interfaces` package; a second import name would mean a second copy of every module (two settings
objects, two engines, two brokers), so that name is refused here.
"""

if __name__ != "src.interfaces":  # pragma: no cover - only reached by a wrong import
    raise ImportError(f"import 'src.interfaces', not {__name__!r}: one module, one name")
