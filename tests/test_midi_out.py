"""The fast MIDI writer against pretty_midi's own ``write``: the same bytes."""

from __future__ import annotations

import io
from pathlib import Path

import pretty_midi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import musegen
from musegen.errors import MidiError
from musegen.io.midi_out import pretty_midi_bytes, write_pretty_midi

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "demo" / "examples").glob("*.mid"))


def _reference(pm: pretty_midi.PrettyMIDI) -> bytes:
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


times = st.floats(0.0, 40.0, allow_nan=False)
data = st.integers(0, 127)


@st.composite
def pretty_midis(draw) -> pretty_midi.PrettyMIDI:
    """Any PrettyMIDI pretty_midi writes: tempo changes, time and key signatures, lyrics,
    texts, named and drum instruments with notes (some at one tick, some past the tick map),
    pitch bends and control changes."""
    pm = pretty_midi.PrettyMIDI(
        resolution=draw(st.sampled_from([96, 220, 480])),
        initial_tempo=draw(st.floats(30.0, 300.0)),
    )
    scales = [(0, pm._tick_scales[0][1])]
    for tick in sorted(draw(st.sets(st.integers(1, 20_000), max_size=3))):
        scales.append((tick, 60.0 / (draw(st.floats(30.0, 300.0)) * pm.resolution)))
    pm._tick_scales = scales
    pm._update_tick_to_time(draw(st.integers(0, 30_000)))
    for _ in range(draw(st.integers(0, 3))):
        ts = pretty_midi.TimeSignature(
            draw(st.integers(1, 13)), draw(st.sampled_from([1, 2, 4, 8, 16])), draw(times)
        )
        pm.time_signature_changes.append(ts)
    for _ in range(draw(st.integers(0, 2))):
        pm.key_signature_changes.append(
            pretty_midi.KeySignature(draw(st.integers(0, 23)), draw(times))
        )
    text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=12)
    for _ in range(draw(st.integers(0, 3))):
        pm.lyrics.append(pretty_midi.Lyric(draw(text), draw(times)))
    for _ in range(draw(st.integers(0, 3))):
        pm.text_events.append(pretty_midi.Text(draw(text), draw(times)))
    for _ in range(draw(st.integers(0, 17))):  # more than 15: channels are reused
        inst = pretty_midi.Instrument(draw(data), is_drum=draw(st.booleans()), name=draw(text))
        grid = draw(st.sampled_from([0.25, 0.125, 1 / 3]))  # many events share a tick
        for _ in range(draw(st.integers(0, 30))):
            start = draw(st.integers(0, 160)) * grid + draw(st.sampled_from([0.0, 0.0, 1e-4]))
            end = start + draw(st.integers(0, 8)) * grid
            inst.notes.append(pretty_midi.Note(draw(data), draw(data), start, end))
        for _ in range(draw(st.integers(0, 4))):
            inst.pitch_bends.append(
                pretty_midi.PitchBend(draw(st.integers(-8192, 8191)), draw(times))
            )
        for _ in range(draw(st.integers(0, 4))):
            inst.control_changes.append(
                pretty_midi.ControlChange(draw(data), draw(data), draw(times))
            )
        pm.instruments.append(inst)
    return pm


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pretty_midis())
def test_the_same_bytes_as_pretty_midi_writes(pm):
    assert pretty_midi_bytes(pm) == _reference(pm)


def test_continuations_and_read_files_write_the_same_bytes(tmp_path):
    m = musegen.load("lstm")
    for path in EXAMPLES:
        for pm in (pretty_midi.PrettyMIDI(str(path)), m.continue_midi(path, bars=4, seed=1)):
            assert pretty_midi_bytes(pm) == _reference(pm)
            out = tmp_path / "out.mid"
            write_pretty_midi(pm, out)
            assert out.read_bytes() == _reference(pm)
            buf = io.BytesIO()
            write_pretty_midi(pm, buf)
            assert buf.getvalue() == _reference(pm)


def test_what_midi_cannot_hold_is_refused(tmp_path):
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes.append(pretty_midi.Note(100, 128, 0.0, 1.0))
    pm.instruments.append(inst)
    with pytest.raises(ValueError):
        _reference(pm)
    with pytest.raises(MidiError, match="pitch of 128"):
        pretty_midi_bytes(pm)
    inst.notes[0].pitch = 60
    pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 6, 0.0))
    with pytest.raises(ValueError):
        _reference(pm)
    with pytest.raises(MidiError, match="power of 2"):
        pretty_midi_bytes(pm)
    pm.time_signature_changes.clear()
    inst.notes.append(pretty_midi.Note(100, 60, 1e6, 1e6 + 1))  # 2**28 ticks later
    with pytest.raises(MidiError, match="2\\*\\*28"):
        pretty_midi_bytes(pm)
    inst.notes.pop()
    pm.resolution = 40_000  # mido would refuse; past 32767 the header reads as SMPTE time
    with pytest.raises(MidiError, match="resolution of 40000"):
        pretty_midi_bytes(pm)
    pm.resolution = 220
    with pytest.raises(MidiError, match="cannot write"):
        write_pretty_midi(pm, tmp_path / "missing" / "out.mid")


def test_another_pretty_midi_is_written_by_its_own_writer():
    class Other:  # a PrettyMIDI-like object without the internals the fast writer reads
        def write(self, f):
            f.write(b"MThd...")

    assert pretty_midi_bytes(Other()) == b"MThd..."
