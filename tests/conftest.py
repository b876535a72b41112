"""Shared fixtures: real third-party MIDI files, folk tunes made with abc2midi, and a tiny
builder for hand-made (and hostile) Standard MIDI Files."""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import pretty_midi
import pytest

from musegen.bench_tokenize import abc2midi_path, make_folk_midis, music21_corpus_dir
from musegen.io import audio
from musegen.io.midi_out import vlq

DATA_DIR = Path(__file__).parent / "data"
THIRDPARTY_DIR = DATA_DIR / "thirdparty"


@pytest.fixture(scope="session", autouse=True)
def cache_in_tmp(tmp_path_factory: pytest.TempPathFactory):
    """musegen's cache (converted corpora, the graphs ONNX Runtime optimized) in a folder of
    the test run's own, for every test and the processes they start: nothing read from or
    left in the user's ~/.cache."""
    before = os.environ.get("MUSEGEN_CACHE")
    os.environ["MUSEGEN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        del os.environ["MUSEGEN_CACHE"]
    else:
        os.environ["MUSEGEN_CACHE"] = before


def thirdparty_files() -> list[Path]:
    """MIDI files from the miditok / symusic source distributions (see their README)."""
    return sorted(THIRDPARTY_DIR.glob("*.mid"))


def music21_test_files() -> list[Path]:
    """music21's ``midi/testPrimitive/*.mid`` (empty if music21 is not installed)."""
    m21 = music21_corpus_dir()
    return sorted((m21 / "midi" / "testPrimitive").glob("*.mid")) if m21 else []


def real_midi_files() -> list[Path]:
    """All real third-party test files: music21's and tests/data/thirdparty."""
    return music21_test_files() + thirdparty_files()


@pytest.fixture(scope="session")
def real_midis() -> list[Path]:
    files = real_midi_files()
    assert files, "no real MIDI test files found"
    return files


@pytest.fixture(scope="session")
def abc2midi() -> Path:
    """Path of symusic's abc2midi binary (skips the test when it is missing)."""
    exe = abc2midi_path()
    if exe is None:
        pytest.skip("abc2midi (from the symusic wheel) is not installed")
    return exe


@pytest.fixture(scope="session")
def folk_midis(tmp_path_factory: pytest.TempPathFactory, abc2midi: Path) -> list[Path]:
    """40 Essen folk tunes (music21 corpus) converted to MIDI with abc2midi."""
    files = make_folk_midis(40, tmp_path_factory.mktemp("folk"))
    if not files:
        pytest.skip("music21's essenFolksong corpus is not installed")
    return files


INFILL_FORM_OF = {"lstm": "spm", "transformer": "psm", "mamba": "spm"}  # both forms, every arch


@pytest.fixture(scope="session")
def infill_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny checkpoint per architecture trained here with the infilling mix (arch -> dir)."""
    from corpus_helpers import make_corpus

    from musegen.train import TrainConfig, train

    corpus = make_corpus(tmp_path_factory.mktemp("infill-corpus"))
    out = {}
    for arch, form in INFILL_FORM_OF.items():
        folder = tmp_path_factory.mktemp(f"infill-{arch}")
        cfg = TrainConfig(
            arch,
            str(corpus),
            str(folder),
            preset="tiny",
            tokens=4 * 128 * 20,
            batch_size=4,
            seq_len=128,
            lr=1e-2,
            warmup_steps=2,
            eval_every=10,
            eval_tunes=4,
            infill_rate=0.5,
            infill_form=form,
        )
        train(cfg, progress=False)
        out[arch] = folder
    return out


@pytest.fixture(scope="session")
def continuation_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LSTM checkpoint without the infilling tokens (a model trained for continuation
    only, as musegen's models were before infilling): it continues, and says it cannot infill.
    Its weights are untrained: the tests that use it check messages, not music."""
    import torch

    from musegen import checkpoint as ckpt
    from musegen.models import build
    from musegen.tokens.tokenizer import Tokenizer

    folder = tmp_path_factory.mktemp("continuation-only")
    torch.manual_seed(0)
    tokenizer = Tokenizer()
    model = build("lstm", tokenizer.vocab_size, "tiny")
    ckpt.save_checkpoint(folder, model, "lstm", tokenizer, training={"steps": 0})
    return folder


# -- hand-made MIDI bytes ---------------------------------------------------------------------


def smf(
    tracks: list[bytes],
    *,
    fmt: int = 1,
    tpq: int = 480,
    ntracks: int | None = None,
    end_of_track: bool = True,
) -> bytes:
    """A Standard MIDI File from raw track event bytes (delta times included).

    ``ntracks`` overrides the header's track count (to make it wrong on purpose);
    ``end_of_track`` appends the end-of-track meta event to each track.
    """
    out = b"MThd" + struct.pack(">IHHH", 6, fmt, len(tracks) if ntracks is None else ntracks, tpq)
    for t in tracks:
        if end_of_track:
            t = t + b"\x00\xff\x2f\x00"
        out += b"MTrk" + struct.pack(">I", len(t)) + t
    return out


def note(delta: int, pitch: int, length: int, velocity: int = 100, channel: int = 0) -> bytes:
    """Note on after ``delta`` ticks, note off ``length`` ticks later (velocity-0 note-on)."""
    on = 0x90 | channel
    return vlq(delta) + bytes([on, pitch, velocity]) + vlq(length) + bytes([on, pitch, 0])


def tempo(delta: int, qpm: float) -> bytes:
    return vlq(delta) + b"\xff\x51\x03" + round(60_000_000 / qpm).to_bytes(3, "big")


def time_signature(delta: int, numerator: int, denominator: int) -> bytes:
    dd = denominator.bit_length() - 1
    return vlq(delta) + bytes([0xFF, 0x58, 4, numerator, dd, 24, 8])


@pytest.fixture
def midi_builder():
    """The builders above, for tests in other files: ``midi_builder.smf(...)``."""
    import types

    return types.SimpleNamespace(
        smf=smf, vlq=vlq, note=note, tempo=tempo, time_signature=time_signature
    )


@pytest.fixture
def tune() -> pretty_midi.PrettyMIDI:
    """Four flute notes half a second apart (D4 F#4 A4 D5), at 120 bpm in 4/4: bar 1."""
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=73)
    for i, pitch in enumerate([62, 66, 69, 74]):
        inst.notes.append(pretty_midi.Note(90, pitch, i * 0.5, i * 0.5 + 0.45))
    pm.instruments.append(inst)
    return pm


# ------------------------------------------------------------------ audio backends


@pytest.fixture
def fresh_probe():
    """FluidSynth probed anew in the test, and again after it (for the tests that follow)."""
    audio.forget_audio_probe()
    yield
    audio.forget_audio_probe()


@pytest.fixture
def no_libfluidsynth(monkeypatch, fresh_probe):
    """A machine without the system libfluidsynth, whatever this one has: pyfluidsynth's own
    library lookup finds nothing, so importing it raises as it does there."""
    import ctypes.util

    real = ctypes.util.find_library
    monkeypatch.setattr(
        ctypes.util, "find_library", lambda name: None if "fluidsynth" in name else real(name)
    )
    monkeypatch.delitem(sys.modules, "fluidsynth", raising=False)
