"""What int8 arithmetic costs each model: bits per note in float32 and int8 on held-out tunes.

    python -m musegen.bench_precision --data data/folk data/art data/bass --tunes 100

Tunes are scored over their first ``--max-tokens`` tokens (1024: a whole folk tune, the first
few dozen bars of an art piece), notes counted in that part.

Each shipped model runs on ONNX Runtime in both precisions (`musegen.runtime`). A tune is
scored two ways, as generation uses the graphs:

- ``prefill``: the whole tune in prefill calls (what reads a primer);
- ``step``: the tune fed one token at a time to the step graph after its first token (what
  writes a continuation), all tunes of a sample side by side as rows of one batch.

The table gives bits per note for float32 and int8 and the relative difference. A program
that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from musegen.metrics import bits_per_note

PRECISIONS = ("float32", "int8")
WAYS = ("prefill", "step")


def step_nll(model: Any, tunes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per-token loss (nats) of tokens 1.. of each tune from the step graph, every tune a
    row of one batch (rows past their tune's end are fed padding and not scored)."""
    from musegen.generate.muse import _nll_from_logits

    runtime, pad = model.runtime, model.tokenizer.pad_id
    longest = max(len(t) for t in tunes)
    ids = np.full((len(tunes), longest), pad, dtype=np.int64)  # (B, T)
    for row, tune in enumerate(tunes):
        ids[row, : len(tune)] = tune
    first = {int(t[0]) for t in tunes}
    if len(first) != 1:
        raise ValueError("the tunes must start with the same token (BOS)")
    logits, state = runtime.prefill([first.pop()])  # (1, V)
    state = runtime.repeat(state, len(tunes))
    logits = np.repeat(logits, len(tunes), axis=0)  # (B, V): predicts token 1
    losses = np.zeros((len(tunes), longest - 1))
    for t in range(1, longest):
        losses[:, t - 1] = _nll_from_logits(logits, ids[:, t])
        if t < longest - 1:
            logits, state = runtime.step(ids[:, t], state)
    return [losses[row, : len(tune) - 1] for row, tune in enumerate(tunes)]


def measure(name: str, corpora: Sequence[str], tunes: int, split: str, max_tokens: int) -> dict:
    """Bits per note of model ``name`` per corpus, precision and way of scoring, over the
    first ``max_tokens`` tokens of each tune."""
    from musegen.data import eval_tunes, tokenize_split
    from musegen.generate.muse import load

    models = {p: load(name, runtime="onnx", precision=p) for p in PRECISIONS}
    tok = models["float32"].tokenizer
    out: dict[str, Any] = {}
    for corpus in corpora:
        arrays = tokenize_split(corpus, split, tok, progress=False)
        sample = [t[:max_tokens] for t in eval_tunes(arrays, tunes)]
        notes = [int(np.isin(t, tok.pitch_ids).sum()) for t in sample]
        rows: dict[str, Any] = {"tunes": len(sample)}
        for way in WAYS:
            for p, m in models.items():
                nlls = step_nll(m, sample) if way == "step" else [m._token_nll(t) for t in sample]
                rows[f"{way} {p}"] = bits_per_note(nlls, sample, notes, tok)["bits_per_note"]
        out[corpus] = rows
    return out


def table(results: dict) -> str:
    lines = [
        f"{'model':<12} {'data':<12} {'tunes':>5}  "
        + "  ".join(f"{w + ' float32':>15} {w + ' int8':>12} {'change':>7}" for w in WAYS)
    ]
    for name, by_corpus in results.items():
        for corpus, r in by_corpus.items():
            cells = []
            for w in WAYS:
                a, b = r[f"{w} float32"], r[f"{w} int8"]
                cells.append(f"{a:>15.3f} {b:>12.3f} {100 * (b / a - 1):>+6.2f}%")
            lines.append(f"{name:<12} {corpus:<12} {r['tunes']:>5}  " + "  ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from musegen.options import ARCHITECTURES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", required=True, help="corpus dirs (musegen data)")
    p.add_argument("--split", default="test")
    p.add_argument("--tunes", type=int, default=100, help="per corpus, spread over the split")
    p.add_argument("--max-tokens", type=int, default=1024, help="of each tune, from its start")
    p.add_argument("--models", nargs="+", default=list(ARCHITECTURES))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    results = {
        name: measure(name, args.data, args.tunes, args.split, args.max_tokens)
        for name in args.models
    }
    print(json.dumps(results) if args.json else table(results))


if __name__ == "__main__":
    main()
