"""Bits per note: the figure every evaluation and `MuseGen.score` report (NumPy only).

Bits per note of a tune = (sum over its tokens after BOS of -log2 p(token | past)) / notes.
Pitch bits per note counts only the PITCH tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LN2 = math.log(2.0)


def bits_per_note(
    nlls: Sequence[np.ndarray], tunes: Sequence[np.ndarray], notes: Sequence[int], tokenizer
) -> dict:
    """Corpus bits per note (all tokens) and pitch bits per note, note-weighted."""
    lo, hi = int(tokenizer.pitch_ids[0]), int(tokenizer.pitch_ids[-1])
    total = pitch = 0.0
    for nll, ids in zip(nlls, tunes, strict=True):
        targets = np.asarray(ids[1:])
        total += float(nll.sum())
        is_pitch = (targets >= lo) & (targets <= hi)
        pitch += float(nll[is_pitch].sum())
    n = int(sum(notes))
    return {
        "files": len(tunes),
        "notes": n,
        "tokens": int(sum(len(t) - 1 for t in tunes)),
        "bits_per_note": total / LN2 / max(n, 1),
        "pitch_bits_per_note": pitch / LN2 / max(n, 1),
    }
