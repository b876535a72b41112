"""PrettyMIDI objects written as Standard MIDI Files, fast.

``PrettyMIDI.write`` builds a validated mido message per event and sorts them with a Python
comparator: ~10 ms for a 38-bar melody, as long as a Mamba-2 continuation's prefill. Every face
writes files (the CLI, the demo's downloads, HARP, the server), so `write_pretty_midi` encodes
the same file directly: the same tracks, events, order and bytes as pretty_midi's ``write``
(the slow reference; ``tests/test_midi_out.py`` checks the bytes agree): 1.8 ms instead of
10 ms for that melody on the 2-core EPYC.

What pretty_midi writes: a type-1 file; track 0 holds the tempo map, time, key signatures,
lyrics and text (a 4/4 at tick 0 unless a time signature starts there); then a track per
instrument: its name, its program, its notes (note-on, then note-on with velocity 0), pitch
bends and control changes, on channel 9 for drums and on the others in turn otherwise.

Where they differ: what no MIDI file can hold is a `MidiError` here (mido raises ValueError
for most of it, and writes times past 2**28 ticks and resolutions past 32767 in ways players
misread). Times are read as float64, where pretty_midi computes a tick past the end of a
never-built tick table in the time's own precision: float32 times there may land a tick
apart. A
PrettyMIDI without the internals this module reads (another pretty_midi than 0.2.x) is
written by its own ``write``.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
import os
import struct
from numbers import Integral
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from musegen.errors import MidiError

if TYPE_CHECKING:
    import pretty_midi

# pretty_midi's order for events at one tick: (rank, value) as in its ``event_compare``
# (rank * 65536 + value). Text events have no rank there: they compare as equal to whatever
# shares their tick (UNRANKED). So does a track name; but it comes first in its track, at tick
# 0, where nothing sorts before it, so it keeps its place: rank 0 says the same.
NAME, TEMPO, TIME_SIGNATURE, KEY_SIGNATURE, LYRICS, PROGRAM, BEND, CONTROL, NOTE, END = (
    0, 1, 2, 3, 4, 6, 7, 8, 10, 11
)  # fmt: skip
UNRANKED = None
# key number (0-11 major from C, 12-23 minor from C) -> (sharps or -flats, minor)
KEY_SIGNATURES = [
    *zip((0, -5, 2, -3, 4, -1, 6, 1, -4, 3, -2, 5), [0] * 12, strict=True),
    *zip((-3, 4, -1, 6, 1, -4, 3, -2, 5, 0, -5, 2), [1] * 12, strict=True),
]


def write_pretty_midi(pm: pretty_midi.PrettyMIDI, path_or_file: str | os.PathLike | IO) -> None:
    """Write ``pm`` to a path or binary file object, as ``pm.write`` would."""
    data = pretty_midi_bytes(pm)
    if isinstance(path_or_file, (str, os.PathLike)):
        try:
            with open(path_or_file, "wb") as f:
                f.write(data)
        except OSError as e:
            raise MidiError(f"cannot write {path_or_file}: {e.strerror or e}") from None
    else:
        path_or_file.write(data)


def pretty_midi_bytes(pm: pretty_midi.PrettyMIDI) -> bytes:
    """The bytes ``pm.write`` writes (type 1, pretty_midi's tracks, order and encoding)."""
    if not hasattr(pm, "_PrettyMIDI__tick_to_time") or not hasattr(pm, "_tick_scales"):
        buf = io.BytesIO()  # not the pretty_midi this module mirrors: its own writer
        pm.write(buf)
        return buf.getvalue()
    if not 1 <= pm.resolution <= 32767:
        raise MidiError(
            f"a resolution of {pm.resolution} ticks per quarter cannot be written in a MIDI "
            "file (1-32767)"
        )
    charset = getattr(pm, "_charset", "latin1")
    ticks = _TickMap(pm)
    tracks = [_encode(_timing_events(pm, ticks, charset))]
    channels = [c for c in range(16) if c != 9]
    for n, instrument in enumerate(pm.instruments):
        channel = 9 if instrument.is_drum else channels[n % len(channels)]
        tracks.append(_encode(_instrument_events(instrument, channel, ticks, charset)))
    header = b"MThd" + struct.pack(">IHHH", 6, 1, len(tracks), pm.resolution)
    return header + b"".join(b"MTrk" + struct.pack(">I", len(t)) + t for t in tracks)


class _TickMap:
    """pretty_midi's ``time_to_tick`` over arrays: the nearest tick of its tick-time table
    (the later one on a tie), past the table's end at the last tempo."""

    def __init__(self, pm: pretty_midi.PrettyMIDI) -> None:
        self.table = np.asarray(pm._PrettyMIDI__tick_to_time)  # seconds at each tick
        self.last_scale = pm._tick_scales[-1][1]

    def __call__(self, times: Any) -> list[int]:
        times = np.asarray(times, dtype=np.float64)
        table, n = self.table, len(self.table)
        i = np.searchsorted(table, times, side="left")
        past = i == n
        inside = np.minimum(i, n - 1)
        before = np.maximum(inside - 1, 0)
        earlier = (i > 0) & (np.abs(times - table[before]) < np.abs(times - table[inside]))
        out = np.where(earlier, inside - 1, inside).astype(np.float64)
        beyond = (n - 1) + (times - table[n - 1]) / self.last_scale
        out = np.where(past, np.rint(beyond), out)
        return [int(t) for t in out]


def _timing_events(pm: pretty_midi.PrettyMIDI, ticks: _TickMap, charset: str) -> list[tuple]:
    """Track 0's events as (tick, rank, value, bytes), in pretty_midi's order, with the end."""
    events = []
    signatures = pm.time_signature_changes
    if not signatures or min(ts.time for ts in signatures) > 0.0:
        events.append((0, TIME_SIGNATURE, 0, _time_signature(4, 4)))
    for tick, scale in pm._tick_scales:
        tempo = int(6e7 / (60.0 / (scale * pm.resolution)))
        if not 0 <= tempo < 1 << 24:
            raise MidiError(f"a tempo of {tempo} microseconds per quarter cannot be written")
        events.append((tick, TEMPO, 0, b"\xff\x51\x03" + tempo.to_bytes(3, "big")))
    at = ticks([ts.time for ts in signatures])
    for tick, ts in zip(at, signatures, strict=True):
        events.append((tick, TIME_SIGNATURE, 0, _time_signature(ts.numerator, ts.denominator)))
    at = ticks([ks.time for ks in pm.key_signature_changes])
    for tick, ks in zip(at, pm.key_signature_changes, strict=True):
        sharps, minor = KEY_SIGNATURES[ks.key_number]
        events.append((tick, KEY_SIGNATURE, 0, b"\xff\x59\x02" + bytes([sharps & 0xFF, minor])))
    for kind, rank, items in ((0x05, LYRICS, pm.lyrics), (0x01, UNRANKED, pm.text_events)):
        at = ticks([item.time for item in items])
        for tick, item in zip(at, items, strict=True):
            events.append((tick, rank, 0, _meta_text(kind, item.text, charset)))
    events = _sorted(events)
    return [*events, (events[-1][0] + 1, END, 0, b"\xff\x2f\x00")]


def _instrument_events(instrument: Any, channel: int, ticks: _TickMap, charset: str) -> list:
    """An instrument's track as (tick, rank, value, bytes), in pretty_midi's order."""
    events = []
    if instrument.name:
        events.append((0, NAME, 0, _meta_text(0x03, instrument.name, charset)))
    events.append((0, PROGRAM, 0, bytes([0xC0 | channel, _data(instrument.program, "program")])))
    notes = instrument.notes
    at = ticks([t for note in notes for t in (note.start, note.end)])
    on = 0x90 | channel
    for k, note in enumerate(notes):
        pitch, velocity = _data(note.pitch, "pitch"), _data(note.velocity, "velocity")
        events.append((at[2 * k], NOTE, pitch * 256 + velocity, bytes([on, pitch, velocity])))
        events.append((at[2 * k + 1], NOTE, pitch * 256, bytes([on, pitch, 0])))
    at = ticks([bend.time for bend in instrument.pitch_bends])
    for tick, bend in zip(at, instrument.pitch_bends, strict=True):
        if not isinstance(bend.pitch, Integral) or not -8192 <= bend.pitch <= 8191:
            raise MidiError(f"a pitch bend of {bend.pitch!r} cannot be written (-8192..8191)")
        value = int(bend.pitch) + 8192
        data = bytes([0xE0 | channel, value & 0x7F, value >> 7])
        events.append((tick, BEND, int(bend.pitch), data))
    at = ticks([cc.time for cc in instrument.control_changes])
    for tick, cc in zip(at, instrument.control_changes, strict=True):
        number, value = _data(cc.number, "controller"), _data(cc.value, "controller value")
        events.append((tick, CONTROL, number * 256 + value, bytes([0xB0 | channel, number, value])))
    events = _sorted(events)
    pairs = list(itertools.pairwise(events))  # as sorted: a swap changes no later pair
    for k, (a, b) in enumerate(pairs):  # a note's end before a new start of it at one tick
        if a[0] == b[0] and a[1] == b[1] == NOTE and a[3][1] == b[3][1] and a[3][2] and not b[3][2]:
            events[k], events[k + 1] = b, a
    return [*events, (events[-1][0] + 1, END, 0, b"\xff\x2f\x00")]


def _compare(a: tuple, b: tuple) -> int:
    """pretty_midi's ``event_compare`` on (tick, rank, value, bytes)."""
    if a[0] == b[0] and a[1] is not None and b[1] is not None:
        return (a[1] * 65536 + a[2]) - (b[1] * 65536 + b[2])
    return a[0] - b[0]


def _sorted(events: list[tuple]) -> list[tuple]:
    """Events in pretty_midi's order. Its comparator is not a total order where a text event
    shares a tick with others, so that case sorts with the comparator itself, as pretty_midi
    does; otherwise (tick, rank, value) is the same order."""
    if any(e[1] is None for e in events):
        return sorted(events, key=functools.cmp_to_key(_compare))
    return sorted(events, key=lambda e: (e[0], e[1], e[2]))


def _encode(events: list[tuple]) -> bytes:
    """A track's bytes: delta times and running status, as mido writes them."""
    out = bytearray()
    previous, running = 0, None
    for tick, _, _, data in events:
        if tick < previous:  # pragma: no cover - the events are sorted
            raise MidiError("events out of order")
        out += vlq(tick - previous)
        previous = tick
        if data[0] == 0xFF:  # meta: cancels running status
            out += data
            running = None
        elif data[0] == running:
            out += data[1:]
        else:
            out += data
            running = data[0]
    return bytes(out)


_SMALL = [bytes([n]) for n in range(128)]  # one-byte quantities: most delta times


def vlq(n: int) -> bytes:
    """``n`` as a MIDI variable-length quantity (0 <= n < 2**28, else a `MidiError`)."""
    if 0 <= n < 128:
        return _SMALL[n]
    if n < 0 or n >= 1 << 28:
        raise MidiError(
            f"a time or length of {n} ticks cannot be written in a MIDI file (2**28 at most): "
            "shorten the music or lower its resolution"
        )
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def _data(value: Any, what: str) -> int:
    """A MIDI data byte (0-127), refused where mido refuses it."""
    if type(value) is int and 0 <= value <= 127:
        return value
    if not isinstance(value, Integral) or not 0 <= value <= 127:
        raise MidiError(f"a {what} of {value!r} cannot be written in a MIDI file (0-127)")
    return int(value)


def _time_signature(numerator: int, denominator: int) -> bytes:
    """As mido writes it: the denominator as its log2 (a power of 2, as mido requires),
    24 clocks per click, 8 32nds per quarter."""
    power = (
        math.log(denominator, 2) if isinstance(denominator, Integral) and denominator > 0 else -1
    )
    if not 0 <= numerator <= 255 or power != int(power) or power < 0:
        raise MidiError(
            f"the time signature {numerator}/{denominator} cannot be written in a MIDI file "
            "(its denominator must be a power of 2)"
        )
    return b"\xff\x58\x04" + bytes([numerator, int(power), 24, 8])


def _meta_text(kind: int, text: str, charset: str) -> bytes:
    data = text.encode(charset)
    return bytes([0xFF, kind]) + vlq(len(data)) + data
