"""Reflex from Python: export PyTorch or ONNX models to `reflexd`, read its outputs into pandas.

Public API (docs/python.md):

- `export(module, out_dir, *, channels, length, ...)` — torch.fx → `reflex.toml` + weights, checked
  against the real `reflexd` (needs the `torch` extra);
- `from_onnx(model, out_dir, ...)` — the same from an ONNX file (needs the `onnx` extra);
- `verify(out_dir)` — re-run the agreement check of a written model;
- `read_records(path)`, `read_mcap(path)` — prediction records and recordings as DataFrames
  (the `pandas` extra);
- `add_recording(log, dataset, *, subject, ...)` and `reflex dataset add` — a recording labelled with
  `reflexd label` into a dataset (`reflex.collect`; the `pandas` extra);
- `read_dataset(folder)` and `reflex compare` — docs/compare.md datasets and the variant comparison
  (`reflex.dataset`, `reflex.compare`, `reflex.train`; the `compare` extra);
- `reflex.nn` — the convolution plugins as torch modules; `reflex.torch_ref` — the config → module
  reference; `ExportError`, `VerifyError`, `ReflexdError`.

Heavy dependencies are imported only by the function that needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import ExportError, ReflexdError, VerifyError

__version__ = "0.1.0"
__all__ = ["export", "from_onnx", "verify", "read_records", "read_mcap", "Exported", "VerifyReport",
           "read_dataset", "DatasetError", "add_recording",
           "ExportError", "VerifyError", "ReflexdError", "__version__"]

if TYPE_CHECKING:
    from ._export import export
    from ._graph import Exported
    from ._onnx import from_onnx
    from ._records import read_mcap, read_records
    from ._verify import VerifyReport, verify
    from .collect import add_recording
    from .dataset import DatasetError, read_dataset

_LAZY = {"export": "_export", "from_onnx": "_onnx", "verify": "_verify", "read_records": "_records",
         "read_mcap": "_records", "Exported": "_graph", "VerifyReport": "_verify", "read_dataset": "dataset",
         "DatasetError": "dataset", "add_recording": "collect"}


def __getattr__(name: str) -> Any:
    # `import reflex` stays light: torch, onnx and pandas load with the function that needs them.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'reflex' has no attribute {name!r}")
