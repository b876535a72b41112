"""Audio and piano-roll rendering."""

from __future__ import annotations

import io
import wave

import numpy as np
import pretty_midi
import pytest

from musegen import render
from musegen.errors import ConfigError


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
    samples, used = render.synthesize(tune, 16000, backend=backend)
    assert samples.dtype == np.float32
    assert len(samples) == int((tune.get_end_time() + render.TAIL_SECONDS) * 16000)
    assert abs(float(np.abs(samples).max()) - 0.9) < 1e-6
    assert used == "plain" if backend == "plain" else used in ("plain", "fluidsynth")
    # sound while notes play, silence at the end of the tail
    assert np.abs(samples[: 16000 // 4]).max() > 0.1
    assert np.abs(samples[-100:]).max() < 0.05


def test_fluidsynth_missing_is_a_clear_error(tune, monkeypatch):
    monkeypatch.setattr(render, "_fluidsynth", lambda pm, rate: None)
    assert render.synthesize(tune, backend="auto")[1] == "plain"
    with pytest.raises(ConfigError, match="libfluidsynth"):
        render.synthesize(tune, backend="fluidsynth")


def test_bad_options(tune):
    with pytest.raises(ConfigError, match="backend"):
        render.synthesize(tune, backend="mp3")
    with pytest.raises(ConfigError, match="8000-96000"):
        render.synthesize(tune, 100)


def test_wav_round_trip():
    samples = np.sin(np.linspace(0, 100, 8000)).astype(np.float32) * 0.5
    with wave.open(io.BytesIO(render.wav_bytes(samples, 8000))) as w:
        assert (w.getframerate(), w.getnframes(), w.getsampwidth()) == (8000, 8000, 2)
        back = np.frombuffer(w.readframes(8000), "<i2") / 32767
    assert np.abs(back - samples).max() < 1e-4


def test_piano_roll_colours_split_primer_and_continuation(tune, tmp_path):
    import matplotlib.image

    def colours(split):
        path = tmp_path / f"roll_{split}.png"
        render.piano_roll(tune, path, split=split, title="t")
        rgb = (matplotlib.image.imread(path)[..., :3] * 255).round().astype(int)
        return {tuple(p) for p in rgb.reshape(-1, 3)}

    primer = tuple(int(render.PRIMER_COLOUR[i : i + 2], 16) for i in (1, 3, 5))
    new = tuple(int(render.CONTINUATION_COLOUR[i : i + 2], 16) for i in (1, 3, 5))
    only_primer = colours(None)
    assert primer in only_primer and new not in only_primer
    both = colours(1.0)
    assert primer in both and new in both
