"""LSTM decoder: tied embedding and head, variational (locked) dropout between layers.

The model is a stack of single-layer ``nn.LSTM`` modules so that dropout between layers can
use one mask per sequence (the same units dropped at every time step, Gal & Ghahramani 2016;
AWD-LSTM). The hidden size equals the embedding size, so the head reuses the embedding.
An LSTM's outputs lie in (-1, 1), so tied logits ``x @ E.T`` can only grow as fast as the
embedding does (against weight decay); a learned scalar ``logit_scale`` lifts that bound. It
made training several times faster: 2.0 instead of 4.0 bits/token after 200 steps on the folk
corpus (batch 8 x 512, lr 2e-3).
``step`` is one fused ``torch.lstm_cell`` per layer (``_forward`` is its tested reference).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import threading
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from musegen.errors import ConfigError
from musegen.models.base import Decoder, DecoderState


@dataclasses.dataclass
class LSTMConfig:
    """Hyperparameters of :class:`LSTMDecoder`."""

    vocab_size: int
    d_model: int = 352  # embedding size = hidden size of every layer (tied head)
    n_layers: int = 3
    dropout: float = 0.1  # locked dropout on the embedding, between layers and on the output

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"lstm: {name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lstm: dropout must be in [0, 1), got {self.dropout}")


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(d_model=32, n_layers=2, dropout=0.0),
    "small": dict(d_model=352, n_layers=3, dropout=0.1),
}


# torch.backends.mkldnn.flags(enabled=False, <every other flag>=None): None leaves a flag as it
# is, so only oneDNN itself is switched off (the other flags differ between torch versions).
# The flag is process-wide: threads (the web demo) take turns switching it.
_ONEDNN_LOCK = threading.Lock()
_ONEDNN_OFF = dict.fromkeys(inspect.signature(torch.backends.mkldnn.flags).parameters) | {
    "enabled": False
}


@functools.cache
def onednn_runs(dtype: torch.dtype) -> bool:
    """Whether oneDNN has an LSTM kernel for ``dtype`` on this CPU (float32 always; bfloat16
    and float16 only where the CPU has the instructions, e.g. AVX-512 BF16 or AMX)."""
    probes = {
        torch.bfloat16: "_is_mkldnn_bf16_supported",
        torch.float16: "_is_mkldnn_fp16_supported",
    }
    if dtype not in probes:
        return True
    probe = getattr(torch.ops.mkldnn, probes[dtype], None)
    return bool(probe is not None and probe())


# Initial logit scale: with the embedding drawn from U(-0.1, 0.1) and outputs of about 0.5
# per unit, logits start with a standard deviation of ~0.5; x5 gives the head a usable range.
LOGIT_SCALE_INIT = 5.0


@dataclasses.dataclass
class LSTMState(DecoderState):
    """Hidden and cell state of every layer."""

    h: Tensor  # (L, B, D)
    c: Tensor  # (L, B, D)

    batch_dims = {"h": 1, "c": 1}


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, shared by all time steps."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D)
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty(x.size(0), 1, x.size(2)).bernoulli_(1.0 - self.p)  # (B, 1, D)
        return x * keep / (1.0 - self.p)


class LSTMDecoder(Decoder):
    """Embedding -> n_layers LSTM layers (locked dropout between) -> tied head."""

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.embed = nn.Embedding(config.vocab_size, d)
        self.layers = nn.ModuleList(nn.LSTM(d, d, batch_first=True) for _ in range(config.n_layers))
        self.drop = LockedDropout(config.dropout)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)

    def init_state(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> LSTMState:
        """Zero hidden and cell states for ``batch`` sequences."""
        device, dtype = self._state_device_dtype(device, dtype)
        shape = (self.config.n_layers, batch, self.config.d_model)
        return LSTMState(
            h=torch.zeros(shape, device=device, dtype=dtype),
            c=torch.zeros(shape, device=device, dtype=dtype),
        )

    def forward(
        self, tokens: Tensor, state: LSTMState | None = None, return_state: bool = False
    ) -> Tensor | tuple[Tensor, LSTMState]:
        """Logits for every position of ``tokens`` (B, T), continuing from ``state`` if given.

        Without gradients (prefill, evaluation) oneDNN is switched off: it builds a new kernel
        for every new sequence length, which costs seconds for a long primer; the plain kernel
        has no such start-up cost. Training keeps oneDNN (fixed shapes, faster backward) where
        it has a kernel for the compute dtype: bfloat16 and float16 LSTMs need AVX-512 or AMX
        class CPUs, so under autocast on an AVX2-only CPU the plain kernel runs instead.
        """
        if not torch.is_grad_enabled() or not onednn_runs(self._compute_dtype()):
            with _ONEDNN_LOCK, torch.backends.mkldnn.flags(**_ONEDNN_OFF):
                return self._forward(tokens, state, return_state)
        return self._forward(tokens, state, return_state)

    def _compute_dtype(self) -> torch.dtype:
        """The dtype the LSTM kernels run in: autocast's where it is on, else the weights'."""
        device = self.embed.weight.device.type
        if torch.is_autocast_enabled(device):
            return torch.get_autocast_dtype(device)
        return self.embed.weight.dtype

    def _forward(
        self, tokens: Tensor, state: LSTMState | None, return_state: bool
    ) -> Tensor | tuple[Tensor, LSTMState]:
        x = self.drop(self.embed(tokens))  # (B, T, D)
        hs, cs = [], []
        for i, lstm in enumerate(self.layers):
            hx = None if state is None else (state.h[i : i + 1], state.c[i : i + 1])
            x, (h, c) = lstm(x, hx)  # (B, T, D), (1, B, D) x 2
            x = self.drop(x)
            hs.append(h)
            cs.append(c)
        logits = F.linear(x, self.embed.weight) * self.logit_scale  # (B, T, V)
        if not return_state:
            return logits
        return logits, LSTMState(h=torch.cat(hs), c=torch.cat(cs))

    def step(self, token: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        """Advance every sequence by one token (B,); returns logits (B, V) and the state.

        The fast path: one fused ``torch.lstm_cell`` per layer, skipping ``nn.LSTM``'s
        per-call checks (a third of the step's time at batch 1). ``_forward`` is the
        reference it is tested against; training (dropout active) goes through it.
        """
        if self.training and self.config.dropout > 0:
            with _ONEDNN_LOCK, torch.backends.mkldnn.flags(**_ONEDNN_OFF):
                logits, new = self._forward(token[:, None], state, return_state=True)
            state.h, state.c = new.h, new.c
            return logits[:, 0], state
        layers, (embed, scale) = self.step_weights()
        x = F.embedding(token, embed)  # (B, D)
        hs, cs = [], []
        for i, weights in enumerate(layers):
            h, c = torch.lstm_cell(x, (state.h[i], state.c[i]), *weights)  # (B, D) x 2
            hs.append(h)
            cs.append(c)
            x = h
        state.h, state.c = torch.stack(hs), torch.stack(cs)  # (L, B, D)
        return F.linear(x, embed) * scale, state

    def _gather_step_weights(self) -> tuple:
        """Per layer (w_ih, w_hh, b_ih, b_hh), then (embedding, logit scale)."""
        layers = tuple(
            (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
            for lstm in self.layers
        )
        return layers, (self.embed.weight, self.logit_scale)
