"""Pure logit filters. Each takes logits (B, V) and returns new logits with -inf where a token
may not be drawn; none of them keeps state.

`filtered` + `draw` are the batched torch reference. `sample_row` is the fast path the sampling
loop uses: the same filters and the same inverse-CDF draw for one row in NumPy, where a row of a
few hundred tokens costs microseconds instead of a dozen torch calls. Only the reference needs
torch, and imports it when called: generation runs without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from musegen.errors import ConfigError

if TYPE_CHECKING:
    import torch

NEG_INF = float("-inf")


def apply_mask(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Keep only allowed tokens. logits (B, V) float, allowed (B, V) bool."""
    return logits.masked_fill(~allowed, NEG_INF)


def temperature(logits: torch.Tensor, t: float) -> torch.Tensor:
    """Divide by t (> 0). t < 1 sharpens, t > 1 flattens."""
    if t <= 0:
        raise ConfigError(f"temperature must be > 0 (got {t}); try 0.8-1.2")
    return logits if t == 1.0 else logits / t


def top_k(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep the k most likely tokens of each row (ties at the k-th value are kept)."""
    if k is None or k <= 0 or k >= logits.shape[-1]:
        return logits
    import torch

    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p(logits: torch.Tensor, p: float | None) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of tokens whose probability reaches p.

    The most likely token is always kept, so a row never ends up empty.
    """
    if p is None or p >= 1.0:
        return logits
    import torch

    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    probs = torch.softmax(sorted_logits, dim=-1)
    before = torch.cumsum(probs, dim=-1) - probs  # mass strictly before each token
    drop_sorted = before >= p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, NEG_INF)


def min_p(logits: torch.Tensor, p: float | None) -> torch.Tensor:
    """Keep tokens whose probability is at least p times the most likely token's."""
    if p is None or p <= 0.0:
        return logits
    import torch

    probs = torch.softmax(logits, dim=-1)
    threshold = probs.max(dim=-1, keepdim=True).values * p
    return logits.masked_fill(probs < threshold, NEG_INF)


def filtered(
    logits: torch.Tensor,
    allowed: torch.Tensor,
    t: float = 1.0,
    k: int | None = None,
    p: float | None = None,
    mp: float | None = None,
) -> torch.Tensor:
    """Mask, then temperature, top-k, top-p and min-p, in that order."""
    x = apply_mask(logits.float(), allowed)
    return min_p(top_p(top_k(temperature(x, t), k), p), mp)


def draw(
    scores: torch.Tensor, generator: torch.Generator | None = None, u: torch.Tensor | None = None
) -> torch.Tensor:
    """One token per row from ``softmax(scores)`` (B, V) -> (B,), by inverting the CDF.

    ``u``: the uniform numbers in (0, 1] to use, (B,) (default: drawn from ``generator``).

    The same distribution as ``torch.multinomial(softmax(scores), 1)``, at a third of its cost
    for one row of a few hundred tokens. ``u`` lies in (0, 1], so the token found always has
    a probability above zero (a masked token, -inf, is never drawn).
    """
    import torch

    probs = torch.softmax(scores.float(), dim=-1)  # (B, V)
    cdf = probs.cumsum(-1)  # (B, V)
    if not torch.isfinite(cdf[:, -1]).all():
        raise ValueError("draw: scores hold NaN, or a row allows no token")
    if u is None:
        device = None if generator is None else generator.device
        u = 1.0 - torch.rand(scores.size(0), generator=generator, device=device)  # (0, 1]
    u = u.to(scores.device)[:, None]  # (B, 1)
    token = torch.searchsorted(cdf, u * cdf[:, -1:])  # (B, 1)
    return token[:, 0].clamp_(max=scores.size(-1) - 1)


def sample_row(
    logits: np.ndarray,
    ids: np.ndarray,
    u: float,
    t: float = 1.0,
    k: int | None = None,
    p: float | None = None,
    mp: float | None = None,
) -> int:
    """One token id from one row: ``filtered`` then ``draw``, computed in NumPy.

    logits (V,) float; ``ids`` the allowed token ids, ascending (``np.flatnonzero`` of the
    mask); ``u`` in (0, 1] the uniform number ``draw`` would use. The distribution is the same
    as the reference's and, for the same ``u``, so is the token (up to rounding at the edge of
    a token's CDF interval; and where several tokens tie at the edge of the top-p nucleus,
    all of them are kept). Only the allowed tokens are touched.
    """
    x = logits[ids]  # (m,)
    top = x.max() if ids.size else NEG_INF
    if not NEG_INF < top < np.inf:  # NaN, +inf, or nothing drawable
        raise ValueError("sample_row: logits hold NaN, or the row allows no token")
    if k is not None and 0 < k < min(len(logits), x.size):
        x[x < np.partition(x, x.size - k)[x.size - k]] = NEG_INF  # ties at the k-th are kept
    w = np.exp(x - top if t == 1.0 else (x - top) / t, dtype=np.float64)  # (m,) unnormalised
    if p is not None and p < 1.0:
        desc = np.sort(w)[::-1]  # (m,) most likely first
        mass = desc.cumsum()
        w[w < desc[mass.searchsorted(p * mass[-1])]] = 0.0  # keep up to where mass reaches p
    if mp is not None and mp > 0.0:
        w[w < w.max() * mp] = 0.0
    cdf = w.cumsum()  # (m,)
    j = int(cdf.searchsorted(u * cdf[-1]))
    return int(ids[min(j, ids.size - 1)])
