"""The bass-line corpus: the lowest voice of each art-music piece, as a melody of its own.

A folk corpus has no bass lines: its melodies sit in the middle of the keyboard and move by
step. The art corpus (`musegen.corpus.art`) has them, but only inside full textures. For each
of its pieces with two or more parts, `build_bass_corpus` takes the part that lies lowest (by
median pitch) if it is a single line (at most `MAX_VOICES` notes per onset on average: a cello
or a bass voice, not a pianist's left hand) and writes it as a one-track piece. Each bass line
stays in the split of its piece, so no music sits on two sides; duplicates (a transposed copy
included) are removed. Built from an art corpus in seconds, without music21.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from musegen.data import (
    MANIFEST,
    _write_json_atomic,
    melody_key,
    split_counts,
)
from musegen.errors import DataError, MidiError
from musegen.midi import Note, Score, read_score, write_midi

MAX_VOICES = 1.1  # notes per onset, on average, for a part to count as one line
MIN_NOTES = 16


def lowest_line(score: Score) -> Score | None:
    """The lowest part of ``score`` as a one-track score, or None (one part, or the lowest
    part is chordal or too short)."""
    parts = {}
    for n in score.notes:
        parts.setdefault(n.track, []).append(n)
    if len(parts) < 2:
        return None
    track, notes = min(parts.items(), key=lambda kv: float(np.median([n.pitch for n in kv[1]])))
    if len(notes) < MIN_NOTES or len(notes) / len({n.start for n in notes}) > MAX_VOICES:
        return None
    return Score(
        score.ticks_per_quarter,
        [Note(n.start, n.pitch, n.duration, n.velocity, 0) for n in notes],
        [score.tracks[track]],
        score.time_signatures,
        score.tempos,
    )


def build_bass_corpus(art_dir: str | Path, out_dir: str | Path) -> dict:
    """Build the bass-line corpus in ``out_dir`` from the art corpus in ``art_dir``.

    Deterministic. Returns the manifest (``midi/<split>/*.mid`` as every corpus)."""
    src, out = Path(art_dir), Path(out_dir)
    if (out / MANIFEST).exists():
        raise DataError(f"{out} already holds a corpus; remove it or choose another --out")
    manifest_path = src / MANIFEST
    if not manifest_path.is_file():
        raise DataError(f"{src} is not an art corpus; build it first: musegen data art --out {src}")
    art = json.loads(manifest_path.read_text())
    if art.get("name") != "art":
        raise DataError(f"{src} holds the {art.get('name')!r} corpus; give the art corpus")
    started = time.perf_counter()
    records, seen = [], set()
    skipped = duplicates = 0
    for piece in art["tunes"]:
        try:
            line = lowest_line(read_score(src / piece["file"]))
        except MidiError:
            line = None
        if line is None:
            skipped += 1
            continue
        key = melody_key(line)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        rel = f"midi/{piece['split']}/{Path(piece['file']).stem}_bass.mid"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        write_midi(line, out / rel)
        records.append(
            {
                "file": rel,
                "split": piece["split"],
                "collection": piece["collection"],
                "source": piece["source"],
                "piece": piece.get("piece", 0),
                "voice": "bass",
                "notes": len(line.notes),
                "group": piece.get("group", ""),
                "licence": piece["licence"],
            }
        )
    manifest = {
        "name": "bass",
        "from": "art",
        "pieces_read": len(art["tunes"]),
        "skipped": skipped,  # one part only, or a chordal or short lowest part
        "duplicates_removed": duplicates,
        "counts": split_counts(records),
        "licence": art["licence"],
        "build_seconds": round(time.perf_counter() - started, 1),
        "tunes": records,
    }
    _write_json_atomic(out / MANIFEST, manifest)
    return manifest
