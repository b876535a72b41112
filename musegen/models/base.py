"""What the three decoders share: the recurrent-state base class and the Decoder protocol.

Every decoder maps token ids to next-token logits and can be driven two ways that agree:
``forward`` over a whole sequence (training, prefill) and ``step`` one token at a time
(generation). The state carried between calls is a small dataclass of tensors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

S = TypeVar("S", bound="DecoderState")


@dataclasses.dataclass
class DecoderState:
    """Recurrent state of a decoder: a dataclass whose tensor fields all carry a batch dimension.

    Subclasses name the batch dimension of each tensor field in ``batch_dims`` (default 0).
    Non-tensor fields (such as a position counter) are shared by every row.
    """

    batch_dims: ClassVar[dict[str, int]] = {}

    def tensors(self) -> Iterator[tuple[str, Tensor, int]]:
        """Yield ``(name, tensor, batch_dim)`` for every tensor field."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                yield f.name, value, self.batch_dims.get(f.name, 0)

    @property
    def batch_size(self) -> int:
        """Number of rows (independent sequences) in this state."""
        name, tensor, dim = next(self.tensors())
        return tensor.shape[dim]

    def select(self: S, index: int | Tensor) -> S:
        """A copy holding only some rows.

        ``select(i)`` gives the state of row ``i`` as a batch of one (to branch a variation);
        ``select(torch.tensor([0, 0, 0]))`` gathers rows, repeats allowed (three copies of row 0).
        The copy shares no memory with ``self``, so stepping one never disturbs the other.
        """
        if isinstance(index, int):
            n = self.batch_size
            if not -n <= index < n:
                raise IndexError(f"row {index} out of range for a state of batch {n}")
            index = torch.tensor([index % n])
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        rows = {
            name: tensor.index_select(dim, index.to(tensor.device))
            for name, tensor, dim in self.tensors()
        }
        return dataclasses.replace(self, **rows)

    def to(
        self: S, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> S:
        """A copy on ``device``; floating tensors also cast to ``dtype`` when given."""
        moved = {}
        for name, tensor, _ in self.tensors():
            cast = dtype if dtype is not None and tensor.is_floating_point() else None
            moved[name] = tensor.to(device=device, dtype=cast)
        return dataclasses.replace(self, **moved)


class Decoder(nn.Module):
    """The protocol all decoders follow (subclasses implement the three methods).

    - ``forward(tokens, state=None, return_state=False)``: ``(B, T)`` long -> logits
      ``(B, T, V)``, and the state after the last token when ``return_state``. Passing
      ``state`` continues from it, so a prompt can be prefilled in chunks. The state passed
      in may be updated in place: always use the returned one.
    - ``init_state(batch, device=None, dtype=None)``: the state before any token.
    - ``step(token, state)``: ``(B,)`` -> ``(logits (B, V), state)``; meant for inference
      (``torch.inference_mode``); may update ``state`` in place and returns it.

    ``context_window`` is how many past tokens the model sees (``None``: unbounded).
    """

    config: Any
    context_window: int | None = None

    def forward(
        self, tokens: Tensor, state: DecoderState | None = None, return_state: bool = False
    ) -> Tensor | tuple[Tensor, DecoderState]:
        raise NotImplementedError

    def init_state(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> DecoderState:
        raise NotImplementedError

    def step(self, token: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        raise NotImplementedError

    def step_weights(self) -> Any:
        """The tensors ``step`` reads, gathered once by ``_gather_step_weights``.

        At batch 1 a step's kernels are small enough that looking parameters up through
        ``nn.Module`` attributes costs a noticeable share of it. Parameters are held by
        reference, so in-place updates (an optimizer step) show through; ``.to()``, ``.half()``
        and the like, and ``load_state_dict``, drop the gathered set. After replacing a
        parameter object by hand, call ``forget_step_weights()``.
        """
        weights = self.__dict__.get("_step_weights")
        if weights is None:
            with torch.inference_mode(False), torch.no_grad():  # plain views, usable anywhere
                weights = self._gather_step_weights()
            self.__dict__["_step_weights"] = weights
        return weights

    def forget_step_weights(self) -> None:
        """Drop the tensors gathered by ``step_weights`` (they are gathered again when needed)."""
        self.__dict__.pop("_step_weights", None)

    def _gather_step_weights(self) -> Any:
        raise NotImplementedError

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        self.forget_step_weights()
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:  # also when wrapped
        self.forget_step_weights()
        super()._load_from_state_dict(*args, **kwargs)

    def _state_device_dtype(
        self, device: torch.device | str | None, dtype: torch.dtype | None
    ) -> tuple[torch.device, torch.dtype]:
        """Defaults for ``init_state``: the device and dtype of the model's parameters."""
        p = next(self.parameters())
        return torch.device(device) if device is not None else p.device, dtype or p.dtype


class Dropout(nn.Dropout):
    """``nn.Dropout`` that returns its input untouched, without a kernel call, in eval mode
    (one-token steps call it many times)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) if self.training and self.p > 0 else x
