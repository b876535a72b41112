"""Transformer decoder: pre-norm blocks, rotary positions (RoPE), a sliding KV cache.

Attention sees at most ``max_seq_len`` tokens: the current one and the ``max_seq_len - 1``
before it. Keys are cached already rotated at their absolute position, in a ring buffer that
holds position ``p`` in slot ``p % max_seq_len``. Rotary attention scores depend only on the
offset between query and key, so when the window is full the oldest key is simply overwritten:
generation length is unbounded and each step costs the same as at the end of the window.

``forward`` accepts any length. Up to ``max_seq_len`` tokens from an empty state it is plain
causal attention (training); beyond that, or continuing from a state, every position attends
to the window that ends at it, exactly what stepping token by token computes. (With several
layers this is a sliding-window model: the cached keys of older tokens were computed from
their own windows, so the receptive field grows with depth; it equals a fresh forward over
the last ``max_seq_len`` tokens only for a single layer.)

The cache is written in place when autograd is off (generation) and functionally otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from musegen.errors import ConfigError
from musegen.models.base import Decoder, DecoderState, Dropout


@dataclasses.dataclass
class TransformerConfig:
    """Hyperparameters of :class:`TransformerDecoder`."""

    vocab_size: int
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 0  # 0: 4 * d_model
    max_seq_len: int = 512  # attention window = KV cache length; keep it <= the training length
    dropout: float = 0.1  # on the embedding and on each residual branch
    attn_dropout: float = 0.0  # on attention weights; > 0 makes SDPA use its slow math path
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    head_dim: int = dataclasses.field(init=False)  # d_model // n_heads

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_seq_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"transformer: {name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ConfigError(
                f"transformer: d_model ({self.d_model}) must split into n_heads "
                f"({self.n_heads}) heads of even size"
            )
        for name in ("dropout", "attn_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"transformer: {name} must be in [0, 1), got {value}")
        if self.d_ff == 0:
            self.d_ff = 4 * self.d_model
        self.head_dim = self.d_model // self.n_heads


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(d_model=32, n_layers=2, n_heads=2, max_seq_len=128, dropout=0.0),
    # max_seq_len = train.py's seq_len: RoPE never sees offsets longer than it was trained on.
    "small": dict(d_model=256, n_layers=4, n_heads=4, max_seq_len=512, dropout=0.1),
}


@dataclasses.dataclass
class TransformerState(DecoderState):
    """Rotated keys and values of every layer in a ring buffer, and the tokens seen so far."""

    k: Tensor  # (L, B, H, W, Dh), position p in slot p % W
    v: Tensor  # (L, B, H, W, Dh)
    pos: int = 0

    batch_dims = {"k": 1, "v": 1}


class Rotary(nn.Module):
    """Rotary position embedding on adjacent pairs (x[2i], x[2i+1]) seen as complex numbers.

    Angles are computed in float64 at the absolute position, so precision does not drift
    however long generation runs.
    """

    def __init__(self, head_dim: int, base: float) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.base = base
        self._inv_freq: dict[torch.device, Tensor] = {}  # float64, kept out of .to(dtype)
        self._tables: dict[tuple, Tensor] = {}  # (device, dtype, block, q_scale) -> cis table
        self._lock = threading.Lock()

    TABLE = 1024  # positions per table of step angles
    TABLES_KEPT = 8  # tables of either kind

    def forward(self, start: int, length: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Unit complex numbers e^(i * pos * freq) for positions start.., (T, Dh/2)."""
        inv_freq = self._inv_freq.get(device)
        if inv_freq is None:
            exponent = torch.arange(0, self.head_dim, 2, dtype=torch.float64, device=device)
            inv_freq = self._inv_freq[device] = self.base ** (-exponent / self.head_dim)
        pos = torch.arange(start, start + length, dtype=torch.float64, device=device)
        angles = torch.outer(pos, inv_freq)  # (T, Dh/2)
        cis = torch.polar(torch.ones_like(angles), angles)  # complex128
        return cis if dtype == torch.float64 else cis.to(torch.complex64)

    def at(
        self, pos: int, device: torch.device, dtype: torch.dtype, q_scale: float | None = None
    ) -> Tensor:
        """``forward(pos, 1)[0]`` from cached tables of ``TABLE`` aligned positions, (Dh/2,).

        With ``q_scale``: the pair (2, 1, Dh/2) of that times ``q_scale`` (for queries, the
        attention scale folded in) and that (for keys)."""
        block, offset = divmod(pos, self.TABLE)
        key = (device, dtype, block, q_scale)
        table = self._tables.get(key)
        if table is None:
            table = self.forward(block * self.TABLE, self.TABLE, device, dtype)
            if q_scale is not None:
                table = torch.stack((table * q_scale, table), dim=1)[:, :, None]
            with self._lock:  # generation may run in several threads (the web demo)
                while len(self._tables) >= self.TABLES_KEPT:
                    self._tables.pop(next(iter(self._tables)))  # the oldest
                self._tables[key] = table
        return table[offset]


def rotate(x: Tensor, cis: Tensor) -> Tensor:
    """Rotate the pairs of x (..., Dh) by cis, broadcastable to (..., Dh/2)."""
    real = torch.float64 if cis.dtype == torch.complex128 else torch.float32
    pairs = torch.view_as_complex((x if x.dtype == real else x.to(real)).unflatten(-1, (-1, 2)))
    out = torch.view_as_real(pairs * cis).flatten(-2)  # (..., Dh)
    return out if out.dtype == x.dtype else out.to(x.dtype)


def write_cache(cache: Tensor, start: int, new: Tensor, inplace: bool) -> Tensor:
    """Write new (B, H, T, Dh) at positions start.. into the ring buffer cache (B, H, W, Dh)."""
    W, T = cache.size(2), new.size(2)
    new = new.to(cache.dtype)
    if T == 1 and inplace:
        cache.select(2, start % W).copy_(new.squeeze(2))
        return cache
    slots = torch.arange(start, start + T, device=cache.device) % W
    return cache.index_copy_(2, slots, new) if inplace else cache.index_copy(2, slots, new)


def cached_attention(
    q: Tensor, k: Tensor, v: Tensor, k_cache: Tensor, v_cache: Tensor, pos: int, inplace: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Attention of q, k, v (B, H, T, Dh) at positions pos.. over the cache and themselves.

    Returns the output (B, H, T, Dh) and the updated caches (B, H, W, Dh).
    """
    T, W = q.size(2), k_cache.size(2)
    if T == 1:  # one token (a step): every filled slot is inside its window
        k_cache = write_cache(k_cache, pos, k, inplace)
        v_cache = write_cache(v_cache, pos, v, inplace)
        n = min(pos + 1, W)
        keys, values = k_cache[:, :, :n].to(q.dtype), v_cache[:, :, :n].to(q.dtype)
        return F.scaled_dot_product_attention(q, keys, values), k_cache, v_cache
    if pos + T <= W:  # the window has not filled yet: slots 0 .. pos+T-1 in order
        k_cache = write_cache(k_cache, pos, k, inplace)
        v_cache = write_cache(v_cache, pos, v, inplace)
        keys = k_cache[:, :, : pos + T].to(q.dtype)  # (B, H, pos+T, Dh)
        values = v_cache[:, :, : pos + T].to(q.dtype)
        if pos == 0:
            return F.scaled_dot_product_attention(q, keys, values, is_causal=True), k_cache, v_cache
        q_pos = torch.arange(pos, pos + T, device=q.device)[:, None]  # (T, 1)
        mask = torch.arange(pos + T, device=q.device) <= q_pos  # (T, pos+T)
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask), k_cache, v_cache
    # The window slides inside this call: attend over [cache, new] by absolute position.
    slots = torch.arange(W, device=q.device)
    cached_pos = slots + W * torch.div(pos - 1 - slots, W, rounding_mode="floor")  # (W,) < 0: empty
    key_pos = torch.cat([cached_pos, torch.arange(pos, pos + T, device=q.device)])  # (W+T,)
    q_pos = torch.arange(pos, pos + T, device=q.device)[:, None]  # (T, 1)
    mask = (key_pos <= q_pos) & (key_pos > q_pos - W) & (key_pos >= 0)  # (T, W+T)
    keys = torch.cat([k_cache.to(q.dtype), k], dim=2)  # (B, H, W+T, Dh)
    values = torch.cat([v_cache.to(q.dtype), v], dim=2)
    out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
    keep = min(T, W)  # only the last W new tokens stay in the cache
    k_cache = write_cache(k_cache, pos + T - keep, k[:, :, T - keep :], inplace)
    v_cache = write_cache(v_cache, pos + T - keep, v[:, :, T - keep :], inplace)
    return out, k_cache, v_cache


class Attention(nn.Module):
    """Multi-head self-attention with rotary positions."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.dropout = config.attn_dropout

    def forward(
        self,
        x: Tensor,  # (B, T, D)
        cis: Tensor,
        cache: tuple[Tensor, Tensor] | None,
        pos: int,
        inplace: bool,
    ) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        B, T, D = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim)  # (B, T, 3, H, Dh)
        qk = rotate(qkv[:, :, :2], cis[:, None, None])  # (B, T, 2, H, Dh)
        q, k = qk.transpose(1, 3).unbind(2)  # (B, H, T, Dh) each
        v = qkv[:, :, 2].transpose(1, 2)  # (B, H, T, Dh)
        if cache is None:
            p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            y, k_cache, v_cache = cached_attention(q, k, v, *cache, pos, inplace)
            cache = (k_cache, v_cache)
        y = y.transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return self.proj(y), cache


class MLP(nn.Module):
    """Position-wise feed-forward: D -> d_ff -> D with GELU (tanh approximation, as GPT-2)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.proj = nn.Linear(config.d_ff, config.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D)
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.attn = Attention(config)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.mlp = MLP(config)
        self.drop = Dropout(config.dropout)

    def forward(
        self,
        x: Tensor,
        cis: Tensor,
        cache: tuple[Tensor, Tensor] | None,
        pos: int,
        inplace: bool,
    ) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        a, cache = self.attn(self.norm1(x), cis, cache, pos, inplace)
        x = x + self.drop(a)  # (B, T, D)
        x = x + self.drop(self.mlp(self.norm2(x)))
        return x, cache


class TransformerDecoder(Decoder):
    """Embedding -> n_layers pre-norm blocks -> final norm -> tied head."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.context_window = config.max_seq_len
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.drop = Dropout(config.dropout)
        self.rotary = Rotary(config.head_dim, config.rope_base)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def init_state(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> TransformerState:
        """An empty KV cache of ``max_seq_len`` slots for ``batch`` sequences."""
        device, dtype = self._state_device_dtype(device, dtype)
        c = self.config
        shape = (c.n_layers, batch, c.n_heads, c.max_seq_len, c.head_dim)
        return TransformerState(
            k=torch.zeros(shape, device=device, dtype=dtype),
            v=torch.zeros(shape, device=device, dtype=dtype),
        )

    def forward(
        self, tokens: Tensor, state: TransformerState | None = None, return_state: bool = False
    ) -> Tensor | tuple[Tensor, TransformerState]:
        """Logits for every position of ``tokens`` (B, T), continuing from ``state`` if given.

        Sequences longer than ``max_seq_len`` are allowed: each position attends to the
        ``max_seq_len`` tokens ending at it (memory grows as T * (T + max_seq_len)).
        """
        B, T = tokens.shape
        if state is None and (return_state or T > self.config.max_seq_len):
            state = self.init_state(B, tokens.device)
        pos = 0 if state is None else state.pos
        inplace = not torch.is_grad_enabled()
        x = self.drop(self.embed(tokens))  # (B, T, D)
        cis = self.rotary(pos, T, x.device, x.dtype)  # (T, Dh/2) complex
        ks, vs = [], []
        for i, block in enumerate(self.blocks):
            cache = None if state is None else (state.k[i], state.v[i])
            x, cache = block(x, cis, cache, pos, inplace)
            if cache is not None:
                ks.append(cache[0])
                vs.append(cache[1])
        logits = F.linear(self.norm(x), self.embed.weight)  # (B, T, V)
        if state is None:
            return logits
        if inplace:  # the caches are views of state.k / state.v, already written
            state.pos = pos + T
        else:
            state = TransformerState(k=torch.stack(ks), v=torch.stack(vs), pos=pos + T)
        return (logits, state) if return_state else logits

    def _gather_step_weights(self) -> tuple:
        """Per block (norm1 w, b; qkv; proj^T; norm2 w, b; fc; mlp proj^T), then the head's."""
        blocks = tuple(
            (
                b.norm1.weight,
                b.norm1.bias,
                b.attn.qkv.weight,
                b.attn.proj.weight.t(),
                b.norm2.weight,
                b.norm2.bias,
                b.mlp.fc.weight,
                b.mlp.proj.weight.t(),
            )
            for b in self.blocks
        )
        return blocks, (self.embed.weight, self.norm.weight, self.norm.bias)

    def step(self, token: Tensor, state: TransformerState) -> tuple[Tensor, TransformerState]:
        """Advance every sequence by one token (B,); returns logits (B, V) and the state.

        The fast path for generation: the block's maths written out with the weights
        gathered once (`step_weights`); the rotary angle comes from a table, with the
        attention scale folded into the query's rotation; attention over the cache is two
        batched matrix products and a softmax (SDPA's kernels cost three times more for a
        single query). ``forward`` is the reference it is tested against; with gradients or
        dropout active the step goes through it.
        """
        if torch.is_grad_enabled() or (self.training and self.config.dropout > 0):
            logits, state = self.forward(token[:, None], state, return_state=True)
            return logits[:, 0], state
        c = self.config
        B, H, Dh, D, eps = token.size(0), c.n_heads, c.head_dim, c.d_model, c.norm_eps
        pos, W = state.pos, c.max_seq_len
        slot, n = pos % W, min(pos + 1, W)
        blocks, (embed, norm_w, norm_b) = self.step_weights()
        x = torch.embedding(embed, token)  # (B, D)
        cis_qk = self.rotary.at(pos, x.device, x.dtype, Dh**-0.5)  # (2, 1, Dh/2), q scaled
        caches = zip(state.k.unbind(0), state.v.unbind(0), strict=True)  # (B, H, W, Dh) each
        for (n1w, n1b, qkv_w, proj_t, n2w, n2b, fc_w, fc_proj_t), (k_cache, v_cache) in zip(
            blocks, caches, strict=True
        ):
            h = torch.layer_norm(x, (D,), n1w, n1b, eps)
            qkv = F.linear(h, qkv_w).view(B, 3, H, Dh)
            qk = rotate(qkv.narrow(1, 0, 2), cis_qk)  # (B, 2, H, Dh)
            k_cache.select(2, slot).copy_(qk.select(1, 1))
            v_cache.select(2, slot).copy_(qkv.select(1, 2))
            q = qk.select(1, 0).reshape(B * H, 1, Dh)
            keys = k_cache.narrow(2, 0, n).reshape(B * H, n, Dh)  # slot order is irrelevant
            values = v_cache.narrow(2, 0, n).reshape(B * H, n, Dh)  # for a single query
            weights = torch.softmax(torch.bmm(q, keys.transpose(1, 2)), dim=-1)  # (BH, 1, n)
            x = torch.addmm(x, torch.bmm(weights, values).view(B, D), proj_t)  # x + proj(y)
            h = torch.layer_norm(x, (D,), n2w, n2b, eps)
            h = F.gelu(F.linear(h, fc_w), approximate="tanh")  # (B, d_ff)
            x = torch.addmm(x, h, fc_proj_t)  # x + mlp(.)
        state.pos = pos + 1
        return F.linear(torch.layer_norm(x, (D,), norm_w, norm_b, eps), embed), state
