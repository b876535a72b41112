"""Small deterministic corpora for the training, evaluation and generation tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from musegen.midi import Note, Score, write_midi


def random_melody(rng: np.random.Generator, bars: int = 8, metre: tuple[int, int] = (4, 4)):
    """A stepwise melody in C major of eighth and quarter notes."""
    scale = [60, 62, 64, 65, 67, 69, 71, 72, 74]
    bar_ticks = 24 * 4 * metre[0] // metre[1]
    notes, t, degree = [], 0, 4
    while t < bars * bar_ticks:
        duration = int(rng.choice([12, 24, 24, 36]))
        degree = int(np.clip(degree + rng.integers(-2, 3), 0, len(scale) - 1))
        notes.append(Note(t, scale[degree], duration, 90))
        t += duration
    return Score(24, notes, time_signatures=[(0, *metre)], tempos=[(0, 100.0)])


def make_corpus(root: Path, tunes: int = 48, seed: int = 0, name: str = "test") -> Path:
    """A corpus folder like `musegen data folk` writes: midi/<split>/*.mid + manifest.json."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(tunes):
        split = "validation" if i % 8 == 6 else "test" if i % 8 == 7 else "train"
        metre = (3, 4) if i % 3 == 0 else (4, 4)
        score = random_melody(rng, bars=int(rng.integers(4, 10)), metre=metre)
        rel = f"midi/{split}/tune{i:03d}.mid"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_midi(score, root / rel)
        records.append({"file": rel, "split": split, "notes": len(score.notes)})
    (root / "manifest.json").write_text(json.dumps({"name": name, "tunes": records}))
    return root
