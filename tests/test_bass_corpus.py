"""The bass-line corpus: the single-line lowest part of each art piece, in its piece's split."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from musegen.corpus.voices import build_bass_corpus, lowest_line
from musegen.errors import DataError
from musegen.midi import Note, Score, Track, read_score, write_midi

TPQ = 24


def piece(upper: list[int], lower: list[list[int]]) -> Score:
    """A melody in quarter notes over a lower part (one list of pitches per quarter)."""
    notes = [Note(i * TPQ, p, TPQ, 80, 0) for i, p in enumerate(upper)]
    notes += [Note(i * TPQ, p, TPQ, 70, 1) for i, ps in enumerate(lower) for p in ps]
    return Score(TPQ, sorted(notes, key=lambda n: (n.start, n.pitch)), [Track(0), Track(42)])


MELODY = [72, 74, 76, 77, 79, 77, 76, 74] * 3
BASS = [[48], [43], [45], [41], [43], [36], [41], [43]] * 3


def fake_art_corpus(root: Path) -> Path:
    """Four pieces as `musegen data art` writes them (only what the bass builder reads)."""
    pieces = {
        "duet": ("train", piece(MELODY, BASS)),
        "piano": ("test", piece(MELODY, [[48, 52, 55]] * 24)),  # block chords: not a line
        "solo": ("train", Score(TPQ, [Note(i * TPQ, p, TPQ) for i, p in enumerate(MELODY)])),
        "copy": ("validation", piece(MELODY[::-1], [[p[0] + 2] for p in BASS])),  # same line, up
        "cello": ("validation", piece(MELODY[::-1], [[p[0] - 5] for p in BASS[::-1]])),
    }
    records = []
    for name, (split, score) in pieces.items():
        rel = f"midi/{split}/{name}.mid"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_midi(score, root / rel)
        records.append(
            {
                "file": rel,
                "split": split,
                "collection": "test",
                "source": f"test/{name}.xml",
                "notes": len(score.notes),
                "licence": "music21 corpus: for non-commercial use",
            }
        )
    manifest = {"name": "art", "licence": "music21 corpus", "tunes": records}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_the_lowest_single_line_is_kept_and_chords_or_solos_are_not():
    line = lowest_line(piece(MELODY, BASS))
    assert [n.pitch for n in line.notes] == [p[0] for p in BASS]
    assert [n.start for n in line.notes] == [i * TPQ for i in range(len(BASS))]
    assert line.tracks == [Track(42)] and {n.track for n in line.notes} == {0}
    assert lowest_line(piece(MELODY, [[48, 52, 55]] * 24)) is None
    assert lowest_line(Score(TPQ, [Note(i * TPQ, 60, TPQ) for i in range(20)])) is None


def test_the_build_keeps_splits_drops_copies_and_is_deterministic(tmp_path):
    art = fake_art_corpus(tmp_path / "art")
    first = build_bass_corpus(art, tmp_path / "a")
    second = build_bass_corpus(art, tmp_path / "b")
    assert first["tunes"] == second["tunes"]
    kept = {r["source"]: r["split"] for r in first["tunes"]}
    assert kept == {"test/duet.xml": "train", "test/cello.xml": "validation"}
    assert (first["skipped"], first["duplicates_removed"]) == (2, 1)
    for r in first["tunes"]:
        score = read_score(tmp_path / "a" / r["file"])
        assert len(score.tracks) == 1 and max(n.pitch for n in score.notes) < 60
        assert r["voice"] == "bass" and r["notes"] == len(score.notes) == 24
    with pytest.raises(DataError, match="already holds a corpus"):
        build_bass_corpus(art, tmp_path / "a")
    with pytest.raises(DataError, match="give the art corpus"):
        build_bass_corpus(tmp_path / "a", tmp_path / "c")
    with pytest.raises(DataError, match="musegen data art --out"):
        build_bass_corpus(tmp_path / "missing", tmp_path / "d")


def test_the_cli_builds_it_and_counts_the_splits(tmp_path):
    art = fake_art_corpus(tmp_path / "art")
    out = tmp_path / "bass"
    result = subprocess.run(
        [sys.executable, "-m", "musegen", "data", "bass", "--from", str(art), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "2 bass lines from 5 pieces" in result.stdout
    assert "train" in result.stdout and (out / "manifest.json").is_file()
