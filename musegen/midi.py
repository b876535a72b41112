"""Read any MIDI source into a `Score` on a beat grid, and write a `Score` back.

A *source* is a path (``str`` / ``pathlib.Path``), raw ``bytes``, a binary file object, a
``pretty_midi.PrettyMIDI`` or a ``mido.MidiFile``.

Reading happens in three steps:

1. **Chunk scan** (pure Python, cheap): check the header, find the track chunks, apply the
   size/track limits, repair a wrong header track count and drop unknown chunks. Anything that is
   not a Standard MIDI File fails here with a `MidiError` that says why.
2. **Event parsing**: with `symusic` (C++, ~100x faster than mido) when it is installed, else
   with the pure-Python reference parser in this module. When symusic rejects a file (for
   instance a data byte of 168 where MIDI allows 0..127), the reference parser reads it again and
   clips such bytes to 127, as ``mido.MidiFile(clip=True)`` does. Both parsers follow the same
   rules, tested to agree on real files:

   * a *track* is one (MIDI track chunk, channel, program) with at least one note, in file order
     (chunk order, then channel, then program); channel 10 (index 9) is drums. In a type-0 file
     each channel therefore becomes its own track;
   * a note-off closes the oldest open note of the same channel and pitch in the same chunk
     (first in, first out), a note-on with velocity 0 is a note-off, zero-length notes are kept
     (they get the minimum duration of one grid tick), notes never closed are dropped;
   * pitch bends, controllers, sysex, key signatures, lyrics and markers are ignored.

3. **Quantization** onto the beat grid (``ticks_per_quarter`` ticks per quarter note): onsets
   and durations are rounded to the nearest tick (halves round up), durations are at least 1.

Limits (`Limits`) are checked before anything big is allocated: file size before reading,
track count at the chunk scan, note count before notes are copied out of the parser, length in
quarter notes and in seconds before quantizing.
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Union

import numpy as np

from musegen.errors import ConfigError, MidiError

if TYPE_CHECKING:  # pragma: no cover
    import mido
    import pretty_midi

# The fast parser, symusic: optional, everything works without it (slower). It is imported on
# first need, because importing it costs ~95 ms (measured on the 2-core EPYC) while the
# reference parser reads a file of SMALL_FILE bytes in ~15 ms: a fresh `musegen generate` on a
# short clip does not wait for it. Once imported, it reads every file. None: not installed.
_UNLOADED: Any = object()
_symusic: Any = _UNLOADED
SMALL_FILE = 16_384  # bytes; larger files are worth importing symusic for

DEFAULT_TICKS_PER_QUARTER = 24
DEFAULT_VELOCITY = 90
DEFAULT_TIME_SIGNATURE = (4, 4)
DEFAULT_QPM = 120.0
MIN_QPM, MAX_QPM = 10.0, 1000.0  # tempo events outside are clipped into this range

Source = Union[
    str,
    os.PathLike,
    bytes,
    bytearray,
    memoryview,
    BinaryIO,
    "pretty_midi.PrettyMIDI",
    "mido.MidiFile",
]

__all__ = [
    "DEFAULT_TICKS_PER_QUARTER",
    "DEFAULT_VELOCITY",
    "Limits",
    "DEFAULT_LIMITS",
    "Note",
    "Track",
    "Score",
    "TrackInfo",
    "ScoreArrays",
    "read_score",
    "read_arrays",
    "list_tracks",
    "score_arrays",
    "arrays_to_score",
    "score_to_pretty_midi",
    "write_midi",
    "ticks_to_seconds",
    "midi_bytes",
    "rescale",
    "using_symusic",
]


# --------------------------------------------------------------------------------------------
# Contract dataclasses


@dataclass(frozen=True, order=True)
class Note:
    """One note on the grid. Times are in grid ticks (``Score.ticks_per_quarter`` per beat)."""

    start: int  # onset, grid ticks from the start of the piece, >= 0
    pitch: int  # 0..127
    duration: int  # grid ticks, >= 1
    velocity: int = 90  # 1..127
    track: int = 0  # index into Score.tracks

    @property
    def end(self) -> int:
        return self.start + self.duration


@dataclass(frozen=True)
class Track:
    program: int = 0  # General MIDI program 0..127
    is_drum: bool = False
    name: str = ""


@dataclass
class Score:
    """A piece on a beat grid: notes sorted by (start, pitch), time signatures and tempi."""

    ticks_per_quarter: int = DEFAULT_TICKS_PER_QUARTER
    notes: list[Note] = field(default_factory=list)
    tracks: list[Track] = field(default_factory=lambda: [Track()])
    # (tick, numerator, denominator), sorted, the first at tick 0
    time_signatures: list[tuple[int, int, int]] = field(default_factory=lambda: [(0, 4, 4)])
    # (tick, quarter notes per minute), sorted, the first at tick 0
    tempos: list[tuple[int, float]] = field(default_factory=lambda: [(0, 120.0)])

    @property
    def end(self) -> int:
        """Tick where the last note ends (0 for an empty score)."""
        return max((n.start + n.duration for n in self.notes), default=0)

    def ticks_to_seconds(self, ticks: int | float | Sequence[int] | np.ndarray) -> Any:
        """Grid ticks -> seconds under this score's tempo map (scalar in, float out)."""
        return ticks_to_seconds(ticks, self.tempos, self.ticks_per_quarter)


@dataclass(frozen=True)
class TrackInfo:
    """What a user needs to pick a track: ``read_score(src, track=info.index)``."""

    index: int
    name: str
    program: int
    is_drum: bool
    notes: int


@dataclass(frozen=True)
class Limits:
    """Guards against hostile or accidental huge inputs; all checked before big allocations."""

    max_file_bytes: int = 8 * 1024 * 1024
    max_tracks: int = 1024  # MIDI track chunks
    max_notes: int = 100_000  # notes in the whole file
    max_quarters: int = 16_384  # length in quarter notes (a 4/4 piece of 4,096 bars)
    max_seconds: float = 3600.0  # length in seconds under the file's tempo map


DEFAULT_LIMITS = Limits()


def _fast_parser() -> Any:
    """The symusic module (imported now if it was not yet), or None without it."""
    global _symusic
    if _symusic is _UNLOADED:
        try:
            import symusic
        except ImportError:  # pragma: no cover - depends on the environment
            symusic = None
        _symusic = symusic
    return _symusic


def using_symusic() -> bool:
    """Whether the fast symusic parser is available."""
    return _fast_parser() is not None


# --------------------------------------------------------------------------------------------
# Raw parse result (source ticks), shared by both parsers


@dataclass
class _RawTrack:
    name: str
    program: int
    is_drum: bool
    start: np.ndarray  # int64, source ticks
    duration: np.ndarray  # int64, source ticks, >= 0
    pitch: np.ndarray  # int64
    velocity: np.ndarray  # int64


@dataclass
class _Raw:
    tpq: int
    tracks: list[_RawTrack]
    time_signatures: list[tuple[int, int, int]]  # (tick, numerator, denominator), file order
    tempos: list[tuple[int, int]]  # (tick, microseconds per quarter), file order


# --------------------------------------------------------------------------------------------
# Step 1: bytes in, chunk scan


def _read_source_bytes(source: Any, limits: Limits) -> bytes:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise MidiError(f"MIDI file not found: {str(path)!r}; check the path") from None
        except OSError as e:
            raise MidiError(f"cannot read {str(path)!r}: {e.strerror or e}") from None
        if path.is_dir():
            raise MidiError(f"{str(path)!r} is a directory; give a .mid file")
        _check_size(size, limits, str(path))
        try:
            with open(path, "rb") as f:
                data = f.read(limits.max_file_bytes + 1)
        except OSError as e:
            raise MidiError(f"cannot read {str(path)!r}: {e.strerror or e}") from None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source) if not isinstance(source, bytes) else source
    elif hasattr(source, "read"):
        try:
            data = source.read(limits.max_file_bytes + 1)
        except Exception as e:  # any file-like object
            raise MidiError(f"cannot read the MIDI stream: {e}") from None
        if not isinstance(data, (bytes, bytearray)):
            raise MidiError("the file object must be opened in binary mode ('rb')")
        data = bytes(data)
    else:
        raise MidiError(
            f"cannot read a MIDI source of type {type(source).__name__}: give a path, bytes, "
            "a binary file object, a pretty_midi.PrettyMIDI or a mido.MidiFile"
        )
    _check_size(len(data), limits, "the MIDI data")
    return data


def _check_size(size: int, limits: Limits, what: str) -> None:
    if size == 0:
        raise MidiError(f"{what} is empty (0 bytes); give a Standard MIDI File (.mid)")
    if size > limits.max_file_bytes:
        raise MidiError(
            f"{what} is {size / 1e6:.1f} MB, more than the {limits.max_file_bytes / 1e6:.1f} MB "
            "musegen reads; trim it to the part you want to continue"
        )


def _count(n: int, noun: str) -> str:
    """ "1 track", "3 tracks"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _clean_name(name: str) -> str:
    """Track names: runs of undecodable bytes become one U+FFFD, outer blanks/NULs go."""
    return re.sub("\ufffd+", "\ufffd", name).strip(" \t\r\n\x00")


def _latin1_to_utf8(name: str) -> str:
    """mido (and so pretty_midi) decodes names as latin-1; recover UTF-8 names like symusic."""
    try:
        return name.encode("latin-1").decode("utf-8")
    except UnicodeError:  # not mojibake: a real latin-1 name, or one set in Python
        return name


def _utf8_as_latin1(name: str) -> str:
    """The inverse of `_latin1_to_utf8`: mido writes names as latin-1, so this writes UTF-8."""
    return name.encode("utf-8").decode("latin-1")


def _is_chunk_tag(tag: bytes) -> bool:
    return len(tag) == 4 and all(0x20 <= b < 0x7F for b in tag)


@dataclass
class _Chunks:
    format: int
    tpq: int
    tracks: list[memoryview]  # MTrk payloads, in file order


def _scan_chunks(data: bytes, limits: Limits) -> _Chunks:
    if data[:4] == b"RIFF" and data[8:12] == b"RMID":  # RIFF-wrapped MIDI (.rmi)
        pos = 12
        while pos + 8 <= len(data):
            tag, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
            if tag == b"data":
                data = data[pos + 8 : pos + 8 + size]
                break
            pos += 8 + size + (size & 1)
        else:
            raise MidiError("RIFF MIDI (.rmi) file without a 'data' chunk; export it as .mid")
    if len(data) < 14 or data[:4] != b"MThd":
        if data[:4] == b"MThd":
            raise MidiError("the MIDI file is truncated inside its header; re-export it")
        raise MidiError(
            "not a Standard MIDI File (it does not start with 'MThd'); give a .mid file "
            "exported from a DAW or notation program"
        )
    header_len = struct.unpack(">I", data[4:8])[0]
    if header_len < 6 or 8 + header_len > len(data):
        raise MidiError(f"corrupt MIDI header (length {header_len}); re-export the file")
    fmt, declared, division = struct.unpack(">HHH", data[8:14])
    if fmt > 2:
        raise MidiError(f"unknown MIDI file format {fmt} (only 0, 1 and 2 exist); re-export it")
    if division & 0x8000:
        raise MidiError(
            "the file counts time in SMPTE frames, not beats; musegen needs a beat-based MIDI "
            "file: re-export it from your DAW with 'ticks per quarter note' timing"
        )
    if division == 0:
        raise MidiError("corrupt MIDI header: 0 ticks per quarter note; re-export the file")
    pos = 8 + header_len
    tracks: list[memoryview] = []
    view = memoryview(data)
    while pos + 8 <= len(data):
        tag = data[pos : pos + 4]
        length = struct.unpack(">I", data[pos + 4 : pos + 8])[0]
        remaining = len(data) - pos - 8
        if tag == b"MTrk":
            if length > remaining:
                raise MidiError(
                    f"the MIDI file is truncated: track {len(tracks) + 1} should be {length} "
                    f"bytes but only {remaining} remain; re-download or re-export it"
                )
            tracks.append(view[pos + 8 : pos + 8 + length])
            if len(tracks) > limits.max_tracks:
                raise MidiError(
                    f"the MIDI file has more than {limits.max_tracks} tracks; musegen reads at "
                    "most that many: merge or delete tracks first"
                )
        elif not _is_chunk_tag(tag) or length > remaining:
            if len(tracks) >= declared:
                break  # trailing junk after all the announced tracks: ignore it
            raise MidiError(
                f"corrupt MIDI file: expected track {len(tracks) + 1} of {declared} at byte "
                f"{pos}, found garbage; the file is damaged, re-download or re-export it"
            )
        pos += 8 + length
    if not tracks:
        raise MidiError("the MIDI file has no tracks (no 'MTrk' chunk); re-export it")
    return _Chunks(format=fmt, tpq=division, tracks=tracks)


# --------------------------------------------------------------------------------------------
# Step 2a: the fast parser (symusic)


def _parse_symusic(chunks: _Chunks, limits: Limits) -> _Raw:
    """Parse with symusic; raises `_ParserRejected` if symusic refuses the file."""
    # A clean copy: right track count in the header, only MTrk chunks, zero padding at the end
    # so that no read can run past the buffer even on a hostile last event.
    parts = [b"MThd", struct.pack(">IHHH", 6, chunks.format, len(chunks.tracks), chunks.tpq)]
    for t in chunks.tracks:
        parts.append(b"MTrk" + struct.pack(">I", len(t)))
        parts.append(t)
    parts.append(bytes(16))
    clean = b"".join(parts)
    try:
        sc = _symusic.Score.from_midi(clean)
        tracks = list(sc.tracks)
        total = sum(len(t.notes) for t in tracks)
    except Exception as e:  # symusic raises RuntimeError / OSError subclasses
        raise _ParserRejected(str(e)) from None
    _check_note_count(total, limits)
    raw_tracks = []
    for t in tracks:
        if len(t.notes) == 0:
            continue
        a = t.notes.numpy()
        raw_tracks.append(
            _RawTrack(
                name=t.name,
                program=int(t.program),
                is_drum=bool(t.is_drum),
                start=a["time"].astype(np.int64),
                duration=a["duration"].astype(np.int64),
                pitch=a["pitch"].astype(np.int64),
                velocity=a["velocity"].astype(np.int64),
            )
        )
    ts = sc.time_signatures.numpy()
    te = sc.tempos.numpy()
    return _Raw(
        tpq=chunks.tpq,
        tracks=raw_tracks,
        time_signatures=list(
            zip(
                ts["time"].tolist(),
                ts["numerator"].tolist(),
                ts["denominator"].tolist(),
                strict=True,
            )
        ),
        tempos=list(zip(te["time"].tolist(), te["mspq"].tolist(), strict=True)),
    )


class _ParserRejected(Exception):
    pass


def _check_note_count(total: int, limits: Limits) -> None:
    if total > limits.max_notes:
        raise MidiError(
            f"the MIDI file has more than {limits.max_notes:,} notes ({total:,}); musegen reads "
            "at most that many: cut it to the part you want to continue"
        )


# --------------------------------------------------------------------------------------------
# Step 2b: the reference parser (pure Python), also used for mido.MidiFile sources


class _Collector:
    """Turns note/program/meta events, chunk by chunk, into `_RawTrack`s (symusic's rules)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.tracks: list[_RawTrack] = []
        self.time_signatures: list[tuple[int, int, int]] = []
        self.tempos: list[tuple[int, int]] = []
        self.count = 0

    def begin_chunk(self) -> None:
        self.groups: dict[tuple[int, int], list[list[int]]] = {}
        self.open: dict[int, deque] = {}
        self.program = [0] * 16
        self.name = ""

    def note_on(self, tick: int, channel: int, pitch: int, velocity: int) -> None:
        key = (channel, self.program[channel])
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = [[], [], [], []]  # start, duration, pitch, velocity
        g[0].append(tick)
        g[1].append(-1)
        g[2].append(pitch)
        g[3].append(velocity)
        q = self.open.get(channel * 128 + pitch)
        if q is None:
            q = self.open[channel * 128 + pitch] = deque()
        q.append((g, len(g[0]) - 1))
        self.count += 1
        if self.count > self.limits.max_notes:
            _check_note_count(self.count, self.limits)

    def note_off(self, tick: int, channel: int, pitch: int) -> None:
        q = self.open.get(channel * 128 + pitch)
        if q:
            g, i = q.popleft()
            g[1][i] = tick - g[0][i]

    def end_chunk(self) -> None:
        for (channel, program), g in sorted(self.groups.items()):
            start, dur, pitch, vel = (np.asarray(x, dtype=np.int64) for x in g)
            keep = dur >= 0
            if not keep.any():
                continue
            self.tracks.append(
                _RawTrack(
                    name=self.name,
                    program=program,
                    is_drum=channel == 9,
                    start=start[keep],
                    duration=dur[keep],
                    pitch=pitch[keep],
                    velocity=vel[keep],
                )
            )

    def meta(self, tick: int, kind: int, data: bytes) -> None:
        if kind == 0x03:
            self.name = bytes(data).decode("utf-8", errors="replace")
        elif kind == 0x51 and len(data) >= 3:
            self.tempos.append((tick, (data[0] << 16) | (data[1] << 8) | data[2]))
        elif kind == 0x58 and len(data) >= 2:
            self.time_signatures.append((tick, data[0], 2 ** data[1] if data[1] <= 6 else 0))


# data bytes after a status byte: channel messages by high nibble, system messages by status
_CHANNEL_LEN = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
_SYSTEM_LEN = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF4: 0, 0xF5: 0, 0xF6: 0}
_SYSTEM_LEN.update({s: 0 for s in range(0xF8, 0xFF)})


def _truncated(track: int) -> MidiError:
    return MidiError(
        f"corrupt MIDI file: track {track + 1} ends in the middle of an event; the file is "
        "damaged, re-download or re-export it"
    )


def _parse_chunk(buf: memoryview | bytes, index: int, col: _Collector) -> None:
    n = len(buf)
    i = 0
    tick = 0
    running = 0
    while i < n:
        delta = 0
        for _ in range(4):  # variable-length delta time, at most 4 bytes
            if i >= n:
                raise _truncated(index)
            b = buf[i]
            i += 1
            delta = (delta << 7) | (b & 0x7F)
            if b < 0x80:
                break
        tick += delta
        if i >= n:
            raise _truncated(index)
        status = buf[i]
        if status == 0xFF:  # meta event (does not change running status)
            if i + 2 > n:
                raise _truncated(index)
            kind = buf[i + 1]
            length, i = _vlq(buf, i + 2, index)
            if i + length > n:
                raise _truncated(index)
            data = buf[i : i + length]
            i += length
            if kind == 0x2F:  # end of track
                break
            col.meta(tick, kind, data)
        elif status == 0xF0 or status == 0xF7:  # sysex
            length, i = _vlq(buf, i + 1, index)
            if i + length > n:
                raise _truncated(index)
            i += length
            running = 0
        elif status > 0xF0:
            i += 1 + _SYSTEM_LEN[status]
            if i > n:
                raise _truncated(index)
        else:
            if status >= 0x80:
                running = status
                i += 1
            elif running == 0:
                raise MidiError(
                    f"corrupt MIDI file: track {index + 1} has a data byte where an event "
                    "should start; the file is damaged, re-download or re-export it"
                )
            kind = running & 0xF0
            length = _CHANNEL_LEN[kind]
            if i + length > n:
                raise _truncated(index)
            a = min(buf[i], 127)  # clip bad data bytes like mido's clip=True
            v = min(buf[i + 1], 127) if length == 2 else 0
            i += length
            channel = running & 0x0F
            if kind == 0x90 and v > 0:
                col.note_on(tick, channel, a, v)
            elif kind == 0x80 or kind == 0x90:
                col.note_off(tick, channel, a)
            elif kind == 0xC0:
                col.program[channel] = a


def _vlq(buf: memoryview | bytes, i: int, index: int) -> tuple[int, int]:
    value = 0
    for _ in range(4):
        if i >= len(buf):
            raise _truncated(index)
        b = buf[i]
        i += 1
        value = (value << 7) | (b & 0x7F)
        if b < 0x80:
            break
    return value, i


def _parse_reference(chunks: _Chunks, limits: Limits) -> _Raw:
    col = _Collector(limits)
    for k, chunk in enumerate(chunks.tracks):
        col.begin_chunk()
        _parse_chunk(chunk, k, col)
        col.end_chunk()
    return _Raw(chunks.tpq, col.tracks, col.time_signatures, col.tempos)


def _raw_from_mido(mid: mido.MidiFile, limits: Limits) -> _Raw:
    if not mid.tracks:
        raise MidiError("the mido.MidiFile has no tracks")
    if len(mid.tracks) > limits.max_tracks:
        raise MidiError(f"the MIDI file has more than {limits.max_tracks} tracks")
    tpq = int(mid.ticks_per_beat)
    if tpq <= 0 or tpq >= 0x8000:
        raise MidiError(f"unsupported ticks_per_beat {tpq}; musegen needs a beat-based file")
    col = _Collector(limits)
    try:
        for track in mid.tracks:
            col.begin_chunk()
            tick = 0
            for msg in track:
                tick += msg.time
                t = msg.type
                if t == "note_on":
                    if msg.velocity > 0:
                        col.note_on(tick, msg.channel, msg.note, msg.velocity)
                    else:
                        col.note_off(tick, msg.channel, msg.note)
                elif t == "note_off":
                    col.note_off(tick, msg.channel, msg.note)
                elif t == "program_change":
                    col.program[msg.channel] = msg.program
                elif t == "track_name":
                    col.name = _latin1_to_utf8(msg.name)
                elif t == "set_tempo":
                    col.tempos.append((tick, msg.tempo))
                elif t == "time_signature":
                    col.time_signatures.append((tick, msg.numerator, msg.denominator))
                elif t == "end_of_track":
                    break
            col.end_chunk()
    except MidiError:
        raise
    except Exception as e:  # a hand-built MidiFile with odd messages
        raise MidiError(f"cannot read the mido.MidiFile: {e}") from None
    return _Raw(tpq, col.tracks, col.time_signatures, col.tempos)


def _raw_from_pretty_midi(pm: pretty_midi.PrettyMIDI, limits: Limits) -> _Raw:
    try:
        total = sum(len(inst.notes) for inst in pm.instruments)
        _check_note_count(total, limits)
        end = pm.get_end_time()
        if not math.isfinite(end) or end > limits.max_seconds:
            raise MidiError(
                f"the piece lasts {end:.0f} s, more than the {limits.max_seconds:.0f} s musegen "
                "reads; trim it"
            )
        tpq = int(pm.resolution)
        tracks = []
        for inst in pm.instruments:
            if not inst.notes:
                continue
            starts = [pm.time_to_tick(n.start) for n in inst.notes]
            ends = [pm.time_to_tick(n.end) for n in inst.notes]
            start = np.asarray(starts, dtype=np.int64)
            tracks.append(
                _RawTrack(
                    name=_latin1_to_utf8(inst.name),
                    program=int(inst.program),
                    is_drum=bool(inst.is_drum),
                    start=start,
                    duration=np.maximum(np.asarray(ends, dtype=np.int64) - start, 0),
                    pitch=np.asarray([n.pitch for n in inst.notes], dtype=np.int64),
                    velocity=np.asarray([n.velocity for n in inst.notes], dtype=np.int64),
                )
            )
        ts = [
            (pm.time_to_tick(t.time), t.numerator, t.denominator) for t in pm.time_signature_changes
        ]
        times, qpms = pm.get_tempo_changes()
        tempos = [
            (pm.time_to_tick(t), round(60_000_000 / q))
            for t, q in zip(times, qpms, strict=True)
            if q > 0
        ]
    except MidiError:
        raise
    except Exception as e:
        raise MidiError(f"cannot read the PrettyMIDI object: {e}") from None
    return _Raw(tpq, tracks, ts, tempos)


def _load_raw(source: Any, limits: Limits) -> _Raw:
    """Any source -> `_Raw` (source ticks), with the size/track/note limits applied."""
    mod = type(source).__module__
    if mod.startswith("pretty_midi"):
        return _raw_from_pretty_midi(source, limits)
    if mod.startswith("mido") and hasattr(source, "tracks"):
        return _raw_from_mido(source, limits)
    data = _read_source_bytes(source, limits)
    chunks = _scan_chunks(data, limits)
    worth_it = len(data) > SMALL_FILE or _symusic is not _UNLOADED
    if worth_it and _fast_parser() is not None:
        try:
            return _parse_symusic(chunks, limits)
        except _ParserRejected:
            pass  # e.g. a data byte > 127: the reference parser clips it
    return _parse_reference(chunks, limits)


# --------------------------------------------------------------------------------------------
# Step 3: select tracks, check the length, quantize onto the grid


@dataclass
class ScoreArrays:
    """A `Score` as numpy columns (what the tokenizer consumes; no per-note Python objects).

    Notes are sorted by (start, pitch, duration, velocity, track) and on the grid.
    """

    ticks_per_quarter: int
    start: np.ndarray  # int64
    pitch: np.ndarray  # int64
    duration: np.ndarray  # int64, >= 1
    velocity: np.ndarray  # int64, 1..127
    track: np.ndarray  # int64, index into tracks
    tracks: list[Track]
    time_signatures: list[tuple[int, int, int]]
    tempos: list[tuple[int, float]]
    skipped_drum_notes: int = 0  # drum notes left out because track=None

    def __len__(self) -> int:
        return len(self.start)


def _rescale(x: Any, tpq_in: int, tpq_out: int) -> Any:
    """Round ``x * tpq_out / tpq_in`` to the nearest integer, halves up (x >= 0)."""
    if tpq_in == tpq_out:
        return x
    return (2 * x * tpq_out + tpq_in) // (2 * tpq_in)


def _valid_time_signature(n: int, d: int) -> bool:
    return 1 <= n <= 255 and d in (1, 2, 4, 8, 16, 32, 64)


def _normalize_events(events: list[tuple], default: tuple) -> list[tuple]:
    """Sort by tick (stable), keep the last event at a tick, drop repeats, start at tick 0."""
    by_tick: dict[int, tuple] = {}
    for e in sorted(events, key=lambda e: e[0]):
        by_tick[e[0]] = e
    out: list[tuple] = []
    for e in by_tick.values():
        if out and out[-1][1:] == e[1:]:
            continue
        out.append(e)
    if not out or out[0][0] != 0:
        out.insert(0, (0, *default))
        if len(out) > 1 and out[1][1:] == out[0][1:]:
            del out[1]
    return out


def _to_grid(raw: _Raw, track: int | None, tpq: int, limits: Limits) -> ScoreArrays:
    if not isinstance(tpq, int) or tpq < 1 or tpq > 960:
        raise ConfigError(f"ticks_per_quarter must be an integer in 1..960, got {tpq!r}")
    if track is None:
        chosen = [t for t in raw.tracks if not t.is_drum]
        skipped = sum(len(t.start) for t in raw.tracks if t.is_drum)
    else:
        if isinstance(track, bool) or not isinstance(track, (int, np.integer)):
            raise ConfigError(f"track must be an integer index or None, got {track!r}")
        if not 0 <= track < len(raw.tracks):
            listing = ", ".join(
                f"{i}: {t.name or 'untitled'}{' (drums)' if t.is_drum else ''}"
                for i, t in enumerate(raw.tracks[:12])
            )
            raise MidiError(
                f"track {track} does not exist: the file has {_count(len(raw.tracks), 'track')} "
                f"with notes ({listing or 'none'}); pick one of them or leave track unset"
            )
        chosen = [raw.tracks[track]]
        skipped = 0

    # Tempo map in source ticks (needed for the length in seconds).
    tempo_events = [
        (t, min(max(60_000_000 / m, MIN_QPM), MAX_QPM)) for t, m in raw.tempos if m > 0 and t >= 0
    ]
    src_tempos = _normalize_events(tempo_events, (DEFAULT_QPM,))

    if chosen:
        start = np.concatenate([t.start for t in chosen])
        dur = np.concatenate([t.duration for t in chosen])
        if start.min() < 0 or dur.min() < 0:
            raise MidiError(
                "corrupt MIDI file: absurd delta times make note times overflow; re-export it"
            )
        last = int((start + dur).max())
        if last > limits.max_quarters * raw.tpq:
            raise MidiError(
                f"the piece is {last / raw.tpq:,.0f} quarter notes long, more than the "
                f"{limits.max_quarters:,} musegen reads; trim it (or the file has absurd "
                "delta times)"
            )
        seconds = float(ticks_to_seconds(last, src_tempos, raw.tpq))
        if seconds > limits.max_seconds:
            raise MidiError(
                f"the piece lasts {seconds:,.0f} s, more than the {limits.max_seconds:,.0f} s "
                "musegen reads; trim it"
            )
        pitch = np.concatenate([t.pitch for t in chosen])
        vel = np.clip(np.concatenate([t.velocity for t in chosen]), 1, 127)
        trk = np.concatenate([np.full(len(t.start), i, np.int64) for i, t in enumerate(chosen)])
        start = _rescale(start, raw.tpq, tpq)
        dur = np.maximum(_rescale(dur, raw.tpq, tpq), 1)
        order = np.lexsort((trk, vel, dur, pitch, start))
        start, pitch, dur, vel, trk = start[order], pitch[order], dur[order], vel[order], trk[order]
    else:
        start = pitch = dur = vel = trk = np.zeros(0, np.int64)
    horizon = limits.max_quarters * raw.tpq

    ts_events = [
        (_rescale(t, raw.tpq, tpq), n, d)
        for t, n, d in raw.time_signatures
        if _valid_time_signature(n, d) and 0 <= t <= horizon
    ]
    tempos = [(_rescale(t, raw.tpq, tpq), q) for t, q in src_tempos if t <= horizon]

    return ScoreArrays(
        ticks_per_quarter=tpq,
        start=start,
        pitch=pitch,
        duration=dur,
        velocity=vel,
        track=trk,
        tracks=[Track(t.program, t.is_drum, _clean_name(t.name)) for t in chosen],
        time_signatures=_normalize_events(ts_events, DEFAULT_TIME_SIGNATURE),
        tempos=_normalize_events(tempos, (DEFAULT_QPM,)),
        skipped_drum_notes=skipped,
    )


# --------------------------------------------------------------------------------------------
# Public reading API


def read_arrays(
    source: Source,
    *,
    track: int | None = None,
    ticks_per_quarter: int = DEFAULT_TICKS_PER_QUARTER,
    limits: Limits | None = None,
) -> ScoreArrays:
    """Like `read_score`, but returns numpy columns (fast path for tokenizing)."""
    limits = limits or DEFAULT_LIMITS
    return _to_grid(_load_raw(source, limits), track, ticks_per_quarter, limits)


def read_score(
    source: Source,
    *,
    track: int | None = None,
    ticks_per_quarter: int = DEFAULT_TICKS_PER_QUARTER,
    limits: Limits | None = None,
) -> Score:
    """Read a MIDI source into a `Score` quantized to ``ticks_per_quarter`` ticks per quarter.

    ``track=None`` keeps the notes of every non-drum track; ``track=i`` keeps only track ``i``
    of `list_tracks` (drums allowed). ``Score.tracks`` holds the kept tracks in file order and
    each note's ``track`` indexes it. A file without notes gives a score without notes.
    Raises `MidiError` (with what is wrong and what to do) for anything unreadable or over the
    `Limits`.
    """
    return arrays_to_score(
        read_arrays(source, track=track, ticks_per_quarter=ticks_per_quarter, limits=limits)
    )


def list_tracks(source: Source, *, limits: Limits | None = None) -> list[TrackInfo]:
    """The tracks with notes, in file order: what ``read_score(source, track=i)`` selects.

    A track is one (MIDI track, channel, program); in a type-0 file each channel is a track.
    """
    raw = _load_raw(source, limits or DEFAULT_LIMITS)
    return [
        TrackInfo(i, _clean_name(t.name), t.program, t.is_drum, notes=len(t.start))
        for i, t in enumerate(raw.tracks)
    ]


def arrays_to_score(a: ScoreArrays) -> Score:
    notes = list(
        map(
            Note,
            a.start.tolist(),
            a.pitch.tolist(),
            a.duration.tolist(),
            a.velocity.tolist(),
            a.track.tolist(),
        )
    )
    return Score(
        ticks_per_quarter=a.ticks_per_quarter,
        notes=notes,
        tracks=list(a.tracks),
        time_signatures=[tuple(x) for x in a.time_signatures],
        tempos=[(int(t), float(q)) for t, q in a.tempos],
    )


def score_arrays(score: Score) -> ScoreArrays:
    """A `Score` as numpy columns (sorted); the inverse of `arrays_to_score`."""
    n = len(score.notes)
    cols = np.array(
        [(x.start, x.pitch, x.duration, x.velocity, x.track) for x in score.notes], dtype=np.int64
    ).reshape(n, 5)
    order = np.lexsort(cols.T[::-1])
    cols = cols[order]
    return ScoreArrays(
        ticks_per_quarter=score.ticks_per_quarter,
        start=cols[:, 0],
        pitch=cols[:, 1],
        duration=cols[:, 2],
        velocity=cols[:, 3],
        track=cols[:, 4],
        tracks=list(score.tracks),
        time_signatures=list(score.time_signatures) or [(0, *DEFAULT_TIME_SIGNATURE)],
        tempos=list(score.tempos) or [(0, DEFAULT_QPM)],
    )


def rescale(score: Score, ticks_per_quarter: int) -> Score:
    """``score`` on a grid of ``ticks_per_quarter``, rounded as `read_score` rounds a file
    (durations at least one tick): reading a file at one resolution and rescaling gives what
    reading it at the other gives, up to double rounding."""
    a, tpq = score_arrays(score), ticks_per_quarter
    start = _rescale(a.start, a.ticks_per_quarter, tpq)
    duration = np.maximum(_rescale(a.duration, a.ticks_per_quarter, tpq), 1)
    order = np.lexsort((a.track, a.velocity, duration, a.pitch, start))
    ts = [(_rescale(t, a.ticks_per_quarter, tpq), n, d) for t, n, d in a.time_signatures]
    tempos = [(_rescale(t, a.ticks_per_quarter, tpq), q) for t, q in a.tempos]
    return arrays_to_score(
        ScoreArrays(
            ticks_per_quarter=tpq,
            start=start[order],
            pitch=a.pitch[order],
            duration=duration[order],
            velocity=a.velocity[order],
            track=a.track[order],
            tracks=a.tracks,
            time_signatures=_normalize_events(ts, DEFAULT_TIME_SIGNATURE),
            tempos=_normalize_events(tempos, (DEFAULT_QPM,)),
        )
    )


# --------------------------------------------------------------------------------------------
# Time and writing


def ticks_to_seconds(
    ticks: int | float | Sequence[int] | np.ndarray,
    tempos: Sequence[tuple[int, float]],
    ticks_per_quarter: int,
) -> Any:
    """Map ticks to seconds under a tempo map [(tick, qpm), ...] (120 qpm before the first)."""
    tempos = list(tempos) or [(0, DEFAULT_QPM)]
    if tempos[0][0] != 0:
        tempos = [(0, DEFAULT_QPM), *tempos]
    t0 = np.array([t for t, _ in tempos], dtype=np.float64)
    spt = np.array([60.0 / (q * ticks_per_quarter) for _, q in tempos])  # seconds per tick
    acc = np.concatenate([[0.0], np.cumsum(np.diff(t0) * spt[:-1])])
    x = np.asarray(ticks, dtype=np.float64)
    idx = np.searchsorted(t0, x, side="right") - 1
    idx = np.clip(idx, 0, len(t0) - 1)
    out = acc[idx] + (x - t0[idx]) * spt[idx]
    return float(out) if out.ndim == 0 else out


def score_to_pretty_midi(score: Score, *, resolution: int | None = None) -> pretty_midi.PrettyMIDI:
    """A `Score` as a PrettyMIDI: tempo map and time signatures kept, one instrument per track.

    The file resolution is a multiple of the grid (480 ticks per quarter at the default 24), so
    every grid tick is exact.
    """
    import pretty_midi

    tpq = score.ticks_per_quarter
    res = resolution or tpq * max(1, 480 // tpq)
    if res % tpq:
        raise ConfigError(f"resolution {res} must be a multiple of ticks_per_quarter {tpq}")
    tempos = [(int(t), float(q)) for t, q in score.tempos] or [(0, DEFAULT_QPM)]
    if tempos[0][0] != 0:
        tempos.insert(0, (0, DEFAULT_QPM))
    pm = pretty_midi.PrettyMIDI(resolution=res, initial_tempo=tempos[0][1])
    f = res // tpq
    pm._tick_scales = [(t * f, 60.0 / (q * res)) for t, q in tempos]
    pm._update_tick_to_time(score.end * f + 1)
    for t, n, d in score.time_signatures:
        pm.time_signature_changes.append(
            pretty_midi.TimeSignature(n, d, float(ticks_to_seconds(t, tempos, tpq)))
        )
    instruments = [
        pretty_midi.Instrument(
            program=tr.program, is_drum=tr.is_drum, name=_utf8_as_latin1(tr.name)
        )
        for tr in (score.tracks or [Track()])
    ]
    if score.notes:
        starts = np.array([n.start for n in score.notes])
        ends = starts + np.array([n.duration for n in score.notes])
        s_sec = ticks_to_seconds(starts, tempos, tpq).tolist()
        e_sec = ticks_to_seconds(ends, tempos, tpq).tolist()
        for n, s, e in zip(score.notes, s_sec, e_sec, strict=True):
            k = n.track if 0 <= n.track < len(instruments) else 0
            instruments[k].notes.append(pretty_midi.Note(n.velocity, n.pitch, s, e))
    pm.instruments = instruments
    return pm


def write_midi(score: Score, path_or_file: str | os.PathLike | BinaryIO) -> None:
    """Write a `Score` as a type-1 MIDI file (path or binary file object)."""
    from musegen.io.midi_out import write_pretty_midi

    write_pretty_midi(score_to_pretty_midi(score), path_or_file)


def midi_bytes(score: Score) -> bytes:
    """The `Score` as the bytes of a MIDI file."""
    buf = io.BytesIO()
    write_midi(score, buf)
    return buf.getvalue()
