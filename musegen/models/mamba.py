"""Mamba-2 decoder: residual stack of Mamba-2 mixers, the SSD scan in plain PyTorch.

Each layer is ``x + Mamba2(RMSNorm(x))``; a final RMSNorm and the tied head follow.

The mixer (Dao & Gu 2024, "Transformers are SSMs") keeps, per head, a state ``h`` of size
(headdim, d_state) and runs the recurrence

    h_t = exp(dt_t * A) * h_{t-1} + dt_t * x_t B_t^T        y_t = h_t C_t + D * x_t

with a scalar decay ``A < 0`` per head and input-dependent ``dt``, ``B``, ``C``. Training uses
the chunked "state space dual" form (:func:`ssd_chunked`): quadratic attention-like products
inside chunks of ``chunk_size`` tokens and the recurrence only from chunk to chunk.
:func:`ssd_sequential` is the slow step-by-step reference it is tested against, and
``Mamba2.step`` runs the recurrence one token at a time with a cache of the last ``d_conv``
convolution inputs.

Parameter names and shapes follow ``mamba_ssm.modules.mamba2.Mamba2`` (in_proj producing
[z, x, B, C, dt], depthwise conv1d over [x, B, C], dt_bias, A_log, D, a gated RMSNorm ``norm``
applied as norm(y * silu(z)), out_proj), so the same weights run on mamba_ssm's Triton
kernels. On CUDA, if ``mamba_ssm`` is importable, ``Mamba2.forward`` uses its fused scan
(``mamba_chunk_scan_combined``) in place of ``ssd_chunked``; everywhere else it is pure
PyTorch. The two agree to TF32 precision, the kernel's (tests/test_models.py checks it where
CUDA and mamba_ssm are; on an H200 with the shipped weights: loss within 2e-5, the worst
gradient within 0.9%); for models this small the fused scan saves little (a training step
of 16 x 512 under bf16: 30.4 ms against 31.7).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from musegen.errors import ConfigError
from musegen.models.base import Decoder, DecoderState, Dropout


@dataclasses.dataclass
class MambaConfig:
    """Hyperparameters of :class:`MambaDecoder` (names as in mamba_ssm's Mamba2)."""

    vocab_size: int
    d_model: int = 352
    n_layers: int = 4
    d_state: int = 64  # N: state size per head
    d_conv: int = 4  # depthwise convolution width
    expand: int = 2  # d_inner = expand * d_model
    headdim: int = 64  # P
    ngroups: int = 1  # heads in a group share B and C
    chunk_size: int = 64  # Q: SSD chunk length
    dropout: float = 0.1  # on the embedding and on each residual branch
    norm_eps: float = 1e-5
    A_init_range: tuple[float, float] = (1.0, 16.0)
    dt_min: float = 0.001
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4
    d_inner: int = dataclasses.field(init=False)  # expand * d_model
    nheads: int = dataclasses.field(init=False)  # d_inner // headdim
    conv_dim: int = dataclasses.field(init=False)  # d_inner + 2 * ngroups * d_state

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "d_model",
            "n_layers",
            "d_state",
            "d_conv",
            "expand",
            "headdim",
            "ngroups",
            "chunk_size",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"mamba: {name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"mamba: dropout must be in [0, 1), got {self.dropout}")
        self.A_init_range = (float(self.A_init_range[0]), float(self.A_init_range[1]))
        if not 0.0 < self.A_init_range[0] <= self.A_init_range[1]:
            raise ConfigError(
                f"mamba: A_init_range must be 0 < low <= high, got {self.A_init_range}"
            )
        self.d_inner = self.expand * self.d_model
        if self.d_inner % self.headdim:
            raise ConfigError(
                f"mamba: expand * d_model ({self.d_inner}) must be a multiple of headdim "
                f"({self.headdim})"
            )
        self.nheads = self.d_inner // self.headdim
        if self.nheads % self.ngroups:
            raise ConfigError(
                f"mamba: nheads ({self.nheads}) must be a multiple of ngroups ({self.ngroups})"
            )
        self.conv_dim = self.d_inner + 2 * self.ngroups * self.d_state


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        d_model=32, n_layers=2, d_state=8, headdim=16, ngroups=2, chunk_size=16, dropout=0.0
    ),
    "small": dict(d_model=352, n_layers=4, d_state=64, headdim=64, chunk_size=64, dropout=0.1),
}


@dataclasses.dataclass
class MambaState(DecoderState):
    """Convolution inputs and SSM state of every layer."""

    conv: Tensor  # (L, B, d_conv, conv_dim): the last d_conv inputs of the conv, oldest first
    ssm: Tensor  # (L, B, H, P, N)

    batch_dims = {"conv": 1, "ssm": 1}


# --- The SSD scan -------------------------------------------------------------------------


def _float32_or_wider(t: Tensor) -> Tensor:
    """Decays are computed in at least float32 (exp/cumsum in bfloat16 lose too much)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def ssd_sequential(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, initial_state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Reference scan, one time step after another (slow; for tests).

    x (b, t, h, p), dt (b, t, h) after softplus, A (h,) negative, B and C (b, t, g, n),
    initial_state (b, h, p, n). Returns y (b, t, h, p) without the D skip, and the final state.
    """
    b, t, h, p = x.shape
    g, n = B.shape[-2:]
    B = B.repeat_interleave(h // g, dim=2)  # (b, t, h, n)
    C = C.repeat_interleave(h // g, dim=2)
    state = x.new_zeros(b, h, p, n) if initial_state is None else initial_state
    ys = []
    for x_t, dt_t, B_t, C_t in zip(
        x.unbind(1), dt.unbind(1), B.unbind(1), C.unbind(1), strict=True
    ):
        decay = torch.exp(dt_t * A)[:, :, None, None]  # (b, h, 1, 1)
        state = decay * state + (dt_t[:, :, None] * x_t)[..., None] * B_t[:, :, None, :]
        ys.append((state @ C_t[..., None])[..., 0])  # (b, h, p)
    return torch.stack(ys, dim=1), state


def ssd_chunked(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    chunk_size: int,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The SSD scan in chunks: same inputs and outputs as :func:`ssd_sequential`.

    Inside a chunk, y = (C B^T * decay) @ (dt * x), a masked attention-like product. Each chunk
    also leaves a state at its end; a short loop over chunks carries the state from one chunk
    to the next, and y gets the entering state's share through C. T is padded to a multiple of
    the chunk with dt = 0 (no decay, no input), which leaves the final state unchanged.
    Notation: c chunks of Q steps, g groups of k heads, p headdim, n d_state. States are kept
    as (n, k*p) matrices: with one group the state matmuls then read their operands in place.
    """
    b, t, h, p = x.shape
    g, n = B.shape[-2:]
    k, Q = h // g, chunk_size
    pad = -t % Q
    if pad:
        x, B, C = (F.pad(v, (0, 0, 0, 0, 0, pad)) for v in (x, B, C))
        dt = F.pad(dt, (0, 0, 0, pad))
    c = (t + pad) // Q
    a = (dt * A).view(b, c, Q, g, k).permute(0, 1, 3, 4, 2)  # (b, c, g, k, Q) log decay per step
    a_cum = a.cumsum(dim=-1)  # (b, c, g, k, Q)
    xdt = (x * dt[..., None]).view(b, c, Q, g, k, p)  # (b, c, Q, g, k, p)
    Bc = B.view(b, c, Q, g, n).transpose(2, 3)  # (b, c, g, Q, n)
    Cc = C.view(b, c, Q, g, n).transpose(2, 3)  # (b, c, g, Q, n)

    # 1. Inside each chunk: y_i += sum_{j<=i} (C_i . B_j) exp(a_{j+1} + .. + a_i) xdt_j
    #    (a difference of cumsums: within one chunk float32 keeps ~1e-5 relative accuracy)
    causal = torch.ones(Q, Q, dtype=torch.bool, device=x.device).tril()
    decay = (a_cum[..., :, None] - a_cum[..., None, :]).masked_fill(~causal, -math.inf)
    scores = Cc @ Bc.transpose(-1, -2)  # (b, c, g, Q, Q)
    scores = scores[:, :, :, None] * torch.exp(decay)  # (b, c, g, k, Q, Q)
    y_diag = scores @ xdt.permute(0, 1, 3, 4, 2, 5)  # (b, c, g, k, Q, p)

    # 2. State each chunk leaves at its end: sum_j exp(a_{j+1} + .. + a_end) B_j xdt_j^T
    to_end = torch.exp(a_cum[..., -1:] - a_cum)  # (b, c, g, k, Q)
    xdt_end = xdt * to_end.permute(0, 1, 4, 2, 3)[..., None]  # (b, c, Q, g, k, p)
    states = Bc.transpose(-1, -2) @ xdt_end.flatten(4).transpose(2, 3)  # (b, c, g, n, k*p)

    # 3. Carry the state across chunks: entering[z+1] = decay(chunk z) * entering[z] + states[z]
    chunk_decay = torch.exp(a_cum[..., -1])[:, :, :, None, :, None]  # (b, c, g, 1, k, 1)
    if initial_state is None:
        s = x.new_zeros(b, g, n, k, p, dtype=states.dtype)
    else:  # (b, h, p, n) -> (b, g, n, k, p)
        s = initial_state.view(b, g, k, p, n).permute(0, 1, 4, 2, 3).to(states.dtype)
    entering = []
    for states_z, decay_z in zip(states.unbind(1), chunk_decay.unbind(1), strict=True):
        entering.append(s)
        s = s * decay_z + states_z.view(b, g, n, k, p)  # (b, g, n, k, p)
    final_state = s.permute(0, 1, 3, 4, 2).reshape(b, h, p, n)
    entering = torch.stack(entering, dim=1).view(b, c, g, n, k * p)

    # 4. Entering state's share: y_i += exp(a_1 + .. + a_i) C_i . entering
    y_off = (Cc @ entering).view(b, c, g, Q, k, p)  # (b, c, g, Q, k, p)
    y_off = y_off * torch.exp(a_cum).transpose(-1, -2)[..., None]

    y = y_diag.permute(0, 1, 4, 2, 3, 5) + y_off.transpose(2, 3)  # (b, c, Q, g, k, p)
    return y.reshape(b, c * Q, h, p)[:, :t], final_state


@functools.lru_cache(maxsize=1)
def _mamba_ssm_scan() -> Callable[..., Any] | None:
    """mamba_ssm's fused Triton SSD scan if installed, else None (imported lazily)."""
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except ImportError:
        return None
    return mamba_chunk_scan_combined


# --- Modules ------------------------------------------------------------------------------


def rms_norm(x: Tensor, weight: Tensor | None, eps: float) -> Tensor:
    """RMS normalization over the last dimension."""
    return F.rms_norm(x, (x.size(-1),), weight, eps)


class RMSNorm(nn.Module):
    """RMSNorm with a learned scale."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.weight, self.eps)


class GatedRMSNorm(RMSNorm):
    """norm(y * silu(z)) with statistics per group of ``group_size`` channels (mamba_ssm's
    RMSNormGated with norm_before_gate=False)."""

    def __init__(self, dim: int, eps: float, group_size: int) -> None:
        super().__init__(dim, eps)
        self.group_size = group_size

    def forward(self, y: Tensor, z: Tensor) -> Tensor:  # (..., D) both
        return self.gate(y, z)

    def gate(self, y: Tensor, z: Tensor) -> Tensor:
        """``forward`` without nn.Module's call overhead (the one-token step)."""
        y = _float32_or_wider(y) * F.silu(_float32_or_wider(z))
        if self.group_size == y.size(-1):
            return rms_norm(y, self.weight, self.eps)
        groups = y.unflatten(-1, (-1, self.group_size))  # (..., G, D/G)
        return rms_norm(groups, None, self.eps).flatten(-2) * self.weight


class Mamba2(nn.Module):
    """The Mamba-2 mixer: in_proj -> causal depthwise conv -> SSD scan -> gated norm -> out_proj."""

    def __init__(self, config: MambaConfig) -> None:
        super().__init__()
        c = self.config = config
        d_in_proj = 2 * c.d_inner + 2 * c.ngroups * c.d_state + c.nheads  # [z, x, B, C, dt]
        self.in_proj = nn.Linear(c.d_model, d_in_proj, bias=False)
        self.conv1d = nn.Conv1d(
            c.conv_dim,
            c.conv_dim,
            kernel_size=c.d_conv,
            groups=c.conv_dim,
            padding=c.d_conv - 1,
            bias=True,
        )
        dt = torch.exp(
            torch.rand(c.nheads) * (math.log(c.dt_max) - math.log(c.dt_min)) + math.log(c.dt_min)
        ).clamp(min=c.dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        self.A_log = nn.Parameter(torch.empty(c.nheads).uniform_(*c.A_init_range).log())
        self.D = nn.Parameter(torch.ones(c.nheads))
        for p in (self.dt_bias, self.A_log, self.D):
            p._no_weight_decay = True  # type: ignore[attr-defined]
        self.norm = GatedRMSNorm(c.d_inner, eps=1e-5, group_size=c.d_inner // c.ngroups)
        self.out_proj = nn.Linear(c.d_inner, c.d_model, bias=False)
        self.use_mamba_ssm = True  # on CUDA, use mamba_ssm's Triton scan when installed

    def forward(
        self, u: Tensor, conv_state: Tensor | None = None, ssm_state: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """u (B, T, d_model) -> (out (B, T, d_model), conv_state, ssm_state) after the last
        token; conv_state (B, d_conv, conv_dim) and ssm_state (B, H, P, N) continue a sequence."""
        c = self.config
        T = u.size(1)
        z, xBC, dt = self.in_proj(u).split([c.d_inner, c.conv_dim, c.nheads], dim=-1)
        if conv_state is None:  # the last d_conv - 1 inputs before this call: none
            xBC = F.pad(xBC, (0, 0, c.d_conv - 1, 0))  # (B, d_conv - 1 + T, conv_dim)
        else:
            xBC = torch.cat([conv_state[:, 1:].to(xBC.dtype), xBC], dim=1)
        conv_state = xBC[:, -c.d_conv :]  # (B, d_conv, conv_dim)
        taps = self.conv1d.weight.view(c.conv_dim, c.d_conv)  # causal depthwise conv:
        conv = torch.addcmul(self.conv1d.bias, xBC[:, :T], taps[:, 0])  # sum of shifted inputs
        for i in range(1, c.d_conv):
            conv = torch.addcmul(conv, xBC[:, i : i + T], taps[:, i])
        xBC = F.silu(conv)  # (B, T, conv_dim)
        x, Bm, Cm = xBC.split([c.d_inner, c.ngroups * c.d_state, c.ngroups * c.d_state], dim=-1)
        x = x.unflatten(-1, (c.nheads, c.headdim))  # (B, T, H, P)
        Bm = Bm.unflatten(-1, (c.ngroups, c.d_state))  # (B, T, G, N)
        Cm = Cm.unflatten(-1, (c.ngroups, c.d_state))  # (B, T, G, N)
        A = -torch.exp(_float32_or_wider(self.A_log))  # (H,)

        kernel = _mamba_ssm_scan() if u.is_cuda and self.use_mamba_ssm else None
        if kernel is not None:  # mamba_ssm's fused scan (CUDA): same maths as the branch below
            y, ssm_state = kernel(
                x,
                dt,
                A,
                Bm,
                Cm,
                c.chunk_size,
                D=self.D,
                dt_bias=self.dt_bias,
                dt_softplus=True,
                initial_states=ssm_state,
                return_final_states=True,
            )
        else:
            dt = F.softplus(_float32_or_wider(dt) + self.dt_bias)  # (B, T, H)
            y, ssm_state = ssd_chunked(x, dt, A, Bm, Cm, c.chunk_size, ssm_state)
            y = torch.addcmul(y, x, self.D[:, None])  # + D x, (B, T, H, P)
        y = self.norm(y.flatten(-2), z)  # (B, T, d_inner)
        return self.out_proj(y), conv_state, ssm_state

    def step_tensors(self) -> tuple:
        """(in_proj, conv taps (d_conv, conv_dim), conv bias, dt_bias, A_log, D (H, 1),
        gated norm, out_proj), as views: what ``step`` reads (`MambaDecoder.step_weights`)."""
        c = self.config
        return (
            self.in_proj.weight,
            self.conv1d.weight.view(c.conv_dim, c.d_conv).t(),
            self.conv1d.bias,
            self.dt_bias,
            self.A_log,
            self.D.view(c.nheads, 1),
            self.norm,
            self.out_proj.weight,
        )

    def step(
        self, u: Tensor, conv_state: Tensor, ssm_state: Tensor, weights: tuple | None = None
    ) -> Tensor:
        """One token u (B, d_model) -> (B, d_model); updates conv_state (B, d_conv, conv_dim)
        and ssm_state (B, H, P, N) in place. Same maths as forward, written for few kernels.
        ``weights``: this layer's `step_tensors`, when the caller has them at hand."""
        c = self.config
        b, g, h, n = u.size(0), c.ngroups, c.nheads, c.d_state
        in_w, taps, conv_b, dt_bias, A_log, D, norm, out_w = weights or self.step_tensors()
        zxbcdt = F.linear(u, in_w)  # (B, d_in_proj)
        z, xBC, dt = zxbcdt.split([c.d_inner, c.conv_dim, c.nheads], dim=-1)
        conv_state.copy_(torch.cat([conv_state[:, 1:], xBC[:, None]], dim=1))  # shift in xBC
        xBC = F.silu((conv_state * taps).sum(1) + conv_b)  # (B, conv_dim)
        x, Bm, Cm = xBC.split([c.d_inner, g * n, g * n], dim=-1)
        dt = F.softplus(dt + dt_bias)  # (B, H)
        decay = torch.exp(dt * -torch.exp(A_log))  # (B, H)
        x = x.view(b, h, c.headdim)  # (B, H, P)
        ssm_state.mul_(decay.view(b, h, 1, 1))  # (B, H, P, N)
        state = ssm_state.view(b * g, -1, n)  # (B*G, K*P, N), a view: heads grouped
        dtx = (dt.view(b, h, 1) * x).view(b * g, -1, 1)  # (B*G, K*P, 1)
        state.baddbmm_(dtx, Bm.reshape(b * g, 1, n))  # += dt x B^T
        y = torch.bmm(state, Cm.reshape(b * g, n, 1)).view(b, h, c.headdim)  # (B, H, P)
        y = torch.addcmul(y, x, D)  # + D x
        return F.linear(norm.gate(y.view(b, c.d_inner), z), out_w)


class MambaBlock(nn.Module):
    """Residual layer: x + dropout(Mamba2(RMSNorm(x)))."""

    def __init__(self, config: MambaConfig) -> None:
        super().__init__()
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.mixer = Mamba2(config)
        self.drop = Dropout(config.dropout)

    def forward(
        self, x: Tensor, conv_state: Tensor | None, ssm_state: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:  # x (B, T, D)
        y, conv_state, ssm_state = self.mixer(self.norm(x), conv_state, ssm_state)
        return x + self.drop(y), conv_state, ssm_state


class MambaDecoder(Decoder):
    """Embedding -> n_layers residual Mamba-2 layers -> final RMSNorm -> tied head."""

    def __init__(self, config: MambaConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.drop = Dropout(config.dropout)
        self.layers = nn.ModuleList(MambaBlock(config) for _ in range(config.n_layers))
        self.norm_f = RMSNorm(config.d_model, config.norm_eps)
        nn.init.normal_(self.embed.weight, std=0.02)
        for layer in self.layers:  # keep the residual stream's variance flat with depth
            layer.mixer.out_proj.weight.data /= math.sqrt(config.n_layers)

    def use_fused_scan(self, on: bool) -> None:
        """Whether every layer's forward uses mamba_ssm's fused scan where it can (CUDA, the
        package installed; the default) or musegen's ``ssd_chunked`` everywhere."""
        for layer in self.layers:
            layer.mixer.use_mamba_ssm = on

    def init_state(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> MambaState:
        """Zero convolution inputs and SSM states for ``batch`` sequences."""
        device, dtype = self._state_device_dtype(device, dtype)
        c = self.config
        return MambaState(
            conv=torch.zeros(c.n_layers, batch, c.d_conv, c.conv_dim, device=device, dtype=dtype),
            ssm=torch.zeros(
                c.n_layers, batch, c.nheads, c.headdim, c.d_state, device=device, dtype=dtype
            ),
        )

    def forward(
        self, tokens: Tensor, state: MambaState | None = None, return_state: bool = False
    ) -> Tensor | tuple[Tensor, MambaState]:
        """Logits for every position of ``tokens`` (B, T), continuing from ``state`` if given."""
        x = self.drop(self.embed(tokens))  # (B, T, D)
        convs, ssms = [], []
        for i, layer in enumerate(self.layers):
            conv, ssm = (None, None) if state is None else (state.conv[i], state.ssm[i])
            x, conv, ssm = layer(x, conv, ssm)
            convs.append(conv)
            ssms.append(ssm)
        logits = F.linear(self.norm_f(x), self.embed.weight)  # (B, T, V)
        if not return_state:
            return logits
        return logits, MambaState(conv=torch.stack(convs), ssm=torch.stack(ssms))

    def step(self, token: Tensor, state: MambaState) -> tuple[Tensor, MambaState]:
        """Advance every sequence by one token (B,); returns logits (B, V) and the state,
        updated in place. With gradients or dropout active it goes through ``forward``."""
        if torch.is_grad_enabled() or (self.training and self.config.dropout > 0):
            logits, state = self.forward(token[:, None], state, return_state=True)
            return logits[:, 0], state
        layers, (embed, norm_f) = self.step_weights()
        x = F.embedding(token, embed)  # (B, D)
        eps = self.config.norm_eps
        for (mixer, norm_w, weights), conv, ssm in zip(layers, state.conv, state.ssm, strict=True):
            x = x + mixer.step(rms_norm(x, norm_w, eps), conv, ssm, weights)
        return F.linear(rms_norm(x, norm_f, eps), embed), state

    def _gather_step_weights(self) -> tuple:
        """Per layer (mixer, norm weight, the mixer's step weights), then (embedding, norm_f)."""
        layers = tuple(
            (layer.mixer, layer.norm.weight, layer.mixer.step_tensors()) for layer in self.layers
        )
        return layers, (self.embed.weight, self.norm_f.weight)
