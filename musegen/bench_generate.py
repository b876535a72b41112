"""Benchmark: end-to-end time of an 8-bar continuation of a 16-bar primer, per model.

    python -m musegen.bench_generate --data data/folk [--models lstm transformer mamba]

For each model: load once, then for each primer (the first 16 bars of test-split tunes) time
``continue_midi`` from the file path to a written output file (parse, prefill, sample,
decode, write), at batch 1 on this CPU. Prints medians with the spread, and generation speed
in tokens per second (sampling loop only). A program, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from musegen.data import split_files
from musegen.midi import Score, read_score, write_midi
from musegen.models import ARCHITECTURES
from musegen.tokenizer import Tokenizer


def make_primers(data_dir: str | Path, out_dir: Path, count: int = 10, bars: int = 16) -> list:
    """The first ``bars`` bars of the first ``count`` test tunes that are long enough."""
    tok = Tokenizer()
    primers = []
    for f in split_files(data_dir, "test"):
        score = read_score(f)
        starts = tok.bar_starts(
            tok.metre_changes(score.time_signatures), max(n.start for n in score.notes)
        )
        if len(starts) <= bars:
            continue
        cut = int(starts[bars])
        notes = [n for n in score.notes if n.start < cut]
        path = out_dir / f"primer_{len(primers)}.mid"
        write_midi(
            Score(
                score.ticks_per_quarter, notes, score.tracks, score.time_signatures, score.tempos
            ),
            path,
        )
        primers.append(path)
        if len(primers) == count:
            break
    return primers


def time_model(name: str, primers: list[Path], out_dir: Path, repeats: int = 3) -> dict:
    import musegen

    model = musegen.load(name)
    model.continue_midi(primers[0], bars=8, seed=0)  # warm-up
    end_to_end, tokens_per_s = [], []
    for r in range(repeats):
        for i, p in enumerate(primers):
            t0 = time.perf_counter()
            model.continue_midi(p, bars=8, seed=r * 100 + i).write(str(out_dir / "out.mid"))
            end_to_end.append((time.perf_counter() - t0) * 1000)
            prepared = model.prepare(p)
            t1 = time.perf_counter()
            ids = model.generate_ids(prepared, bars=8, seed=r * 100 + i)[0]
            tokens_per_s.append(len(ids) / (time.perf_counter() - t1))
    t0 = time.perf_counter()
    model.variations(primers[0], n=4, bars=8, seed=1)
    four = (time.perf_counter() - t0) * 1000
    return {
        "model": name,
        "continue_ms_median": statistics.median(end_to_end),
        "continue_ms_min": min(end_to_end),
        "continue_ms_max": max(end_to_end),
        "tokens_per_s_median": statistics.median(tokens_per_s),
        "variations4_ms": four,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/folk", help="corpus with a test split")
    parser.add_argument("--models", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--primers", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        primers = make_primers(args.data, Path(tmp), args.primers)
        print(
            f"{len(primers)} primers of 16 bars; 8-bar continuation; batch 1; "
            f"{torch.get_num_threads()} threads"
        )
        print(
            f"{'model':<13}{'median ms':>10}{'min-max ms':>14}{'tokens/s':>10}"
            f"{'4 variations ms':>17}"
        )
        for name in args.models:
            r = time_model(name, primers, Path(tmp), args.repeats)
            print(
                f"{name:<13}{r['continue_ms_median']:>10.0f}"
                f"{r['continue_ms_min']:>7.0f}-{r['continue_ms_max']:<6.0f}"
                f"{r['tokens_per_s_median']:>10.0f}{r['variations4_ms']:>17.0f}"
            )


if __name__ == "__main__":
    main()
