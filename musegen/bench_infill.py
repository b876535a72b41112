"""Infilling: what the music after a gap is worth to each architecture, and how the new bars
meet their neighbours.

    python -m musegen.bench_infill --data data/folk --models DIR [DIR ...] [--split validation]
        [--tunes 200] [--max-gap 8] [--seed 0] [--candidates 1] [--json]

For each tune of the split (``--tunes`` of them, spread over it) with enough bars, one gap of
1 to ``--max-gap`` bars is drawn at a random place with at least one bar on each side (the same
gaps for every model). For each model it prints:

- ``plain``: bits per note of the whole tunes, left to right (continuation quality);
- ``gap left``: bits per note of the gap's notes knowing only the bars before it (the plain
  sequence), and ``gap both``: knowing both sides (the model's infilling arrangement; models
  trained without infilling have none);
- seams, over one sampled filling per tune: the interval in semitones from the last note before
  the gap into the first new note (``in``) and from the last new note into the first note after
  the gap (``out``), as mean absolute interval, beside the real tune's; ``out`` also for a plain
  continuation of the same bars, which does not know what follows. With ``--candidates`` k,
  each filling is the best of k, as `MuseGen.infill(..., candidates=k)` chooses it.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from musegen.data import spread, tokenize_split
from musegen.evaluate import LN2, evaluate_model, token_nll
from musegen.generate.infill import _fit
from musegen.generate.sample import generate
from musegen.options import Constraints
from musegen.tokens.grammar import POS
from musegen.tokens.infill import Arranged, Bars, arrange, split_bars

MIN_SIDE_BARS = 1


def draw_gaps(tok, arrays, tunes: int, max_gap: int, seed: int) -> list[tuple[int, int, int]]:
    """(tune index, first bar, end bar) of one gap per tune, 0-based, end excluded."""
    rng = np.random.default_rng(seed)
    gaps = []
    for i in range(len(arrays)):
        n = len(split_bars(tok, arrays.tune(i)))
        longest = min(max_gap, n - 2 * MIN_SIDE_BARS)
        if longest < 1:
            continue
        size = int(rng.integers(1, longest + 1))
        start = int(rng.integers(MIN_SIDE_BARS, n - MIN_SIDE_BARS - size + 1))
        gaps.append((i, start, start + size))
    return [gaps[j] for j in spread(len(gaps), tunes)]


def _top_note(ids: list[int], tok, first: bool) -> int | None:
    """The highest pitch at the first (or last) onset of a run of bar tokens."""
    chords: list[list[int]] = []
    for t in ids:
        if tok.token_family[t] == POS:  # a new onset
            chords.append([])
        elif tok.pitch_of_id[t] >= 0 and chords:
            chords[-1].append(int(tok.pitch_of_id[t]))
    chords = [c for c in chords if c]
    if not chords:
        return None
    return max(chords[0] if first else chords[-1])


def _interval(a: int | None, b: int | None) -> float | None:
    return None if a is None or b is None else float(abs(b - a))


def _mean(xs: list) -> float:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else float("nan")


def measure(model, arrays, gaps, seed: int, candidates: int = 1) -> dict:
    """The figures of one model (a `musegen.MuseGen`) on the drawn gaps."""
    tok = model.tokenizer
    net = model.model
    form = model.infill_form
    window = model.window
    plain = evaluate_model(net, tok, arrays)
    tunes = [np.asarray(arrays.tune(i), dtype=np.int64) for i, _, _ in gaps]
    left_nll = token_nll(net, tunes)
    both_seqs, spans, left_spans, cut = [], [], [], []
    for (_, start, end), ids in zip(gaps, tunes, strict=True):
        bars = split_bars(tok, ids)
        at = 1 + sum(len(b) for b in bars.bars[:start]) + bars.header[start]
        body = bars.body(start) + bars.after(start + 1, end)
        left_spans.append((at - 1, at - 1 + len(body)))  # targets are shifted by one
        lo, hi = _fit(tok, bars, start, end, window) if form else (0, len(bars))
        arranged = arrange(tok, bars.slice(lo, hi), start - lo, end - lo, form) if form else None
        cut.append((bars, arranged))
        if arranged is not None:
            seq = arranged.training_sequence(tok.eos_id)
            first = len(arranged.context) + len(arranged.opening)
            both_seqs.append(np.asarray(seq, dtype=np.int64))
            spans.append((first - 1, first - 1 + len(arranged.gap)))
    is_pitch = tok.pitch_of_id >= 0
    notes = sum(
        int(is_pitch[t[a + 1 : b + 1]].sum()) for t, (a, b) in zip(tunes, left_spans, strict=True)
    )
    left = sum(float(n[a:b].sum()) for n, (a, b) in zip(left_nll, left_spans, strict=True))
    result = {
        "model": model.name,
        "arch": model.arch,
        "infill_form": form,
        "tunes": len(gaps),
        "gap_notes": notes,
        "plain_bits_per_note": plain["bits_per_note"],
        "gap_left_bits_per_note": left / LN2 / notes,
    }
    if form:
        both_nll = token_nll(net, both_seqs)
        both = sum(float(n[a:b].sum()) for n, (a, b) in zip(both_nll, spans, strict=True))
        result["gap_both_bits_per_note"] = both / LN2 / notes
    result.update(_seams(model, gaps, cut, seed, candidates))
    return result


def _seams(
    model, gaps, cut: list[tuple[Bars, Arranged | None]], seed: int, candidates: int = 1
) -> dict:
    tok = model.tokenizer
    form = model.infill_form
    real_in, real_out, fill_in, fill_out, cont_out = [], [], [], [], []
    for (i, start, end), (bars, arranged) in zip(gaps, cut, strict=True):
        before = _top_note(bars.after(0, start), tok, first=False)
        real = bars.after(start, end)
        after = _top_note(bars.after(end, len(bars)), tok, first=True)
        real_in.append(_interval(before, _top_note(real, tok, first=True)))
        real_out.append(_interval(_top_note(real, tok, first=False), after))
        constraints = Constraints(bars=end - start)
        plain_before = [tok.bos_id] + bars.segment(0, start) + bars.gap_opening(start)
        cont = generate(model.model, tok, plain_before, constraints=constraints, seed=seed + i)[0]
        cont_out.append(_interval(_top_note(cont, tok, first=False), after))
        if arranged is not None:
            state = tok.grammar().walk(arranged.plain_before)
            rows = generate(
                model.model,
                tok,
                arranged.context + arranged.opening,
                n=candidates,
                constraints=constraints,
                seed=seed + i,
                start=state,
            )
            ids = rows[0]
            if candidates > 1:  # as MuseGen.infill_ids(candidates=...)
                following = bars.after(end, end + 1)
                costs = model.lead_in_costs(arranged.plain_before, rows, following)
                ids = rows[int(np.argmin(costs))]
            fill_in.append(_interval(before, _top_note(ids, tok, first=True)))
            fill_out.append(_interval(_top_note(ids, tok, first=False), after))
    out = {
        "seam_in_real": _mean(real_in),
        "seam_out_real": _mean(real_out),
        "seam_out_continuation": _mean(cont_out),
    }
    if form:
        out |= {"seam_in_infill": _mean(fill_in), "seam_out_infill": _mean(fill_out)}
    return out


def main(argv: list[str] | None = None) -> int:
    import musegen

    p = argparse.ArgumentParser(prog="python -m musegen.bench_infill", description=__doc__)
    p.add_argument("--data", required=True, help="corpus dir (musegen data)")
    p.add_argument("--models", nargs="+", required=True, help="checkpoint names or dirs")
    p.add_argument("--split", default="validation", help="validation (choices) or test (report)")
    p.add_argument("--tunes", type=int, default=200)
    p.add_argument("--max-gap", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--candidates", type=int, default=1, help="fillings sampled per gap, the best kept"
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = []
    for name in args.models:
        model = musegen.load(name, runtime="torch", threads=0)  # scores with the torch model
        arrays = tokenize_split(args.data, args.split, model.tokenizer, progress=False)
        gaps = draw_gaps(model.tokenizer, arrays, args.tunes, args.max_gap, args.seed)
        row = measure(model, arrays, gaps, args.seed, args.candidates)
        rows.append({**row, "candidates": args.candidates})
        print(json.dumps(rows[-1]) if args.json else _line(rows[-1]), flush=True)
    if not args.json:
        print(f"split {args.split}, one gap of 1-{args.max_gap} bars per tune, seed {args.seed}")
    return 0


def _line(r: dict) -> str:
    both = r.get("gap_both_bits_per_note")
    fill = (
        f"in {r['seam_in_infill']:.2f} out {r['seam_out_infill']:.2f}"
        if r.get("infill_form")
        else "-"
    )
    return (
        f"{r['model']:<36} {r['arch']:<12} {str(r['infill_form']):<5} "
        f"plain {r['plain_bits_per_note']:.3f}  gap left {r['gap_left_bits_per_note']:.3f}  "
        f"both {'-' if both is None else f'{both:.3f}'}  "
        f"seams real in {r['seam_in_real']:.2f} out {r['seam_out_real']:.2f}; infill {fill}; "
        f"continuation out {r['seam_out_continuation']:.2f}  ({r['tunes']} tunes, "
        f"{r['gap_notes']} gap notes)"
    )


if __name__ == "__main__":
    sys.exit(main())
