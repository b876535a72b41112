"""What moving a melody into another key costs each model: bits per note at -6..+6 semitones.

    python -m musegen.bench_transpose --data data/folk --split test --tunes 200
    python -m musegen.bench_transpose --data data/folk --shifts -24 -12 0 12   # registers

The same held-out tunes are scored at their own pitch and shifted by every semitone in the
range (a tune is used only if every shift keeps its pitches in the tokenizer's range); the
table gives bits per note and pitch bits per note at each shift, and the most a shift costs
over the tunes' own pitch. Issue "Music beyond folk" asks for at most +0.1 bits per note.
A program that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from musegen.metrics import bits_per_note


def transposed(ids: np.ndarray, shift: int, tok: Any) -> np.ndarray | None:
    """``ids`` with every PITCH token moved by ``shift`` semitones (None: out of range)."""
    lo, hi = int(tok.pitch_ids[0]), int(tok.pitch_ids[-1])
    out = ids.copy()
    is_pitch = (ids >= lo) & (ids <= hi)
    out[is_pitch] += shift
    if is_pitch.any() and (out[is_pitch].min() < lo or out[is_pitch].max() > hi):
        return None
    return out


def measure(model: Any, tunes: list[np.ndarray], shifts: list[int]) -> dict[int, dict]:
    """Bits per note of ``model`` (a `MuseGen`) on ``tunes`` at each shift."""
    tok = model.tokenizer
    notes = [int(np.isin(t, tok.pitch_ids).sum()) for t in tunes]
    out = {}
    for s in shifts:
        moved = [transposed(t, s, tok) for t in tunes]
        nlls = [model._token_nll(t) for t in moved]
        out[s] = bits_per_note(nlls, moved, notes, tok)
    return out


def main(argv: list[str] | None = None) -> None:
    from musegen.data import eval_tunes, spread, tokenize_split
    from musegen.generate.muse import load
    from musegen.options import ARCHITECTURES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="corpus dir (musegen data) or MIDI folder")
    p.add_argument("--split", default="test")
    p.add_argument("--tunes", type=int, default=200, help="spread evenly over the split")
    p.add_argument("--models", nargs="+", default=list(ARCHITECTURES))
    p.add_argument("--max-shift", type=int, default=6)
    p.add_argument(
        "--shifts", type=int, nargs="+", default=None, help="instead: these shifts (0 is added)"
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    shifts = list(range(-args.max_shift, args.max_shift + 1))
    if args.shifts:
        shifts = sorted({0, *args.shifts})
    results = {}
    for name in args.models:
        model = load(name, precision="float32")  # the model as trained
        arrays = tokenize_split(args.data, args.split, model.tokenizer, progress=False)
        tunes = [
            t
            for t in eval_tunes(arrays, None)
            if all(transposed(t, s, model.tokenizer) is not None for s in shifts)
        ]
        tunes = [tunes[i] for i in spread(len(tunes), args.tunes)]
        results[name] = {"tunes": len(tunes), "by_shift": measure(model, tunes, shifts)}
    if args.json:
        print(json.dumps(results))
        return
    for name, r in results.items():
        base = r["by_shift"][0]
        worst = max(
            (s for s in shifts if s), key=lambda s: r["by_shift"][s]["bits_per_note"], default=0
        )
        extra = r["by_shift"][worst]["bits_per_note"] - base["bits_per_note"]
        print(
            f"{name}: {r['tunes']} tunes, {base['notes']} notes; at own pitch "
            f"{base['bits_per_note']:.3f} bits/note ({base['pitch_bits_per_note']:.3f} pitch); "
            f"worst shift {worst:+d}: {extra:+.3f} bits/note"
        )
        print("  shift  " + " ".join(f"{s:+6d}" for s in shifts))
        print("  bits   " + " ".join(f"{r['by_shift'][s]['bits_per_note']:6.3f}" for s in shifts))
        print(
            "  pitch  "
            + " ".join(f"{r['by_shift'][s]['pitch_bits_per_note']:6.3f}" for s in shifts)
        )


if __name__ == "__main__":
    main()
