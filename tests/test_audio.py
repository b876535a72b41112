"""Audio: synthesis (FluidSynth or the plain synth) and WAV files."""

from __future__ import annotations

import ctypes.util
import io
import threading
import wave
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pretty_midi
import pytest

from musegen.errors import ConfigError
from musegen.io import audio


@pytest.fixture
def tune() -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=73)
    for i, pitch in enumerate([62, 66, 69, 74]):
        inst.notes.append(pretty_midi.Note(90, pitch, i * 0.5, i * 0.5 + 0.45))
    pm.instruments.append(inst)
    return pm


@pytest.mark.parametrize("backend", ["plain", "auto"])
def test_synthesize_length_and_level(tune, backend):
    samples, used = audio.synthesize(tune, 16000, backend=backend)
    assert samples.dtype == np.float32
    assert len(samples) == int((tune.get_end_time() + audio.TAIL_SECONDS) * 16000)
    assert abs(float(np.abs(samples).max()) - 0.9) < 1e-6
    assert used == "plain" if backend == "plain" else used in ("plain", "fluidsynth")
    # sound while notes play, silence at the end of the tail
    assert np.abs(samples[: 16000 // 4]).max() > 0.1
    assert np.abs(samples[-100:]).max() < 0.05


def test_fluidsynth_missing_is_a_clear_error(tune, monkeypatch):
    monkeypatch.setattr(audio, "fluidsynth_available", lambda: False)
    assert audio.synthesize(tune, backend="auto")[1] == "plain"
    with pytest.raises(ConfigError, match="libfluidsynth"):
        audio.synthesize(tune, backend="fluidsynth")


def _render_at_once(tune, threads: int) -> list:
    """``synthesize`` from many threads released together (the web demo's first requests)."""
    barrier = threading.Barrier(threads)

    def one(_):
        barrier.wait()
        return audio.synthesize(tune, 16000)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(threads)))


def test_without_libfluidsynth_concurrent_renders_fall_back(tune, no_libfluidsynth):
    results = _render_at_once(tune, 16)
    assert [used for _, used in results] == ["plain"] * 16
    assert all(abs(float(np.abs(a).max()) - 0.9) < 1e-6 for a, _ in results)
    assert audio.fluidsynth_available() is False
    with pytest.raises(ConfigError, match="libfluidsynth"):
        audio.synthesize(tune, backend="fluidsynth")


@pytest.mark.skipif(
    ctypes.util.find_library("fluidsynth") is None,
    reason="the system libfluidsynth is not installed (Debian: apt install libfluidsynth3)",
)
def test_with_libfluidsynth_concurrent_renders_use_it(tune, fresh_probe):
    pytest.importorskip("fluidsynth", reason="pyfluidsynth is not installed")
    results = _render_at_once(tune, 8)
    assert [used for _, used in results] == ["fluidsynth"] * 8
    first = results[0][0]
    assert all(np.array_equal(a, first) for a, _ in results)  # same music, same samples


def test_a_failing_fluidsynth_falls_back_to_the_plain_synth(tune, monkeypatch, caplog):
    def broken(pm, rate):
        raise ImportError("fluidsynth() was called but pyfluidsynth is not installed.")

    monkeypatch.setattr(audio, "fluidsynth_available", lambda: True)
    monkeypatch.setattr(audio, "_fluidsynth", broken)
    samples, used = audio.synthesize(tune, 16000)
    assert used == "plain" and np.abs(samples).max() > 0.1
    assert "FluidSynth failed" in caplog.text
    with pytest.raises(ConfigError, match="could not render"):
        audio.synthesize(tune, backend="fluidsynth")


def test_drums_only_render_silence_not_nan():
    pm = pretty_midi.PrettyMIDI()
    kit = pretty_midi.Instrument(0, is_drum=True)
    kit.notes.append(pretty_midi.Note(100, 36, 0.0, 0.5))
    pm.instruments.append(kit)
    samples, _ = audio.synthesize(pm, 16000, backend="plain")
    assert np.isfinite(samples).all() and not samples.any()


def test_bad_options(tune):
    with pytest.raises(ConfigError, match="backend"):
        audio.synthesize(tune, backend="mp3")
    with pytest.raises(ConfigError, match="8000-96000"):
        audio.synthesize(tune, 100)


def test_wav_round_trip():
    samples = np.sin(np.linspace(0, 100, 8000)).astype(np.float32) * 0.5
    with wave.open(io.BytesIO(audio.wav_bytes(samples, 8000))) as w:
        assert (w.getframerate(), w.getnframes(), w.getsampwidth()) == (8000, 8000, 2)
        back = np.frombuffer(w.readframes(8000), "<i2") / 32767
    assert np.abs(back - samples).max() < 1e-4
