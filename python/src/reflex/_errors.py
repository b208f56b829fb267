"""The package's exceptions."""

from __future__ import annotations


class ExportError(ValueError):
    """A model that Reflex cannot run as it is: every problem found, one per line.

    Each entry of `problems` names where it is (a module path such as `features.3`, an fx node
    or an ONNX node) and the operation, e.g. ``"head.1: nn.LSTM is not a Reflex operation"``.
    """

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{n} unsupported operation{'s' if n != 1 else ''} or problem{'s' if n != 1 else ''}:"
        super().__init__(head + "\n  " + "\n  ".join(self.problems))


class VerifyError(AssertionError):
    """`reflexd` disagrees with the reference (PyTorch or onnxruntime) beyond the docs/layers.md tolerance.

    `worst_layer` is the first Reflex layer whose output disagrees (found by running prefixes
    of the graph through `reflexd`), or None when that could not be narrowed down.
    """

    def __init__(self, message: str, worst_layer: str | None = None):
        self.worst_layer = worst_layer
        super().__init__(message)


class ReflexdError(RuntimeError):
    """`reflexd` could not be found or exited with an error (its message is included)."""
