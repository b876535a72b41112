"""A music21 score as a MIDI file: every pitched part a track, on the score's bar lines.

Ties are merged, chords give all their notes, a first bar that is a pickup keeps its place in
the bar (so bar lines fall where the score has them), every metre change is kept, and the
tempo is a fixed 120 quarter notes a minute (the model reads the beat grid, not the tempo).
Unpitched parts and grace notes are left out.
"""

from __future__ import annotations

from typing import Any

from musegen.io.midi_out import pretty_midi_bytes

QPM = 120.0
CONVERTER_VERSION = 2  # part of the conversion cache's key: bump when the output changes


def _pickup(part: Any) -> float:
    """Quarter notes missing from the first bar (a pickup), 0 without one."""
    measures = part.getElementsByClass("Measure")
    return float(measures[0].paddingLeft) if measures else 0.0


def score_to_midi(score: Any, parts: list[int] | None = None) -> bytes:
    """MIDI bytes of ``score`` (a music21 ``Score``), all parts or those at ``parts``."""
    import pretty_midi

    chosen = list(score.parts) if parts is None else [score.parts[i] for i in parts]
    if not chosen:
        chosen = [score]  # a single-part stream with no Part objects
    seconds = 60.0 / QPM
    pm = pretty_midi.PrettyMIDI(initial_tempo=QPM)
    shift = _pickup(chosen[0])
    # every metre change, where it falls (the first at 0: a pickup bar is in the first metre)
    signatures = chosen[0].flatten().getElementsByClass("TimeSignature")
    last = None
    for ts in signatures:
        at = 0.0 if last is None else (float(ts.offset) + shift) * seconds
        if (ts.numerator, ts.denominator) != last:
            pm.time_signature_changes.append(
                pretty_midi.TimeSignature(ts.numerator, ts.denominator, at)
            )
            last = (ts.numerator, ts.denominator)
    if last is None:
        pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    for part in chosen:
        program = 0
        instrument = (
            part.getInstrument(returnDefault=False) if hasattr(part, "getInstrument") else None
        )
        if instrument is not None and instrument.midiProgram is not None:
            program = int(instrument.midiProgram)
        track = pretty_midi.Instrument(program=program, name=str(part.partName or ""))
        for n in part.stripTies().flatten().notes:
            if n.duration.isGrace:  # no time of its own on the grid
                continue
            pitches = [p.midi for p in n.pitches] if hasattr(n, "pitches") else []
            start = (float(n.offset) + shift) * seconds
            end = start + max(float(n.quarterLength), 1 / 64) * seconds
            for pitch in pitches:
                if 0 <= pitch <= 127:
                    track.notes.append(pretty_midi.Note(80, int(pitch), start, end))
        if track.notes:
            pm.instruments.append(track)
    return pretty_midi_bytes(pm)
