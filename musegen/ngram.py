"""The n-gram baseline: interpolated Kneser-Ney over the same token ids as the models.

Counting and lookup are vectorised with NumPy: an n-gram of ids below 2**bits is packed
exactly into one int64 key (no hashing, no collisions), counted with ``np.unique`` and looked
up with ``np.searchsorted``. Each tune is scored on its own, preceded by ``order - 1`` PAD
tokens (as in training), so no context crosses from one tune into the next.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from musegen.errors import ConfigError


@dataclass
class _Level:
    """Counts of one order k: n-grams of k tokens and their (k-1)-token contexts."""

    keys: np.ndarray  # sorted packed k-grams
    counts: np.ndarray  # raw count (top order) or continuation count (lower orders)
    ctx_keys: np.ndarray  # sorted packed contexts
    ctx_totals: np.ndarray  # sum of counts over continuations of the context
    ctx_types: np.ndarray  # number of distinct continuations
    discount: float


class KneserNey:
    """Interpolated Kneser-Ney language model over token ids, orders 1..``order``."""

    def __init__(self, order: int, vocab_size: int, pad_id: int = 0):
        self.bits = max(1, math.ceil(math.log2(vocab_size)))
        if order < 1 or order * self.bits > 63:
            raise ConfigError(f"n-gram order must be 1..{63 // self.bits} for this vocabulary")
        self.order = order
        self.vocab_size = vocab_size
        self.pad_id = pad_id
        self.levels: list[_Level] = []

    # ------------------------------------------------------------ packing
    def _padded(self, tunes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Concatenate tunes with order-1 PADs before each; return ids and target mask."""
        pad = np.full(self.order - 1, self.pad_id, dtype=np.int64)
        parts, masks = [], []
        for t in tunes:
            t = np.asarray(t, dtype=np.int64)
            parts += [pad, t]
            # targets: every token of the tune after its first (BOS is given)
            m = np.zeros(len(pad) + len(t), dtype=bool)
            m[len(pad) + 1 :] = True
            masks.append(m)
        return np.concatenate(parts), np.concatenate(masks)

    def _grams(self, ids: np.ndarray, k: int) -> np.ndarray:
        """Packed k-grams ending at positions k-1.. of ids: (len(ids) - k + 1,) int64."""
        n = len(ids) - k + 1
        key = np.zeros(n, dtype=np.int64)
        for j in range(k):
            key = (key << self.bits) | ids[j : j + n]
        return key

    # ------------------------------------------------------------ training
    def fit(self, tunes: Sequence[np.ndarray]) -> KneserNey:
        ids, _ = self._padded(tunes)
        self.levels = []
        for k in range(self.order, 0, -1):
            if k == self.order:
                keys, counts = np.unique(self._grams(ids, k), return_counts=True)
            else:
                # continuation count: distinct left extensions of each k-gram
                higher = np.unique(self._grams(ids, k + 1))
                suffix = higher & ((1 << (self.bits * k)) - 1)
                keys, counts = np.unique(suffix, return_counts=True)
            ctx = keys >> self.bits
            ctx_keys, start = np.unique(ctx, return_index=True)
            ctx_totals = np.add.reduceat(counts, start)
            ctx_types = np.diff(np.append(start, len(keys)))
            n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
            d = n1 / (n1 + 2 * n2) if n1 + n2 > 0 else 0.5
            self.levels.append(_Level(keys, counts, ctx_keys, ctx_totals, ctx_types, d))
        self.levels.reverse()  # levels[k-1] is order k
        return self

    # ------------------------------------------------------------ scoring
    @staticmethod
    def _lookup(sorted_keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(sorted_keys, query)
        pos = np.minimum(pos, len(sorted_keys) - 1)
        found = sorted_keys[pos] == query
        return np.where(found, values[pos], 0)

    def token_nll(self, tunes: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per-token NLL in nats of tokens 1.. of each tune (same layout as the models)."""
        if not self.levels:
            raise ConfigError("the n-gram model is not trained: call fit() first")
        ids, targets = self._padded(tunes)
        p = np.full(len(ids), 1.0 / self.vocab_size)
        for k in range(1, self.order + 1):
            lvl = self.levels[k - 1]
            grams = np.zeros(len(ids), dtype=np.int64)
            g = self._grams(ids, k)
            grams[k - 1 :] = g
            ctx = grams >> self.bits
            c = self._lookup(lvl.keys, lvl.counts, grams).astype(np.float64)
            total = self._lookup(lvl.ctx_keys, lvl.ctx_totals, ctx).astype(np.float64)
            types = self._lookup(lvl.ctx_keys, lvl.ctx_types, ctx).astype(np.float64)
            seen = total > 0
            safe = np.where(seen, total, 1.0)
            interpolated = (
                np.maximum(c - lvl.discount, 0) / safe + (lvl.discount * types / safe) * p
            )
            p = np.where(seen, interpolated, p)
        nll = -np.log(p[targets])
        out, at = [], 0
        for t in tunes:
            n = len(t) - 1
            out.append(nll[at : at + n])
            at += n
        return out


def fit_best_order(
    train: Sequence[np.ndarray],
    validation: Sequence[np.ndarray],
    vocab_size: int,
    pad_id: int = 0,
    orders: Sequence[int] = (2, 3, 4, 5, 6, 7),
) -> tuple[KneserNey, dict[int, float]]:
    """Fit each order on ``train``; keep the one with the lowest validation NLL per token."""
    scores = {}
    best = None
    for order in orders:
        if order * max(1, math.ceil(math.log2(vocab_size))) > 63:
            break
        model = KneserNey(order, vocab_size, pad_id).fit(train)
        nll = np.concatenate(model.token_nll(validation)).mean()
        scores[order] = float(nll)
        if best is None or nll < scores[best.order]:
            best = model
    assert best is not None
    return best, scores
