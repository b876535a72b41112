"""Every option a user can get wrong gets a MuseGenError that names the allowed values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import musegen
from musegen.cli import main
from musegen.errors import MuseGenError

JIG = str(Path(__file__).resolve().parent.parent / "demo" / "examples" / "jig_in_d.mid")


@pytest.fixture(scope="module")
def model():
    return musegen.load("lstm")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"bars": 0}, "bars must be a whole number from 1 to 256"),
        ({"bars": 1.5}, "bars must be a whole number from 1 to 256"),
        ({"bars": "8"}, "bars must be a whole number from 1 to 256"),
        ({"bars": True}, "bars must be a whole number from 1 to 256"),
        ({"temperature": -1}, r"temperature must be in \(0, 10\]"),
        ({"temperature": float("nan")}, r"temperature must be in \(0, 10\]"),
        ({"temperature": "hot"}, r"temperature must be in \(0, 10\]"),
        ({"top_p": 2}, r"top_p must be in \(0, 1\]"),
        ({"top_p": float("nan")}, r"top_p must be in \(0, 1\]"),
        ({"top_k": -3}, "top_k must be a whole number >= 0"),
        ({"top_k": 2.5}, "top_k must be a whole number >= 0"),
        ({"min_p": 1}, r"min_p must be in \[0, 1\)"),
        ({"key": "H major"}, "the tonic must be A-G"),
        ({"key": "D blues"}, "choose major, minor"),
        ({"key": 5}, "key must be a name like 'D major'"),
        ({"seed": -1}, r"seed must be a whole number from 0 to 2\*\*63-1"),
        ({"seed": "a"}, r"seed must be a whole number from 0 to 2\*\*63-1"),
        ({"seed": 2**70}, r"seed must be a whole number from 0 to 2\*\*63-1"),
        ({"seed": 1.5}, r"seed must be a whole number from 0 to 2\*\*63-1"),
        ({"track": 99}, "track 99 does not exist: the file has 1 track with notes"),
        ({"track": "a"}, "track must be an integer index or None"),
        ({"pitch_range": (80, 20)}, "pitch range must satisfy 0 <= low <= high <= 127"),
        ({"pitch_range": 5}, r"pitch range must be a pair \(low, high\)"),
    ],
)
def test_continue_midi_options(model, options, message):
    with pytest.raises(MuseGenError, match=message):
        model.continue_midi(JIG, **options)


@pytest.mark.parametrize(
    "source, message",
    [
        ("/no/such/file.mid", "MIDI file not found"),
        ("/tmp", "is a directory; give a .mid file"),
        (5, "cannot read a MIDI source of type int"),
        (b"", "the MIDI data is empty"),
    ],
)
def test_bad_sources(model, source, message):
    with pytest.raises(MuseGenError, match=message):
        model.continue_midi(source, bars=1)


def test_numpy_integers_are_whole_numbers(model):
    a = model.continue_midi(JIG, bars=np.int64(1), seed=np.int64(3))
    b = model.continue_midi(JIG, bars=1, seed=3)
    assert [n.pitch for n in a.instruments[0].notes] == [n.pitch for n in b.instruments[0].notes]


def test_variations_load_and_tokenizer(model):
    for n in (0, 99, "2"):
        with pytest.raises(MuseGenError, match="variations must be a whole number from 1 to 16"):
            model.variations(JIG, n=n, bars=1)
    with pytest.raises(MuseGenError, match="use lstm, transformer, mamba or a checkpoint"):
        musegen.load("gpt5")
    with pytest.raises(MuseGenError, match="device must be 'cpu', 'cuda'"):
        musegen.load("lstm", device="tpu")
    with pytest.raises(MuseGenError, match="unknown token id 99999"):
        model.tokenizer.decode([99999])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", JIG, "-o", "x.mid", "--bars", "0"], "bars must be a whole number"),
        (["generate", JIG, "-o", "x.mid", "--seed", "-5"], "seed must be a whole number"),
        (["generate", JIG, "-o", "x.mid", "--top-p", "1.5"], "top_p must be in"),
        (["generate", JIG, "-o", "x.mid", "--key", "Q minor"], "the tonic must be A-G"),
        (["generate", JIG, "-o", "x.mid", "--variations", "40"], "variations must be"),
        (["generate", JIG, "-o", "x.mid", "--pitch-range", "90-20"], "pitch range"),
        (["generate", JIG, "-o", "x.mid", "--model", "nope"], "no model 'nope'"),
        (["generate", "/no/file.mid", "-o", "x.mid"], "MIDI file not found"),
        (["bench", "--primer", "/no/file.mid"], "MIDI file not found"),
        (["demo", "--port", "0"], "--port must be 1-65535"),
    ],
)
def test_cli_options_are_one_line_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "x.mid").exists()
