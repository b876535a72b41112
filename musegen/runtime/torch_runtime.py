"""The reference runtime: a decoder's eager PyTorch ``forward`` and ``step``."""

from __future__ import annotations

import numpy as np
import torch

from musegen.models.base import Decoder, DecoderState


class TorchRuntime:
    """`musegen.runtime.base.Runtime` over a torch decoder (any device)."""

    name = "torch"
    keeps_prefills = False

    def __init__(self, model: Decoder) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.window = model.context_window

    def prefill(self, ids: list[int]) -> tuple[np.ndarray, DecoderState]:
        with torch.inference_mode():
            tokens = torch.tensor([ids], dtype=torch.long, device=self.device)
            logits, state = self.model(tokens, return_state=True)  # (1, T, V)
        return logits[0].float().cpu().numpy(), state

    read = prefill  # nothing is kept

    def repeat(self, state: DecoderState, n: int) -> DecoderState:
        return state.select(torch.zeros(n, dtype=torch.long, device=self.device))

    def step(self, tokens: np.ndarray, state: DecoderState) -> tuple[np.ndarray, DecoderState]:
        with torch.inference_mode():
            token = torch.from_numpy(np.asarray(tokens, dtype=np.int64)).to(self.device)
            logits, state = self.model.step(token, state)  # (n, V)
        return logits.float().cpu().numpy(), state
