"""A clip as DAW scripts hold it: notes in quarter notes from the clip's start.

A note is ``(start, end, pitch, velocity)`` with times in quarter notes (QN) from the start of
the clip, which is taken to lie on a bar line; the metre is ``(numerator, denominator)``. This
is what REAPER's API gives a script, and what `musegen serve` takes and returns as JSON, so
that a DAW script needs nothing but the standard library when the engine runs.
"""

from __future__ import annotations

import math
from typing import Any

import pretty_midi

from musegen.errors import ConfigError
from musegen.io.midi_out import pretty_midi_bytes
from musegen.options import DEFAULT_QUANTIZE

QNote = tuple[float, float, int, int]
QPM = 120.0  # the tempo clips are handed to the model at (only the beat grid matters)
SECONDS_PER_QN = 60.0 / QPM


def check_notes(notes: Any, metre: Any) -> tuple[list[QNote], tuple[int, int]]:
    """Notes and metre as given by a script or a JSON request, checked and converted."""
    if isinstance(metre, (str, bytes)) or not hasattr(metre, "__len__") or len(metre) != 2:
        raise ConfigError(f"metre must be [numerator, denominator] (got {metre!r})")
    try:
        num, den = (int(x) for x in metre)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"metre must be [numerator, denominator] (got {metre!r})") from None
    if not 1 <= num <= 64 or den not in (1, 2, 4, 8, 16, 32):
        raise ConfigError(f"metre must be like [4, 4] or [6, 8] (got {metre!r})")
    out = []
    try:
        for start, end, pitch, velocity in notes:
            out.append((float(start), float(end), int(pitch), int(velocity)))
    except (TypeError, ValueError):
        raise ConfigError(
            "notes must be a list of [start, end, pitch, velocity] (times in quarter notes)"
        ) from None
    if not out:
        raise ConfigError("the clip has no notes: give at least one")
    for start, end, pitch, velocity in out:
        finite = math.isfinite(start) and math.isfinite(end)
        if not (finite and 0 <= start < end and 0 <= pitch <= 127 and 1 <= velocity <= 127):
            raise ConfigError(
                f"note {(start, end, pitch, velocity)} is out of range: 0 <= start < end, "
                "pitch 0-127, velocity 1-127"
            )
    return out, (num, den)


def notes_to_midi(notes: list[QNote], metre: tuple[int, int], program: int = 0) -> bytes:
    """A one-track MIDI file of ``notes`` at `QPM`, in ``metre``."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=QPM)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(metre[0], metre[1], 0.0))
    inst = pretty_midi.Instrument(program=program)
    for start, end, pitch, velocity in notes:
        inst.notes.append(
            pretty_midi.Note(velocity, pitch, start * SECONDS_PER_QN, end * SECONDS_PER_QN)
        )
    pm.instruments.append(inst)
    return pretty_midi_bytes(pm)


def _qnotes(pm: pretty_midi.PrettyMIDI, lo: float, hi: float) -> list[QNote]:
    """The notes of ``pm`` (at `QPM`) whose onset lies in [lo, hi) QN, in time order."""
    out = []
    for inst in pm.instruments:
        for n in inst.notes:
            start = round(n.start / SECONDS_PER_QN, 6)
            if lo - 1e-6 <= start < hi - 1e-6:
                end = round(n.end / SECONDS_PER_QN, 6)
                out.append((start, end, int(n.pitch), int(n.velocity)))
    return sorted(out)


def bar_qn(metre: tuple[int, int]) -> float:
    """Quarter notes in one bar of ``metre``."""
    return metre[0] * 4 / metre[1]


def continuation(
    model: Any,
    notes: list[QNote],
    metre: tuple[int, int],
    *,
    bars: int,
    quantize: str = DEFAULT_QUANTIZE,
    **options: Any,
) -> tuple[float, list[QNote]]:
    """Where a ``bars``-bar continuation of the clip starts (QN from the clip's start: the
    first bar line after its last note ends, as the model read it) and its notes, in QN from
    the clip's start. ``options`` as `MuseGen.generate_ids` (seed, key, temperature, ...)."""
    notes, metre = check_notes(notes, metre)
    primer = model.prepare(notes_to_midi(notes, metre), quantize=quantize)
    ids = model.generate_ids(primer, bars=bars, **options)[0]
    out = model.to_midi(primer, ids, continuation_only=True)  # time 0: where the bars start
    start = primer.start_seconds / SECONDS_PER_QN
    return start, [(start + s, start + e, p, v) for s, e, p, v in _qnotes(out, 0.0, float("inf"))]


def continue_notes(
    model: Any, notes: list[QNote], metre: tuple[int, int], *, bars: int, **options: Any
) -> list[QNote]:
    """The new notes of a ``bars``-bar continuation of the clip (`continuation`)."""
    return continuation(model, notes, metre, bars=bars, **options)[1]


def infill_notes(
    model: Any,
    notes: list[QNote],
    metre: tuple[int, int],
    first_bar: int,
    last_bar: int,
    **options: Any,
) -> list[QNote]:
    """The notes that replace bars ``first_bar``-``last_bar`` (from 1, both included) of the
    clip: every note of the result whose onset lies in those bars. The caller removes its own
    notes that start there and puts these in; the rest of the clip is the model's context.
    ``options`` as `MuseGen.infill`."""
    notes, metre = check_notes(notes, metre)
    out = model.infill(notes_to_midi(notes, metre), first_bar, last_bar, **options)
    bar = bar_qn(metre)
    return _qnotes(out, (first_bar - 1) * bar, last_bar * bar)
