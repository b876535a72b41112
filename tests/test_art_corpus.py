"""The art-music corpus from music21's scores (never its bach/ directory)."""

from __future__ import annotations

import io
import json

import pretty_midi
import pytest

from musegen.errors import DataError

music21 = pytest.importorskip("music21")

from musegen.corpus.art import build_art_corpus, score_files  # noqa: E402
from musegen.corpus.scores import score_to_midi  # noqa: E402
from musegen.data import music21_corpus_dir, split_files  # noqa: E402

SMALL = ("joplin", "verdi", "handel")


def test_a_score_keeps_its_pickup_parts_chords_and_ties():
    from music21 import chord, meter, note, stream

    s = stream.Score()
    upper, lower = stream.Part(), stream.Part()
    m0 = stream.Measure(number=0)
    m0.append(meter.TimeSignature("3/4"))
    m0.append(note.Note("G4", quarterLength=1.0))
    m0.paddingLeft = 2.0  # a one-beat pickup in 3/4
    m1 = stream.Measure(number=1)
    tied_a, tied_b = note.Note("C5", quarterLength=1.0), note.Note("C5", quarterLength=1.0)
    tied_a.tie, tied_b.tie = music21.tie.Tie("start"), music21.tie.Tie("stop")
    m1.append([tied_a, tied_b, note.Note("D5", quarterLength=1.0)])
    upper.append([m0, m1])
    b0 = stream.Measure(number=0)
    b0.append(note.Rest(quarterLength=1.0))
    b0.paddingLeft = 2.0
    b1 = stream.Measure(number=1)
    b1.append(chord.Chord(["C3", "G3"], quarterLength=3.0))
    lower.append([b0, b1])
    s.insert(0, upper)
    s.insert(0, lower)
    pm = pretty_midi.PrettyMIDI(io.BytesIO(score_to_midi(s)))
    top, bottom = pm.instruments
    assert [(n.pitch, n.start, n.end) for n in top.notes] == [
        (67, 1.0, 1.5),  # the pickup: beat 3 of an empty bar (0.5 s a quarter)
        (72, 1.5, 2.5),  # the tie merged
        (74, 2.5, 3.0),
    ]
    assert sorted((n.pitch, n.start) for n in bottom.notes) == [(48, 1.5), (55, 1.5)]
    assert [(t.numerator, t.denominator) for t in pm.time_signature_changes] == [(3, 4)]


def test_bach_is_never_read():
    with pytest.raises(DataError, match="never used for training"):
        score_files(music21_corpus_dir(), ("joplin", "bach"))


def test_the_build_is_deterministic_and_records_every_piece(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSEGEN_CACHE", str(tmp_path / "cache"))
    first = build_art_corpus(tmp_path / "a", collections=SMALL, progress=False)
    second = build_art_corpus(tmp_path / "b", collections=SMALL, progress=False)  # cached
    assert first["tunes"] == second["tunes"] and first["counts"] == second["counts"]
    assert first["files"] == 3 and len(first["tunes"]) >= 3
    for r in first["tunes"]:
        assert r["collection"] in SMALL and r["licence"].startswith("music21 corpus")
        assert (tmp_path / "a" / r["file"]).is_file() and r["notes"] >= 8
    every = split_files(tmp_path / "a", "all")
    assert len(every) == len(first["tunes"])
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["name"] == "art" and "bach" not in manifest["collections"]
    with pytest.raises(DataError, match="already holds a corpus"):
        build_art_corpus(tmp_path / "a", collections=SMALL, progress=False)
