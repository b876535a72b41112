"""The decoders' prefill and step written for export: fixed control flow, state in and out.

ONNX graphs cannot branch on Python integers nor update their inputs in place, so each
architecture gets two small modules over the decoder's own parameters:

- ``Prefill``: tokens (1, T) -> logits (1, T, V) and the state after the last token. T is
  dynamic. The LSTM's and Mamba's prefill also take the state to continue from, so a long
  primer goes in pieces (`PREFILL_CHUNK`; Mamba's prefill is quadratic in a piece's length);
  the Transformer's starts empty and takes at most its window, which is all it attends to.
- ``Step``: token (B,) and the state -> logits (B, V) and the new state.

The maths is the decoder's; the eager ``forward``/``step`` stay the reference, and
``tests/test_runtime.py`` checks the exported graphs against them. State layouts may differ
from the eager ones where that makes a graph simpler: the Transformer keeps its last
``W - 1`` keys in order (the eager step uses a ring buffer of ``W`` slots), and its position
travels as a tensor.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from musegen.models.base import Decoder
from musegen.models.lstm import LSTMDecoder, LSTMState
from musegen.models.mamba import MambaDecoder
from musegen.models.transformer import TransformerDecoder

# Tokens per prefill call, where prefill carries a state (measured on a 420-token primer,
# one thread: Mamba 133 ms in pieces of 64, 261 ms in one; the LSTM 113-126 ms either way).
PREFILL_CHUNK: dict[str, int] = {"lstm": 512, "mamba": 64}

# Per architecture: the state's tensors in graph order, each with its batch dimension
# (None: shared by every row).
STATE_SPEC: dict[str, list[tuple[str, int | None]]] = {
    "lstm": [("h", 1), ("c", 1)],
    "transformer": [("k", 1), ("v", 1), ("pos", None)],
    "mamba": [("conv", 1), ("ssm", 1)],
}


class _Graph(nn.Module):
    """Holds the decoder as ``model`` (its parameters are named ``model.<name>`` in a graph)."""

    def __init__(self, model: Decoder) -> None:
        super().__init__()
        self.model = model


# --- LSTM --------------------------------------------------------------------------------


class LSTMPrefill(_Graph):
    def forward(self, tokens: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, ...]:  # (1, T)
        logits, state = self.model._forward(tokens, LSTMState(h=h, c=c), return_state=True)
        return logits, state.h, state.c  # (1, T, V), (L, 1, D) x 2


class LSTMStep(_Graph):
    def forward(self, token: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, ...]:
        logits, state = self.model.step(token, LSTMState(h=h, c=c))  # builds new h, c
        return logits, state.h, state.c  # (B, V), (L, B, D) x 2


# --- Transformer -------------------------------------------------------------------------


def _rotation(model: TransformerDecoder, pos: Tensor) -> tuple[Tensor, Tensor]:
    """cos and sin (T, Dh/2) of the rotary angles at positions ``pos`` (T,), float64 angles."""
    dh = model.config.head_dim
    exponent = torch.arange(0, dh, 2, dtype=torch.float64) / dh
    inv_freq = model.config.rope_base ** (-exponent)  # (Dh/2,)
    angles = pos.to(torch.float64)[:, None] * inv_freq  # (T, Dh/2)
    return angles.cos().float(), angles.sin().float()


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate adjacent pairs of x (..., T, Dh) by the angles (T, Dh/2): the eager ``rotate``."""
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., T, Dh/2)
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


def _heads(model: TransformerDecoder, block: nn.Module, x: Tensor, pos: Tensor):
    """q, k, v (B, H, T, Dh) of ``block`` for x (B, T, D) at positions ``pos`` (T,)."""
    c = model.config
    qkv = block.attn.qkv(block.norm1(x))  # (B, T, 3D)
    q, k, v = (t.unflatten(-1, (c.n_heads, c.head_dim)).transpose(1, 2) for t in qkv.chunk(3, -1))
    cos, sin = _rotation(model, pos)
    return _rotate(q, cos, sin), _rotate(k, cos, sin), v


def _block_out(block: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The rest of a block after attention: y (B, H, T, Dh) -> x (B, T, D)."""
    x = x + block.attn.proj(y.transpose(1, 2).flatten(2))
    return x + block.mlp(block.norm2(x))


class TransformerPrefill(_Graph):
    def forward(self, tokens: Tensor) -> tuple[Tensor, ...]:  # (1, T), T <= max_seq_len
        model, keep = self.model, self.model.config.max_seq_len - 1
        x = model.embed(tokens)  # (1, T, D)
        pos = torch.arange(tokens.size(1))  # (T,)
        ks, vs = [], []
        for block in model.blocks:
            q, k, v = _heads(model, block, x, pos)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (1, H, T, Dh)
            x = _block_out(block, x, y)
            ks.append(k[:, :, -keep:])  # the last W - 1 keys: what the next token may see
            vs.append(v[:, :, -keep:])
        logits = F.linear(model.norm(x), model.embed.weight)  # (1, T, V)
        return logits, torch.stack(ks), torch.stack(vs), pos[-1:] + 1  # (L, 1, H, S, Dh)


class TransformerStep(_Graph):
    def forward(self, token: Tensor, k: Tensor, v: Tensor, pos: Tensor) -> tuple[Tensor, ...]:
        """token (B,), k and v (L, B, H, S, Dh) for the S positions before ``pos`` (1,)."""
        model, keep = self.model, self.model.config.max_seq_len - 1
        x = model.embed(token)[:, None]  # (B, 1, D)
        scale = model.config.head_dim**-0.5
        ks, vs = [], []
        for block, k_past, v_past in zip(model.blocks, k, v, strict=True):
            q, k_new, v_new = _heads(model, block, x, pos)
            keys = torch.cat([k_past, k_new], dim=2)  # (B, H, S+1, Dh)
            values = torch.cat([v_past, v_new], dim=2)
            weights = torch.softmax(q @ keys.transpose(-1, -2) * scale, dim=-1)  # (B, H, 1, S+1)
            x = _block_out(block, x, weights @ values)
            ks.append(keys[:, :, -keep:])
            vs.append(values[:, :, -keep:])
        logits = F.linear(model.norm(x[:, 0]), model.embed.weight)  # (B, V)
        return logits, torch.stack(ks), torch.stack(vs), pos + 1


# --- Mamba-2 -----------------------------------------------------------------------------


def _mamba_prefill_layer(
    mixer: nn.Module, u: Tensor, conv_state: Tensor, ssm_state: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """One mixer over u (1, T, D) from the given state, the whole input as one SSD chunk.

    conv_state (1, d_conv, conv_dim) and ssm_state (1, H, P, N) in; returns out (1, T, D)
    and both states after the last token. Log decays are summed in float64: over hundreds of
    steps the differences of float32 sums would lose the precision the chunked scan keeps.
    """
    c = mixer.config
    z, xBC, dt = mixer.in_proj(u).split([c.d_inner, c.conv_dim, c.nheads], dim=-1)
    padded = torch.cat([conv_state[:, 1:], xBC], dim=1)  # (1, d_conv - 1 + T, conv_dim)
    conv_state = padded[:, -c.d_conv :]  # (1, d_conv, conv_dim)
    taps = mixer.conv1d.weight.view(c.conv_dim, c.d_conv)
    conv = mixer.conv1d.bias
    for i in range(c.d_conv):  # causal depthwise conv: shifted inputs, negative ends only
        end = i - (c.d_conv - 1)
        conv = conv + (padded[:, i:end] if end else padded[:, i:]) * taps[:, i]
    xBC = F.silu(conv)  # (1, T, conv_dim)
    x, Bm, Cm = xBC.split([c.d_inner, c.ngroups * c.d_state, c.ngroups * c.d_state], dim=-1)
    k = c.nheads // c.ngroups
    x = x.unflatten(-1, (c.nheads, c.headdim))[0]  # (T, H, P)
    Bm = Bm.unflatten(-1, (c.ngroups, c.d_state))[0].repeat_interleave(k, dim=1)  # (T, H, N)
    Cm = Cm.unflatten(-1, (c.ngroups, c.d_state))[0].repeat_interleave(k, dim=1)  # (T, H, N)
    dt = F.softplus(dt[0] + mixer.dt_bias)  # (T, H)
    a_cum = (dt.double() * -torch.exp(mixer.A_log.double())).cumsum(0).transpose(0, 1)  # (H, T)
    seg = a_cum[:, :, None] - a_cum[:, None, :]  # (H, T_i, T_j): log decay from j to i
    causal = torch.ones_like(seg[0], dtype=torch.bool).tril()
    decay = torch.exp(seg.masked_fill(~causal, -math.inf)).float()  # (H, T, T)
    xdt = (x * dt[..., None]).transpose(0, 1)  # (H, T, P)
    scores = Cm.transpose(0, 1) @ Bm.permute(1, 2, 0) * decay  # (H, T, T)
    s0 = ssm_state[0]  # (H, P, N)
    entering = (Cm.transpose(0, 1) @ s0.transpose(1, 2)) * torch.exp(a_cum).float()[..., None]
    y = (scores @ xdt + entering).transpose(0, 1) + x * mixer.D[:, None]  # (T, H, P)
    to_end = torch.exp(a_cum[:, -1:] - a_cum).float()  # (H, T)
    ssm = (xdt * to_end[..., None]).transpose(1, 2) @ Bm.transpose(0, 1)  # (H, P, N)
    ssm = ssm + s0 * torch.exp(a_cum[:, -1]).float()[:, None, None]
    y = mixer.norm(y.flatten(-2)[None], z)  # (1, T, d_inner)
    return mixer.out_proj(y), conv_state, ssm[None]


class MambaPrefill(_Graph):
    def forward(self, tokens: Tensor, conv: Tensor, ssm: Tensor) -> tuple[Tensor, ...]:
        """tokens (1, T), conv (L, 1, d_conv, conv_dim), ssm (L, 1, H, P, N)."""
        model = self.model
        x = model.embed(tokens)  # (1, T, D)
        convs, ssms = [], []
        for layer, conv_l, ssm_l in zip(model.layers, conv, ssm, strict=True):
            y, conv_l, ssm_l = _mamba_prefill_layer(layer.mixer, layer.norm(x), conv_l, ssm_l)
            x = x + y
            convs.append(conv_l)
            ssms.append(ssm_l)
        logits = F.linear(model.norm_f(x), model.embed.weight)  # (1, T, V)
        return logits, torch.stack(convs), torch.stack(ssms)


def _mamba_step_layer(
    mixer: nn.Module, u: Tensor, conv_state: Tensor, ssm_state: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """``Mamba2.step`` without in-place updates: u (B, D), conv_state (B, d_conv, conv_dim),
    ssm_state (B, H, P, N) -> (out (B, D), new conv_state, new ssm_state)."""
    c = mixer.config
    b, k = u.size(0), c.nheads // c.ngroups
    z, xBC, dt = mixer.in_proj(u).split([c.d_inner, c.conv_dim, c.nheads], dim=-1)
    conv_state = torch.cat([conv_state[:, 1:], xBC[:, None]], dim=1)  # shift in xBC
    taps = mixer.conv1d.weight.view(c.conv_dim, c.d_conv).t()  # (d_conv, conv_dim)
    xBC = F.silu((conv_state * taps).sum(1) + mixer.conv1d.bias)  # (B, conv_dim)
    x, Bm, Cm = xBC.split([c.d_inner, c.ngroups * c.d_state, c.ngroups * c.d_state], dim=-1)
    x = x.view(b, c.nheads, c.headdim)  # (B, H, P)
    Bm = Bm.view(b, c.ngroups, 1, c.d_state).repeat_interleave(k, dim=1)  # (B, H, 1, N)
    Cm = Cm.view(b, c.ngroups, c.d_state, 1).repeat_interleave(k, dim=1)  # (B, H, N, 1)
    dt = F.softplus(dt + mixer.dt_bias)  # (B, H)
    decay = torch.exp(dt * -torch.exp(mixer.A_log))[..., None, None]  # (B, H, 1, 1)
    dtx = (dt[..., None] * x)[..., None]  # (B, H, P, 1)
    ssm_state = ssm_state * decay + dtx * Bm  # (B, H, P, N)
    y = (ssm_state @ Cm)[..., 0] + x * mixer.D[:, None]  # (B, H, P)
    return mixer.out_proj(mixer.norm(y.flatten(1), z)), conv_state, ssm_state


class MambaStep(_Graph):
    def forward(self, token: Tensor, conv: Tensor, ssm: Tensor) -> tuple[Tensor, ...]:
        """token (B,), conv (L, B, d_conv, conv_dim), ssm (L, B, H, P, N)."""
        model = self.model
        x = model.embed(token)  # (B, D)
        convs, ssms = [], []
        for layer, conv_l, ssm_l in zip(model.layers, conv, ssm, strict=True):
            y, conv_l, ssm_l = _mamba_step_layer(layer.mixer, layer.norm(x), conv_l, ssm_l)
            x = x + y
            convs.append(conv_l)
            ssms.append(ssm_l)
        logits = F.linear(model.norm_f(x), model.embed.weight)  # (B, V)
        return logits, torch.stack(convs), torch.stack(ssms)


GRAPHS: dict[type[Decoder], tuple[type[_Graph], type[_Graph]]] = {
    LSTMDecoder: (LSTMPrefill, LSTMStep),
    TransformerDecoder: (TransformerPrefill, TransformerStep),
    MambaDecoder: (MambaPrefill, MambaStep),
}
