"""Pure logit filters. Each takes logits (B, V) and returns new logits with -inf where a token
may not be drawn. The sampling loop composes them; none of them keeps state."""

from __future__ import annotations

import torch

from musegen.errors import ConfigError

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
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p(logits: torch.Tensor, p: float | None) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of tokens whose probability reaches p.

    The most likely token is always kept, so a row never ends up empty.
    """
    if p is None or p >= 1.0:
        return logits
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
    probs = torch.softmax(logits, dim=-1)
    threshold = probs.max(dim=-1, keepdim=True).values * p
    return logits.masked_fill(probs < threshold, NEG_INF)


def check_sampling(t: float, k: int | None, p: float | None, mp: float | None) -> None:
    """Validate sampling settings with messages that give the allowed range."""
    if not (isinstance(t, (int, float)) and 0 < t <= 10):
        raise ConfigError(f"temperature must be in (0, 10] (got {t}); 1.0 is the model's own")
    if k is not None and (not isinstance(k, int) or k < 0):
        raise ConfigError(f"top_k must be a whole number >= 0 (got {k}); 0 turns it off")
    if p is not None and not 0 < p <= 1:
        raise ConfigError(f"top_p must be in (0, 1] (got {p}); 1 turns it off")
    if mp is not None and not 0 <= mp < 1:
        raise ConfigError(f"min_p must be in [0, 1) (got {mp}); 0 turns it off")


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
