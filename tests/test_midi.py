"""musegen.midi: reading every kind of source, the limits, hostile input, writing back."""

from __future__ import annotations

import io
import random
from collections import Counter
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
from conftest import note, real_midi_files, smf, tempo, time_signature, vlq
from hypothesis import given, settings
from hypothesis import strategies as st

from musegen import midi
from musegen.errors import ConfigError, MidiError, MuseGenError
from musegen.midi import Limits, Note, Score, Track, list_tracks, read_score

# Real files that musegen refuses, and why (every other real file must read).
REFUSED = {"symusic_Issue104_Bizarre_Love_Triangle2.mid": "corrupt MIDI file"}
# Real files that read fine but hold no notes.
NO_NOTES = {"miditok_empty.mid"}
# pretty_midi reads these differently from musegen: it closes every open note of a pitch at
# a note-off and drops zero-length notes (other durations), and it ignores tempo events
# outside the first track (test04.mid). Reading them through a PrettyMIDI gives what
# pretty_midi saw.
PRETTY_MIDI_READS_DIFFERENTLY = {
    "test04.mid",
    "test09.mid",
    "test16.mid",
    "miditok_Mr_Blue_Sky.mid",
    "miditok_POP909_010.mid",
    "miditok_POP909_191.mid",
    "symusic_RunTimeError_unexpected_EOF.mid",
}
READABLE = [f for f in real_midi_files() if f.name not in REFUSED]


def ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def check_invariants(s: Score) -> None:
    assert s.ticks_per_quarter == 24
    assert s.notes == sorted(s.notes)
    for n in s.notes:
        assert n.start >= 0 and n.duration >= 1 and 0 <= n.pitch <= 127
        assert 1 <= n.velocity <= 127 and 0 <= n.track < len(s.tracks)
    assert s.time_signatures[0][0] == 0 and s.tempos[0][0] == 0
    assert [t for t, *_ in s.time_signatures] == sorted({t for t, *_ in s.time_signatures})
    assert [t for t, _ in s.tempos] == sorted({t for t, _ in s.tempos})
    assert all(10 <= q <= 1000 for _, q in s.tempos)
    assert not any(t.is_drum for t in s.tracks)  # track=None leaves drums out


def comparable(s: Score) -> Score:
    """The score with non-ASCII names blanked: undecodable names differ between parsers."""
    tracks = [Track(t.program, t.is_drum, t.name if t.name.isascii() else "") for t in s.tracks]
    return Score(s.ticks_per_quarter, s.notes, tracks, s.time_signatures, s.tempos)


def canonical_notes(s: Score) -> Counter:
    return Counter(
        (n.start, n.pitch, n.duration, n.velocity, s.tracks[n.track].program) for n in s.notes
    )


# -- real files ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", real_midi_files(), ids=ids(real_midi_files()))
def test_real_file_reads_or_refuses_clearly(path: Path) -> None:
    if path.name in REFUSED:
        with pytest.raises(MidiError, match=REFUSED[path.name]) as e:
            read_score(path)
        assert "re-download or re-export" in str(e.value)
        return
    s = read_score(path)
    check_invariants(s)
    assert (len(s.notes) == 0) == (path.name in NO_NOTES)


def test_most_real_files_read(real_midis: list[Path]) -> None:
    assert len(READABLE) >= 0.9 * len(real_midis)


@pytest.mark.skipif(not midi.using_symusic(), reason="symusic not installed")
@pytest.mark.parametrize("path", READABLE, ids=ids(READABLE))
def test_reference_parser_agrees_with_symusic(path: Path, monkeypatch) -> None:
    monkeypatch.setattr(midi, "SMALL_FILE", 0)  # symusic for every file
    fast = read_score(path)
    monkeypatch.setattr(midi, "_symusic", None)
    slow = read_score(path)
    assert comparable(slow) == comparable(fast)


@pytest.mark.filterwarnings("ignore:Tempo, Key or Time signature:RuntimeWarning")
def test_sources_give_the_same_score(real_midis: list[Path]) -> None:
    for path in READABLE:
        want = read_score(path)
        data = path.read_bytes()
        assert read_score(data) == want
        assert read_score(str(path)) == want
        assert read_score(bytearray(data)) == want
        assert read_score(io.BytesIO(data)) == want
        got = read_score(mido.MidiFile(file=io.BytesIO(data), clip=True))
        assert comparable(got) == comparable(want), path.name
        if path.name in NO_NOTES | PRETTY_MIDI_READS_DIFFERENTLY:
            continue
        if path.name == "miditok_ValueError_Control168.mid":
            continue  # pretty_midi cannot read the data byte 168 (mido raises)
        got = read_score(pretty_midi.PrettyMIDI(io.BytesIO(data)))
        assert canonical_notes(got) == canonical_notes(want), path.name
        assert got.time_signatures == want.time_signatures, path.name
        assert [t for t, _ in got.tempos] == [t for t, _ in want.tempos], path.name
        assert np.allclose([q for _, q in got.tempos], [q for _, q in want.tempos], rtol=1e-6)


def test_control_value_168_is_clipped_not_fatal() -> None:
    path = Path(__file__).parent / "data" / "thirdparty" / "miditok_ValueError_Control168.mid"
    with pytest.raises(OSError):  # what the other libraries do with it
        mido.MidiFile(path)
    s = read_score(path)
    assert len(s.notes) > 4000


def test_wrong_header_track_counts() -> None:
    two = smf([note(0, 60, 480), note(0, 64, 480)], ntracks=1)  # says 1, holds 2
    assert [n.pitch for n in read_score(two).notes] == [60, 64]
    three = smf([note(0, 60, 480)], ntracks=3)  # says 3, holds 1
    assert [n.pitch for n in read_score(three).notes] == [60]
    # music21's test04.mid announces 18 tracks and holds 19 chunks
    test04 = next(p for p in real_midi_files() if p.name == "test04.mid")
    assert test04.read_bytes().count(b"MTrk") == 19
    assert len(read_score(test04).tracks) == 21


# -- tracks and channels -------------------------------------------------------------------


def test_type0_channels_become_tracks_and_drums_are_flagged() -> None:
    data = smf(
        [
            b"\x00\xc0\x18"  # program 24 on channel 0
            + b"\x00\xc9\x00"  # program 0 on channel 9 (drums)
            + note(0, 60, 480, channel=0)
            + note(0, 36, 240, channel=9)
            + note(0, 64, 480, channel=1)
        ],
        fmt=0,
    )
    info = list_tracks(data)
    assert [(t.index, t.program, t.is_drum, t.notes) for t in info] == [
        (0, 24, False, 1),
        (1, 0, False, 1),
        (2, 0, True, 1),
    ]
    s = read_score(data)
    assert [n.pitch for n in s.notes] == [60, 64]  # drums left out
    assert [s.tracks[n.track].program for n in s.notes] == [24, 0]
    drums = read_score(data, track=2)
    assert drums.tracks == [Track(0, True, "")]
    assert [(n.start, n.pitch, n.duration) for n in drums.notes] == [(24, 36, 12)]
    with pytest.raises(MidiError, match="track 3 does not exist.*3 tracks"):
        read_score(data, track=3)
    with pytest.raises(ConfigError):
        read_score(data, track="0")


def test_program_change_mid_track_splits_the_track() -> None:
    data = smf([note(0, 60, 10) + b"\x00\xc0\x28" + note(0, 62, 10)])
    assert [t.program for t in list_tracks(data)] == [0, 40]


def test_track_names(tmp_path: Path) -> None:
    name = "Flûte 音轨".encode()
    data = smf([vlq(0) + b"\xff\x03" + vlq(len(name) + 2) + name + b"  " + note(0, 60, 480)])
    assert list_tracks(data)[0].name == "Flûte 音轨"
    assert read_score(mido.MidiFile(file=io.BytesIO(data))).tracks[0].name == "Flûte 音轨"


# -- event corners -------------------------------------------------------------------------


def test_running_status_velocity_zero_and_overlaps_fifo() -> None:
    events = (
        b"\x00\x90\x3c\x64"  # note on 60
        + b"\x00\x3c\x50"  # running status: note on 60 again (overlap)
        + b"\x83\x60\x3c\x00"  # 480 ticks later: off (closes the first)
        + b"\x83\x60\x80\x3c\x00"  # 480 later: note-off message closes the second
        + b"\x00\x90\x40\x64\x00\x40\x00"  # zero-length note 64
    )
    s = read_score(smf([events]))
    assert [(n.start, n.pitch, n.duration, n.velocity) for n in s.notes] == [
        (0, 60, 24, 100),
        (0, 60, 48, 80),
        (48, 64, 1, 100),
    ]


def test_unclosed_notes_pitch_bends_sysex_and_controls_are_ignored() -> None:
    events = (
        b"\x00\xf0\x05\x7e\x7f\x09\x01\xf7"  # sysex
        + b"\x00\xe0\x00\x40" * 50  # pitch bends
        + b"\x00\xb0\x07\x64"  # volume
        + note(0, 67, 240)
        + b"\x00\x90\x30\x40"  # never closed
    )
    s = read_score(smf([events]))
    assert [(n.start, n.pitch, n.duration) for n in s.notes] == [(0, 67, 12)]


def test_defaults_without_tempo_or_time_signature() -> None:
    s = read_score(smf([note(0, 60, 480)]))
    assert s.tempos == [(0, 120.0)] and s.time_signatures == [(0, 4, 4)]


def test_tempo_and_time_signature_maps_are_quantized() -> None:
    meta = tempo(0, 90) + time_signature(0, 3, 4) + time_signature(1440, 6, 8) + tempo(0, 60)
    s = read_score(smf([meta, note(0, 60, 480) + note(1440, 62, 240)]))
    assert s.time_signatures == [(0, 3, 4), (72, 6, 8)]
    assert [t for t, _ in s.tempos] == [0, 72]
    assert [q for _, q in s.tempos] == pytest.approx([90.0, 60.0])
    assert s.notes == [Note(0, 60, 24, 100, 0), Note(96, 62, 12, 100, 0)]


def test_quantization_rounds_to_the_grid() -> None:
    # 480 tpq -> 24: 10 source ticks = half a grid tick rounds up; 9 rounds down
    s = read_score(smf([note(9, 60, 10) + note(1, 62, 1)]))
    assert [(n.start, n.duration) for n in s.notes] == [(0, 1), (1, 1)]
    s48 = read_score(smf([note(0, 60, 480)]), ticks_per_quarter=48)
    assert s48.ticks_per_quarter == 48 and s48.notes[0].duration == 48


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"MThd", "truncated inside its header"),
        (b"hello, this is not a MIDI file at all", "not a Standard MIDI File"),
        (b"RIFF\x00\x00\x00\x00RMIDjunk", "RIFF"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\xe7\x28", "SMPTE"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x00\x00", "0 ticks per quarter"),
        (b"MThd\x00\x00\x00\x06\x00\x07\x00\x01\x01\xe0", "unknown MIDI file format 7"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0", "no tracks"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x01\x00\x00", "truncated"),
        (smf([b"\x00\x3c\x40"]), "data byte where an event should start"),
        (smf([b"\x00\x90\x3c"], end_of_track=False), "ends in the middle of an event"),
        (smf([b"\x00\xff\x51\x09\x07"], end_of_track=False), "ends in the middle"),
        (smf([b"\x00\xf0\x7f\x01"], end_of_track=False), "ends in the middle"),
    ],
)
def test_bad_bytes_raise_midi_error(data: bytes, message: str) -> None:
    with pytest.raises(MidiError, match=message):
        read_score(data)


def test_bad_sources_raise_midi_error(tmp_path: Path) -> None:
    with pytest.raises(MidiError, match="not found"):
        read_score(tmp_path / "missing.mid")
    with pytest.raises(MidiError, match="directory"):
        read_score(tmp_path)
    with pytest.raises(MidiError, match="type int"):
        read_score(42)
    with pytest.raises(MidiError, match="binary mode"):
        read_score(io.StringIO("MThd"))


def test_too_large_file_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.mid"
    with open(big, "wb") as f:
        f.truncate(9 * 1024 * 1024)  # sparse: nothing is written or read
    with pytest.raises(MidiError, match="9.4 MB, more than the 8.4 MB"):
        read_score(big)
    with pytest.raises(MidiError, match="more than"):
        read_score(smf([note(0, 60, 1)]), limits=Limits(max_file_bytes=20))


def test_note_and_length_limits(monkeypatch) -> None:
    many = smf([b"".join(note(0, 60, 1) for _ in range(50))])
    with pytest.raises(MidiError, match="more than 10 notes"):
        read_score(many, limits=Limits(max_notes=10))
    monkeypatch.setattr(midi, "_symusic", None)  # the reference parser stops early too
    with pytest.raises(MidiError, match="more than 10 notes"):
        read_score(many, limits=Limits(max_notes=10))


@pytest.mark.parametrize("python_parser", [False, True])
def test_absurd_delta_times_are_refused(python_parser: bool, monkeypatch) -> None:
    if python_parser:
        monkeypatch.setattr(midi, "_symusic", None)
    far = smf([note(0x0FFFFFFF, 60, 10)])  # 559,240 quarter notes in
    with pytest.raises(MidiError, match="quarter notes long"):
        read_score(far)
    # nine maximal deltas overflow a 32-bit tick counter
    wrap = smf([b"\x8f\xff\xff\x7f\xff\x01\x00" * 9 + note(0, 60, 10)])
    with pytest.raises(MidiError, match="absurd delta times|quarter notes long"):
        read_score(wrap)
    slow = smf([tempo(0, 10) + note(0, 60, 480 * 700)])  # 700 quarters at 10 qpm = 70 min
    with pytest.raises(MidiError, match="lasts 4,200 s"):
        read_score(slow)


def test_truncations_and_mutations_never_escape_as_raw_exceptions() -> None:
    rng = random.Random(0)
    data = next(p for p in real_midi_files() if p.name == "test09.mid").read_bytes()
    for cut in range(0, len(data), 97):
        try:
            read_score(data[:cut])
        except MidiError:
            pass
    for _ in range(300):
        d = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            d[rng.randrange(14, len(d))] = rng.randrange(256)
        try:
            read_score(bytes(d))
        except MidiError:
            pass


def test_midi_error_is_a_musegen_error() -> None:
    assert issubclass(MidiError, MuseGenError)


# -- writing and time ----------------------------------------------------------------------


def test_ticks_to_seconds() -> None:
    s = Score(tempos=[(0, 120.0), (96, 60.0)])
    assert s.ticks_to_seconds(48) == pytest.approx(1.0)
    assert s.ticks_to_seconds(96) == pytest.approx(2.0)
    assert list(s.ticks_to_seconds([0, 120, 144])) == pytest.approx([0.0, 3.0, 4.0])
    assert midi.ticks_to_seconds(24, [], 24) == pytest.approx(0.5)


def test_score_to_pretty_midi_keeps_everything(tmp_path: Path) -> None:
    s = Score(
        notes=[Note(0, 60, 24, 80, 0), Note(24, 36, 12, 100, 1), Note(96, 64, 48, 90, 0)],
        tracks=[Track(73, False, "flute"), Track(0, True, "drums")],
        time_signatures=[(0, 3, 4), (72, 6, 8)],
        tempos=[(0, 90.0), (72, 60.0)],
    )
    pm = midi.score_to_pretty_midi(s)
    assert [(i.program, i.is_drum, i.name) for i in pm.instruments] == [
        (73, False, "flute"),
        (0, True, "drums"),
    ]
    assert pm.instruments[0].notes[1].start == pytest.approx(s.ticks_to_seconds(96))
    assert [(t.numerator, t.denominator) for t in pm.time_signature_changes] == [(3, 4), (6, 8)]
    times, qpm = pm.get_tempo_changes()
    assert list(qpm) == pytest.approx([90.0, 60.0])
    path = tmp_path / "out.mid"
    midi.write_midi(s, path)
    back = read_score(path, track=None)  # drums are left out with track=None
    assert back.notes == [Note(0, 60, 24, 80, 0), Note(96, 64, 48, 90, 0)]
    assert back.time_signatures == s.time_signatures
    assert [(t, round(q, 3)) for t, q in back.tempos] == s.tempos
    assert read_score(pm, track=1).notes == [Note(24, 36, 12, 100, 0)]
    assert read_score(midi.midi_bytes(s), track=0).tracks == [Track(73, False, "flute")]


@pytest.mark.parametrize("path", READABLE[::3], ids=ids(READABLE[::3]))
def test_write_then_read_is_identity_on_real_files(path: Path) -> None:
    s = read_score(path)
    back = read_score(midi.midi_bytes(s))
    assert back.notes == s.notes
    assert back.time_signatures == s.time_signatures
    assert [t for t, _ in back.tempos] == [t for t, _ in s.tempos]
    assert np.allclose([q for _, q in back.tempos], [q for _, q in s.tempos], rtol=1e-5)


def test_write_midi_to_a_bad_place(tmp_path: Path) -> None:
    with pytest.raises(MidiError, match="cannot write"):
        midi.write_midi(Score(), tmp_path / "missing_dir" / "x.mid")


@st.composite
def writable_scores(draw: st.DrawFn) -> Score:
    """Scores MIDI can carry exactly: no overlapping notes of one pitch in one track."""
    tracks = [
        Track(draw(st.integers(0, 127)), False, f"t{i}") for i in range(draw(st.integers(1, 3)))
    ]
    notes = []
    for k in range(len(tracks)):
        for pitch in draw(st.sets(st.integers(0, 127), min_size=1, max_size=4)):
            t = draw(st.integers(0, 50))
            for _ in range(draw(st.integers(1, 5))):
                d = draw(st.integers(1, 200))
                notes.append(Note(t, pitch, d, draw(st.integers(1, 127)), k))
                t += d + draw(st.integers(0, 30))
    ts = [(0, 4, 4)] + [(t, 3, 8) for t in sorted(draw(st.sets(st.integers(1, 500), max_size=2)))]
    ticks = [0, *sorted(draw(st.sets(st.integers(1, 500), max_size=3)))]
    qpms = draw(
        st.lists(st.integers(30, 300), min_size=len(ticks), max_size=len(ticks), unique=True)
    )
    tempos = [(t, float(q)) for t, q in zip(ticks, qpms, strict=True)]
    for i in range(1, len(ts)):  # alternate metres so that none repeats the one before
        ts[i] = (ts[i][0], *((3, 8) if i % 2 else (4, 4)))
    return Score(notes=sorted(notes), tracks=tracks, time_signatures=ts, tempos=tempos)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(score=writable_scores())
def test_write_then_read_is_identity_on_generated_scores(score: Score) -> None:
    back = read_score(midi.midi_bytes(score))
    assert back.notes == score.notes
    assert back.tracks == score.tracks
    assert back.time_signatures == score.time_signatures
    assert [t for t, _ in back.tempos] == [t for t, _ in score.tempos]
    assert [q for _, q in back.tempos] == pytest.approx([q for _, q in score.tempos], rel=1e-4)


def test_rescale_matches_reading_at_the_coarser_grid(real_midis):
    """The quantizer reads at 960 per quarter and rescales to the model's 24: the same notes
    as reading at 24 directly, within one tick of double rounding."""
    from musegen.midi import rescale

    checked = 0
    for f in real_midis:
        try:
            fine = read_score(f, ticks_per_quarter=960)
        except MidiError:
            continue
        direct, rescaled = read_score(f, ticks_per_quarter=24), rescale(fine, 24)
        key = lambda n: (n.pitch, n.track, n.velocity, n.start)  # noqa: E731
        for a, b in zip(
            sorted(direct.notes, key=key), sorted(rescaled.notes, key=key), strict=True
        ):
            assert (a.pitch, a.track) == (b.pitch, b.track)
            assert abs(a.start - b.start) <= 1 and abs(a.duration - b.duration) <= 1
        assert [n for _, n, _ in direct.time_signatures] == [
            n for _, n, _ in rescaled.time_signatures
        ]
        checked += 1
    assert checked >= 20


@pytest.mark.skipif(not midi.using_symusic(), reason="symusic not installed")
def test_symusic_is_imported_only_for_a_large_file(tmp_path: Path) -> None:
    """A fresh process reading a short clip never pays for importing symusic; a file over
    SMALL_FILE bytes brings it in, and from then on it reads every file."""
    import subprocess
    import sys

    small = tmp_path / "small.mid"
    small.write_bytes(smf([note(0, 60, 96) + note(96, 62, 96)]))
    big = tmp_path / "big.mid"
    big.write_bytes(smf([b"".join(note(24, 60 + i % 12, 24) for i in range(3000))]))
    assert small.stat().st_size < midi.SMALL_FILE < big.stat().st_size
    code = (
        "import sys; from musegen import midi; "
        f"midi.read_score({str(small)!r}); print('symusic' in sys.modules); "
        f"midi.read_score({str(big)!r}); print('symusic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
