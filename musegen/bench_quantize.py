"""Played-in timing: what reading a performance as played costs each model, and what
`quantize="auto"` wins back.

    python -m musegen.bench_quantize --data data/folk [--split test] [--tunes 100]
        [--jitter-ms 10 20] [--models lstm transformer mamba] [--seed 0] [--json]

Each tune of the split (``--tunes`` of them, spread over it) is "played in": every onset and
every note end moves by Gaussian noise of ``--jitter-ms`` milliseconds at the tune's tempo, as
a player's timing does. For each model it prints bits per note of the tune as written, of the
played-in tune read as it is (``quantize="off"``) and read with ``quantize="auto"``, and how
often the quantizer got every onset of a tune back exactly (right grid, right points).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

import numpy as np

from musegen.data import split_files, spread
from musegen.errors import MidiError
from musegen.midi import Score, midi_bytes, read_score
from musegen.options import ARCHITECTURES
from musegen.quantize import FINE_TICKS_PER_QUARTER, TICKS_PER_QUARTER, quantize


def play_in(score: Score, jitter_ms: float, rng: np.random.Generator) -> Score:
    """``score`` (at 960 ticks per quarter) with its onsets and ends jittered, in ms."""
    qpm = score.tempos[0][1]
    ticks_per_ms = FINE_TICKS_PER_QUARTER * qpm / 60_000.0
    notes = []
    for n in score.notes:
        start = max(0, round(n.start + rng.normal(0, jitter_ms) * ticks_per_ms))
        end = round(n.end + rng.normal(0, jitter_ms) * ticks_per_ms)
        notes.append(replace(n, start=start, duration=max(end - start, 10)))
    return replace(score, notes=sorted(notes))


def _onsets(score: Score) -> list[int]:
    """Onsets on the model's grid, in fine ticks (abc2midi writes every onset a tick late:
    the tune as written is its notes on the grid)."""
    step = FINE_TICKS_PER_QUARTER // TICKS_PER_QUARTER
    return sorted(round(n.start / step) * step for n in score.notes)


def run(data: str, split: str, tunes: int, jitters: list[float], models: list[str], seed: int):
    import musegen

    files = split_files(data, split)
    chosen = [files[i] for i in spread(len(files), tunes)]
    scores = []
    for f in chosen:
        try:
            s = read_score(f, ticks_per_quarter=FINE_TICKS_PER_QUARTER)
        except MidiError:
            continue
        if len(s.tempos) == 1 and len(s.notes) >= 8:  # one tempo: jitter in ms is well defined
            scores.append(s)
    rng = np.random.default_rng(seed)
    played = {j: [play_in(s, j, rng) for s in scores] for j in jitters}
    pairs = {j: list(zip(ps, scores, strict=True)) for j, ps in played.items()}
    recovered = {  # share of tunes whose every onset came back exactly
        j: float(np.mean([_onsets(quantize(p)[0]) == _onsets(s) for p, s in ps]))
        for j, ps in pairs.items()
    }
    result = {"tunes": len(scores), "split": split, "recovered": recovered, "bits_per_note": {}}
    for name in models:
        m = musegen.load(name, precision="float32")  # the model as trained

        def bits(items, mode, m=m):
            return float(
                np.mean([m.score(midi_bytes(s), quantize=mode)["bits_per_note"] for s in items])
            )

        row = {"as written": bits(scores, "off")}
        for j, ps in played.items():
            row[f"played {j:g} ms, off"] = bits(ps, "off")
            row[f"played {j:g} ms, auto"] = bits(ps, "auto")
        result["bits_per_note"][name] = row
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a corpus (musegen data folk) or folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--tunes", type=int, default=100)
    parser.add_argument("--jitter-ms", type=float, nargs="+", default=[10.0, 20.0])
    parser.add_argument("--models", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    r = run(args.data, args.split, args.tunes, args.jitter_ms, args.models, args.seed)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"{r['tunes']} tunes of {args.data} ({r['split']}); bits per note (mean over tunes)")
    columns = list(next(iter(r["bits_per_note"].values())))
    print(f"{'model':<13}" + "".join(f"{c:>24}" for c in columns))
    for name, row in r["bits_per_note"].items():
        print(f"{name:<13}" + "".join(f"{row[c]:>24.3f}" for c in columns))
    for j, share in r["recovered"].items():
        print(f"every onset of a tune back exactly at {j:g} ms: {share:.1%} of tunes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
