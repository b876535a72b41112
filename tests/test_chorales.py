"""The external benchmark: Bach chorale melodies from music21, never trained on."""

from __future__ import annotations

import io

import pretty_midi
import pytest

import musegen
from musegen import chorales, data
from musegen.cli import main
from musegen.errors import DataError

corpus = pytest.importorskip("music21.corpus")


@pytest.fixture(scope="module")
def bwv253() -> bytes:
    return chorales.soprano_midi(corpus.parse("bach/bwv253"))


def test_soprano_line_keeps_its_pickup_and_merges_ties(bwv253):
    pm = pretty_midi.PrettyMIDI(io.BytesIO(bwv253))
    (voice,) = pm.instruments
    notes = voice.notes
    assert [(t.numerator, t.denominator) for t in pm.time_signature_changes] == [(4, 4)]
    # one beat of pickup: the first note sounds on beat 4 of an empty bar (1.5 s at 120 qpm)
    assert notes[0].start == pytest.approx(1.5) and notes[0].pitch == 73
    assert notes[1].start == pytest.approx(2.0)  # the first downbeat
    assert all(a.end <= b.start + 1e-9 for a, b in zip(notes, notes[1:], strict=False))
    assert 30 <= len(notes) <= 60


def test_evaluate_scores_the_melodies_note_weighted(bwv253, monkeypatch):
    monkeypatch.setattr(chorales, "melodies", lambda progress=False: [(253, bwv253)] * 2)
    model = musegen.load("lstm")
    result = chorales.evaluate(model)
    one = model.score(bwv253, quantize="off")
    assert result["files"] == 2 and result["notes"] == 2 * one["notes"]
    assert result["pitch_bits_per_note"] == pytest.approx(one["pitch_bits_per_note"], rel=1e-6)
    assert result["reference IDyOM pitch-only PPM"] == 2.347


def test_the_corpus_builder_refuses_the_bach_directory(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "FOLK_COLLECTIONS", ("essenFolksong", "bach"))
    (tmp_path / "essenFolksong").mkdir()
    with pytest.raises(DataError, match="never used for training"):
        data._abc_files(tmp_path)


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--model", "lstm"],
        ["eval", "--model", "lstm", "--data", "x", "--benchmark", "chorales"],
    ],
)
def test_eval_needs_data_or_the_benchmark(argv, capsys):
    assert main(argv) == 2
    assert "--data DIR or --benchmark chorales" in capsys.readouterr().err
