"""Fuzz the MIDI reader and tokenizer for longer than the test suite does.

    python tests/fuzz_midi.py --cases 20000 [--seed 0] [--time-bound 5]

Mutates real files (tests/data, music21's test files, demo/examples) with every mutation in
tests/midi_mutations.py, reads and tokenizes each result, and counts what happened: read fine,
refused with a MuseGenError (by message), a hang past the per-file time bound, or any other
exception (a bug). Peak memory is reported. Exits 1 if anything other than a MuseGenError
escaped or a file hung.
"""

from __future__ import annotations

import argparse
import collections
import random
import re
import resource
import signal
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import real_midi_files  # noqa: E402
from midi_mutations import mutate  # noqa: E402

from musegen.errors import MuseGenError  # noqa: E402
from musegen.midi import read_score  # noqa: E402
from musegen.quantize import read_for_model  # noqa: E402
from musegen.tokens.tokenizer import Tokenizer  # noqa: E402


class Hang(BaseException):  # not an Exception: no `except Exception` in musegen swallows it
    pass


def _alarm(signum, frame):
    raise Hang


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-bound", type=float, default=5.0, help="seconds per file")
    args = parser.parse_args()

    examples = Path(__file__).resolve().parent.parent / "demo" / "examples"
    files = [p.read_bytes() for p in real_midi_files() + sorted(examples.glob("*.mid"))]
    tok = Tokenizer()
    rng = random.Random(args.seed)
    outcomes: collections.Counter[str] = collections.Counter()
    bugs: list[str] = []
    slowest = (0.0, "")
    signal.signal(signal.SIGALRM, _alarm)
    start = time.perf_counter()
    for case in range(args.cases):
        data, names = mutate(rng.choice(files), rng)
        t0 = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, args.time_bound)
        try:
            tok.encode_score(read_score(data))
            _, model_view, grid = read_for_model(data, None, None, "auto")  # as prepare reads
            tok.encode_score(model_view)
            outcomes["read and tokenized" + (f" (quantized {grid.name})" if grid else "")] += 1
        except MuseGenError as e:
            what = re.sub(r"\d[\d,.]*", "N", str(e).split(";")[0])[:70]
            outcomes[f"{type(e).__name__}: {what}"] += 1
        except Hang:
            outcomes["HANG"] += 1
            bugs.append(f"case {case}: hang after {names}")
        except Exception:
            outcomes["BUG"] += 1
            bugs.append(f"case {case} {names}:\n{traceback.format_exc()}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        dt = time.perf_counter() - t0
        if dt > slowest[0]:
            slowest = (dt, "+".join(names))
    total = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.cases} cases from {len(files)} real files in {total:.1f} s (seed {args.seed})")
    for what, n in outcomes.most_common():
        print(f"  {n:>7}  {what}")
    print(f"slowest case {slowest[0] * 1000:.0f} ms ({slowest[1]}); peak RSS {peak_mb:.0f} MB")
    for b in bugs[:10]:
        print(b)
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
