"""The interface generation drives a model through (no torch needed to use it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np


class Runtime(Protocol):
    """A decoder behind two calls, with NumPy in and out.

    ``state`` is opaque to callers: whatever ``prefill`` returned, passed back to ``step``.
    """

    name: str  # "torch" or "onnx"
    window: int | None  # the most tokens the model attends to (None: unbounded)
    keeps_prefills: bool  # whether prefill keeps its last few results (ONNX Runtime does)

    def prefill(self, ids: list[int]) -> tuple[np.ndarray, Any]:
        """Logits (T, V) float32 at every position of ``ids``, and the state after them
        (a batch of one). ``len(ids)`` is at most ``window``."""
        ...

    def read(self, ids: list[int]) -> tuple[np.ndarray, Any]:
        """As ``prefill``, and never kept: for sequences read once (scoring), which would
        otherwise push a clip read ahead out of the kept prefills."""
        ...

    def repeat(self, state: Any, n: int) -> Any:
        """A state of ``n`` rows, each a copy of the single row of ``state``."""
        ...

    def step(self, tokens: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """Advance each row by its token (n,) int64: logits (n, V) float32 and the new state.

        The state passed in may be reused: always continue from the returned one."""
        ...
