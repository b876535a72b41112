"""The decoders' prefill and step written for export: fixed control flow, state in and out.

ONNX graphs cannot branch on Python integers nor update their inputs in place, so each
architecture gets two small modules over the decoder's own parameters:

- ``Prefill``: tokens (1, T) -> logits (1, T, V) and the state after the last token. T is
  dynamic. The LSTM's and Mamba's prefill also take the state to continue from, so a long
  primer goes in pieces (`PREFILL_CHUNK`; Mamba's prefill is quadratic in a piece's length);
  the Transformer's starts empty and takes at most its window, which is all it attends to.
- ``Step``: token (B,) and the state -> logits (B, V) and the new state; for the Transformer,
  only the new token's keys and values (its cache is a ring buffer the runtime writes).

The maths is the decoder's; the eager ``forward``/``step`` stay the reference, and
``tests/test_runtime.py`` checks the exported graphs against them. State layouts may differ
from the eager ones where that makes a graph simpler: the Transformer's position travels as
a tensor.
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


def state_spec(model: Decoder) -> list[tuple[str, int | None]]:
    """The graphs' state tensors in order, each with its batch dimension (None: shared).

    The Transformer's and Mamba's state is one tensor per layer: a graph that took them
    stacked would copy each layer's slice out of the stack at every step."""
    layers = range(model.config.n_layers)
    if isinstance(model, LSTMDecoder):
        return [("h", 1), ("c", 1)]  # (L, B, D): small
    if isinstance(model, TransformerDecoder):
        return [*((f"k{i}", 0) for i in layers), *((f"v{i}", 0) for i in layers), ("pos", None)]
    return [*((f"conv{i}", 0) for i in layers), *((f"ssm{i}", 0) for i in layers)]


def empty_state(model: Decoder) -> list[Tensor]:
    """The state a prefill graph starts from, in `state_spec` order ([] for the Transformer,
    whose prefill starts empty)."""
    empty = model.init_state(1)
    if isinstance(model, LSTMDecoder):
        return [empty.h, empty.c]
    if isinstance(model, MambaDecoder):
        return [*empty.conv.unbind(0), *empty.ssm.unbind(0)]  # (1, ...) per layer
    return []


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
    """cos and sin (T, 1, 1, Dh) of the rotary angles at positions ``pos`` (T,), each angle
    twice (for both members of its pair), from float64 angles as the eager model's."""
    dh = model.config.head_dim
    exponent = torch.arange(0, dh, 2, dtype=torch.float64).repeat_interleave(2) / dh
    inv_freq = model.config.rope_base ** (-exponent)  # (Dh,)
    angles = pos.to(torch.float64)[:, None] * inv_freq  # (T, Dh)
    return angles.cos().float()[:, None, None], angles.sin().float()[:, None, None]


def _pair_swap(dh: int) -> Tensor:
    """(Dh, Dh) matrix taking each pair (a, b) to (-b, a): x @ it is x turned a quarter."""
    swap = torch.zeros(dh, dh)
    swap[torch.arange(1, dh, 2), torch.arange(0, dh, 2)] = -1.0
    swap[torch.arange(0, dh, 2), torch.arange(1, dh, 2)] = 1.0
    return swap


def _heads(graph: _Graph, block: nn.Module, x: Tensor, rotation: tuple, bt: tuple):
    """q, k, v (B, H, T, Dh) of ``block`` for x (B, T, D), q and k rotated by ``rotation``
    (`_rotation`): (a, b) -> (a cos - b sin, a sin + b cos), the eager ``rotate``.

    ``bt``: (B, T) with one of them -1, so that reshapes need no shape arithmetic."""
    c = graph.model.config
    qkv = block.attn.qkv(block.norm1(x)).reshape(*bt, 3, c.n_heads, c.head_dim)  # (B,T,3,H,Dh)
    cos, sin = rotation
    qk = qkv[:, :, :2] * cos + (qkv[:, :, :2] @ graph.pair_swap) * sin  # (B, T, 2, H, Dh)
    q, k = qk.permute(2, 0, 3, 1, 4)  # (B, H, T, Dh) each
    return q, k, qkv[:, :, 2].transpose(1, 2)


def _block_out(block: nn.Module, x: Tensor, y: Tensor, bt: tuple) -> Tensor:
    """The rest of a block after attention: y (B, H, T, Dh) -> x (B, T, D)."""
    x = x + block.attn.proj(y.transpose(1, 2).reshape(*bt, x.size(-1)))
    return x + block.mlp(block.norm2(x))


class _TransformerGraph(_Graph):
    def __init__(self, model: TransformerDecoder) -> None:
        super().__init__(model)
        self.register_buffer("pair_swap", _pair_swap(model.config.head_dim), persistent=False)


class TransformerPrefill(_TransformerGraph):
    def forward(self, tokens: Tensor) -> tuple[Tensor, ...]:  # (1, T), T <= max_seq_len
        """-> logits (1, T, V), keys (1, H, Dh, T) per layer (transposed, as the step reads
        them), values (1, H, T, Dh) per layer, pos (1,)."""
        model = self.model
        x = model.embed(tokens)  # (1, T, D)
        pos = torch.arange(tokens.size(1))  # (T,)
        rotation = _rotation(model, pos)
        ks, vs = [], []
        for block in model.blocks:
            q, k, v = _heads(self, block, x, rotation, (1, -1))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (1, H, T, Dh)
            x = _block_out(block, x, y, (1, -1))
            ks.append(k.transpose(-1, -2))
            vs.append(v)
        logits = F.linear(model.norm(x), model.embed.weight)  # (1, T, V)
        return logits, *ks, *vs, pos[-1:] + 1


class TransformerStep(_TransformerGraph):
    """One token against a ring buffer of keys and values that the graph only reads.

    The caches hold position p in slot p % W, as the eager step's: keys (B, H, Dh, S),
    transposed so that both products of a step are a row against a matrix read in order,
    values (B, H, S, Dh). S, the slots the caches have, is W once the window is full; before
    that the runtime may pass fewer (S > pos), so that a short clip's step reads only the
    slots it has filled. A graph cannot update its input in place, and returning a new cache
    would copy it every step; so the step returns only the new token's keys and values
    (B, H, Dh) per layer, and the runtime writes them into slot ``pos % W``
    (`musegen.runtime.onnx_runtime`). The new token sees the filled slots except the one it
    is about to overwrite (position pos - W, out of the window), and itself.
    """

    def forward(self, token: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        """token (B,), keys (B, H, Dh, S) per layer, values (B, H, S, Dh) per layer,
        pos (1,)."""
        model, W, L = self.model, self.model.config.max_seq_len, self.model.config.n_layers
        keys, values, pos = state[:L], state[L : 2 * L], state[2 * L]
        x = model.embed(token)[:, None]  # (B, 1, D)
        scale = model.config.head_dim**-0.5
        slots = torch.arange(keys[0].size(-1))  # (S,)
        hidden = (slots >= pos) | (slots == pos % W)  # empty, or leaving the window
        mask = torch.where(hidden, -math.inf, 0.0)  # (S,), added to every layer's scores
        rotation = _rotation(model, pos)
        ks, vs = [], []
        for block, k_cache, v_cache in zip(model.blocks, keys, values, strict=True):
            q, k_new, v_new = _heads(self, block, x, rotation, (-1, 1))  # (B, H, 1, Dh)
            q = q * scale
            cached = q @ k_cache + mask  # (B, H, 1, S)
            own = (q * k_new).sum(-1, keepdim=True)  # (B, H, 1, 1)
            weights = torch.softmax(torch.cat([cached, own], dim=-1), dim=-1)  # (B,H,1,S+1)
            y = weights[..., :-1] @ v_cache + weights[..., -1:] * v_new  # (B, H, 1, Dh)
            x = _block_out(block, x, y, (-1, 1))
            ks.append(k_new[:, :, 0])
            vs.append(v_new[:, :, 0])
        logits = F.linear(model.norm(x[:, 0]), model.embed.weight)  # (B, V)
        return logits, *ks, *vs


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
    # log decays from j to i (H, T_i, T_j): differences taken in float64, then float32,
    # where ONNX Runtime's Exp and Where are vectorised (3x faster prefill than in float64)
    seg = (a_cum[:, :, None] - a_cum[:, None, :]).float()
    causal = torch.ones_like(seg[0], dtype=torch.bool).tril()
    decay = torch.exp(seg.masked_fill(~causal, -math.inf))  # (H, T, T)
    xdt = (x * dt[..., None]).transpose(0, 1)  # (H, T, P)
    scores = Cm.transpose(0, 1) @ Bm.permute(1, 2, 0) * decay  # (H, T, T)
    s0 = ssm_state[0]  # (H, P, N)
    from_start = a_cum.float()  # (H, T): log decay of the entering state to each token
    entering = (Cm.transpose(0, 1) @ s0.transpose(1, 2)) * torch.exp(from_start)[..., None]
    y = (scores @ xdt + entering).transpose(0, 1) + x * mixer.D[:, None]  # (T, H, P)
    to_end = torch.exp((a_cum[:, -1:] - a_cum).float())  # (H, T)
    ssm = (xdt * to_end[..., None]).transpose(1, 2) @ Bm.transpose(0, 1)  # (H, P, N)
    ssm = ssm + s0 * torch.exp(from_start[:, -1])[:, None, None]
    y = mixer.norm(y.flatten(-2)[None], z)  # (1, T, d_inner)
    return mixer.out_proj(y), conv_state, ssm[None]


def _mamba_layers(model: MambaDecoder, x: Tensor, state: tuple, layer_fn) -> tuple[Tensor, ...]:
    """Run ``layer_fn(mixer, u, conv, ssm)`` through the residual stack: x (B, [T,] D) ->
    logits, the convs of every layer, then their SSM states."""
    n = model.config.n_layers
    convs, ssms = [], []
    for layer, conv, ssm in zip(model.layers, state[:n], state[n:], strict=True):
        y, conv, ssm = layer_fn(layer.mixer, layer.norm(x), conv, ssm)
        x = x + y
        convs.append(conv)
        ssms.append(ssm)
    return F.linear(model.norm_f(x), model.embed.weight), *convs, *ssms


class MambaPrefill(_Graph):
    def forward(self, tokens: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        """tokens (1, T), conv (1, d_conv, conv_dim) per layer, ssm (1, H, P, N) per layer
        -> logits (1, T, V) and the state after the last token."""
        return _mamba_layers(self.model, self.model.embed(tokens), state, _mamba_prefill_layer)


def _mamba_step_layer(
    mixer: nn.Module, u: Tensor, conv_state: Tensor, ssm_state: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """``Mamba2.step`` without in-place updates: u (B, D), conv_state (B, d_conv, conv_dim),
    ssm_state (B, H, P, N) -> (out (B, D), new conv_state, new ssm_state). Heads are grouped
    as (G, K) so that a group's B and C broadcast over its heads; reshapes keep the batch as
    -1 (no shape arithmetic in the graph)."""
    c = mixer.config
    g, k, p, n = c.ngroups, c.nheads // c.ngroups, c.headdim, c.d_state
    z, xBC, dt = mixer.in_proj(u).split([c.d_inner, c.conv_dim, c.nheads], dim=-1)
    conv_state = torch.cat([conv_state[:, 1:], xBC[:, None]], dim=1)  # shift in xBC
    taps = mixer.conv1d.weight.view(c.conv_dim, c.d_conv).t()  # (d_conv, conv_dim)
    xBC = F.silu((conv_state * taps).sum(1) + mixer.conv1d.bias)  # (B, conv_dim)
    x, Bm, Cm = xBC.split([c.d_inner, g * n, g * n], dim=-1)
    x = x.reshape(-1, g, k, p, 1)  # (B, G, K, P, 1)
    dt = F.softplus(dt + mixer.dt_bias).reshape(-1, g, k, 1, 1)  # (B, G, K, 1, 1)
    decay = torch.exp(dt * -torch.exp(mixer.A_log).reshape(g, k, 1, 1))  # (B, G, K, 1, 1)
    state = ssm_state.reshape(-1, g, k, p, n) * decay + (dt * x) * Bm.reshape(-1, g, 1, 1, n)
    y = state @ Cm.reshape(-1, g, 1, n, 1) + x * mixer.D.reshape(g, k, 1, 1)  # (B,G,K,P,1)
    out = mixer.out_proj(mixer.norm(y.reshape(-1, c.d_inner), z))
    return out, conv_state, state.reshape(-1, c.nheads, p, n)


class MambaStep(_Graph):
    def forward(self, token: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        """token (B,), conv (B, d_conv, conv_dim) per layer, ssm (B, H, P, N) per layer
        -> logits (B, V) and the new state."""
        return _mamba_layers(self.model, self.model.embed(token), state, _mamba_step_layer)


GRAPHS: dict[type[Decoder], tuple[type[_Graph], type[_Graph]]] = {
    LSTMDecoder: (LSTMPrefill, LSTMStep),
    TransformerDecoder: (TransformerPrefill, TransformerStep),
    MambaDecoder: (MambaPrefill, MambaStep),
}
