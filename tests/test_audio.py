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


def _continued(tune: pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
    """``tune`` and two new notes after it (from 2.0 s), one ringing over from before."""
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=73)
    inst.notes = [*tune.instruments[0].notes, pretty_midi.Note(90, 64, 1.9, 2.6)]
    inst.notes += [pretty_midi.Note(80, 67, 2.0, 2.4), pretty_midi.Note(80, 71, 2.5, 3.0)]
    pm.instruments.append(inst)
    return pm


def test_rendering_apart_at_a_split_mixes_to_the_whole(tune):
    """The plain synth adds note by note, so the music before and from the split rendered
    apart and mixed is the music rendered whole: the parts are aligned in time and mixed at
    their own levels."""
    pm = _continued(tune)
    whole, _ = audio.synthesize(pm, 16000, backend="plain")
    for split in (2.0, (2.0, 2.45)):
        apart, _ = audio.synthesize(pm, 16000, backend="plain", split=split)
        assert apart.shape == whole.shape
        assert np.abs(apart - whole).max() < 1e-5


def test_a_kept_render_is_reused_for_what_takes_share(tune, monkeypatch):
    """A clip rendered for its preview is not rendered again for its continuations: only
    their new notes are, and the audio is what rendering both parts gives."""
    rendered: list[int] = []
    real = audio._plain

    def counting(pm, rate):
        rendered.append(sum(len(i.notes) for i in pm.instruments))
        return real(pm, rate)

    monkeypatch.setattr(audio, "_plain", counting)
    kept = audio.Renders()
    pm = _continued(tune)
    clip = audio._parts(pm, 2.0)[0]  # what the preview shows: the clip alone
    audio.synthesize(clip, 16000, backend="plain", kept=kept)
    assert rendered == [5]
    first, _ = audio.synthesize(pm, 16000, backend="plain", split=2.0, kept=kept)
    again, _ = audio.synthesize(pm, 16000, backend="plain", split=2.0, kept=kept)
    assert rendered == [5, 2, 2]  # the clip once, the new notes each time
    fresh, _ = audio.synthesize(pm, 16000, backend="plain", split=2.0)
    assert np.array_equal(first, fresh) and np.array_equal(again, fresh)


def test_renders_keep_the_last_used_within_their_bytes():
    kept = audio.Renders(max_bytes=1000)
    waves = {name: np.zeros(100, np.float32) for name in "abc"}  # 400 bytes each
    kept.put(("a",), waves["a"])
    kept.put(("b",), waves["b"])
    assert kept.get(("a",)) is waves["a"]  # a used last: b goes first
    kept.put(("c",), waves["c"])
    assert kept.get(("b",)) is None and kept.get(("a",)) is waves["a"]
    assert not waves["a"].flags.writeable  # shared: nobody may change it
    kept.put(("big",), np.zeros(300, np.float32))  # more than all the room: not kept
    assert kept.get(("big",)) is None and kept.get(("c",)) is waves["c"]


def test_a_split_span_must_be_in_order(tune):
    with pytest.raises(ConfigError, match="end after it starts"):
        audio.synthesize(tune, 16000, backend="plain", split=(2.0, 1.0))


def test_the_audio_and_the_roll_agree_on_which_notes_are_new():
    """Generated notes land a hair before the split (a finer grid): both count them new."""
    from musegen.io.pianoroll import layout

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0)
    starts = [1.0, 2.0 - 5e-5, 2.0, 2.5, 3.0 - 5e-5]
    inst.notes = [pretty_midi.Note(90, 60 + i, t, t + 0.3) for i, t in enumerate(starts)]
    pm.instruments.append(inst)
    for split, new_starts in ((2.0, starts[1:]), ((2.0, 3.0), starts[1:4])):
        _, new = audio._parts(pm, split)
        assert [n.start for n in new.instruments[0].notes] == new_starts
        assert [start for start, *_, is_new in layout(pm, split).notes if is_new] == new_starts


def _rms(x: np.ndarray, start: float, end: float, rate: int = 16000) -> float:
    return float(np.sqrt(np.mean(x[int(start * rate) : int(end * rate)] ** 2)))


@pytest.mark.skipif(
    ctypes.util.find_library("fluidsynth") is None,
    reason="the system libfluidsynth is not installed (Debian: apt install libfluidsynth3)",
)
def test_fluidsynth_apart_sounds_as_whole(tune, fresh_probe):
    """FluidSynth starts notes on 64-sample blocks counted from its own start, so parts
    rendered apart differ sample by sample; their loudness over time is the same."""
    pytest.importorskip("fluidsynth", reason="pyfluidsynth is not installed")
    pm = _continued(tune)
    whole, used = audio.synthesize(pm, 16000, backend="fluidsynth")
    apart, _ = audio.synthesize(pm, 16000, backend="fluidsynth", split=2.0)
    assert used == "fluidsynth" and apart.shape == whole.shape

    def loudness(x):  # RMS over 50 ms windows
        n = len(x) // 800
        return np.sqrt((x[: n * 800].reshape(n, 800) ** 2).mean(1))

    a, w = loudness(apart), loudness(whole)  # each peaks at 0.9: compare at one level
    a *= np.dot(a, w) / np.dot(a, a)
    assert np.abs(a - w).max() < 0.1 * w.max()  # onsets up to 4 ms apart in 50 ms
    assert np.array_equal(apart, audio.synthesize(pm, 16000, backend="fluidsynth", split=2.0)[0])


@pytest.mark.skipif(
    ctypes.util.find_library("fluidsynth") is None,
    reason="the system libfluidsynth is not installed (Debian: apt install libfluidsynth3)",
)
def test_fluidsynth_one_instruments_pedal_does_not_hold_the_next(fresh_probe):
    """Instruments render one after another on one synthesizer, reset between them."""
    pytest.importorskip("fluidsynth", reason="pyfluidsynth is not installed")
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(100, 48, 0.0, 0.2)]
    piano.control_changes = [pretty_midi.ControlChange(64, 127, 0.1)]  # down, never up
    flute = pretty_midi.Instrument(program=73)
    flute.notes = [pretty_midi.Note(100, 72, 1.0, 1.2)]
    both, alone = pretty_midi.PrettyMIDI(), pretty_midi.PrettyMIDI()
    both.instruments += [piano, flute]
    alone.instruments.append(piano)
    # the piano renders first on a new synthesizer either way: its samples are the same
    flute_wave = audio._fluidsynth(both, 16000)
    piano_wave = audio._fluidsynth(alone, 16000)
    flute_wave[: len(piano_wave)] -= piano_wave
    # its note ends at 1.2 s and its wave at 2.2 (pretty_midi: one second after the last
    # event): held by the pedal it would sound there at 60-80% of its level, not 1-2%
    assert _rms(flute_wave, 1.8, 2.2) < 0.05 * _rms(flute_wave, 1.0, 1.2)


@pytest.mark.skipif(
    ctypes.util.find_library("fluidsynth") is None,
    reason="the system libfluidsynth is not installed (Debian: apt install libfluidsynth3)",
)
def test_fluidsynth_new_notes_keep_the_pedal_held_before_the_split(fresh_probe):
    pytest.importorskip("fluidsynth", reason="pyfluidsynth is not installed")
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(100, 60, 0.0, 0.2), pretty_midi.Note(100, 64, 1.0, 1.1)]
    piano.control_changes = [pretty_midi.ControlChange(64, 127, 0.5)]  # held to the end
    pm.instruments.append(piano)
    whole, _ = audio.synthesize(pm, 16000, backend="fluidsynth")
    apart, _ = audio.synthesize(pm, 16000, backend="fluidsynth", split=1.0)
    # the new note, released at 1.1 s, rings on under the pedal in both
    assert _rms(apart, 1.5, 1.9) > 0.3 * _rms(whole, 1.5, 1.9) > 0


def test_new_notes_render_with_the_changes_in_force_where_they_start():
    """Every change before the split is replayed, in order, just before it (an RPN's data
    entry must follow its parameter number); every change from there on is in the new part,
    for its notes that ring past the end of a span; the kept part has all of them."""
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0)
    inst.notes = [pretty_midi.Note(90, 60, 0.0, 1.0), pretty_midi.Note(90, 62, 2.0, 3.0)]
    inst.control_changes = [
        pretty_midi.ControlChange(n, v, t)
        for n, v, t in [(101, 0, 0.1), (100, 0, 0.1), (6, 12, 0.1), (64, 127, 0.5), (101, 127, 0.6)]
    ]
    inst.control_changes += [
        pretty_midi.ControlChange(7, 40, 1.5),
        pretty_midi.ControlChange(64, 0, 2.5),
    ]
    inst.pitch_bends = [pretty_midi.PitchBend(300, 0.2), pretty_midi.PitchBend(-100, 1.0)]
    inst.pitch_bends.append(pretty_midi.PitchBend(50, 2.2))
    pm.instruments.append(inst)
    lead = 2.0 - 2 * audio.SPLIT_TOLERANCE
    for split in (2.0, (2.0, 2.1)):
        old, new = audio._parts(pm, split)
        assert [n.pitch for n in old.instruments[0].notes] == [60]
        assert old.instruments[0].control_changes == inst.control_changes
        (part,) = new.instruments
        assert [n.pitch for n in part.notes] == [62]
        assert [(c.number, c.value, c.time) for c in part.control_changes] == [
            (101, 0, lead),
            (100, 0, lead),
            (6, 12, lead),
            (64, 127, lead),
            (101, 127, lead),
            (7, 40, lead),
            (64, 0, 2.5),
        ]
        assert [(b.pitch, b.time) for b in part.pitch_bends] == [(-100, lead), (50, 2.2)]
