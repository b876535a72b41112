"""The external benchmark: the Bach chorale melodies, BWV 253-438, from music21's corpus.

`musegen eval --benchmark chorales` scores the soprano line of every chorale in that range
(ties merged, repeats not expanded, the pickup kept in its place in the bar) the way IDyOM's
published figures do: pitch bits per note, note-weighted over all chorales. IDyOM (Pearce 2005)
reaches 2.347 with pitch-only PPM and 1.953 with multiple viewpoints, both trained on the
chorales themselves with 10-fold cross-validation. musegen's models never train on anything
from music21's ``bach/`` directory (the corpus builder refuses it), so theirs is a zero-shot
score. musegen's pitch bits count the PITCH token of each note, which the model predicts
knowing the note's onset (its POS token) but not its duration.

The melodies are read once with music21 (about 0.2 s a chorale) and cached as MIDI files.
"""

from __future__ import annotations

from typing import Any

from musegen.errors import DataError
from musegen.io.midi_out import pretty_midi_bytes
from musegen.metrics import bits_per_note
from musegen.options import cache_dir

FIRST_BWV, LAST_BWV = 253, 438
IDYOM_PITCH_BITS = {"IDyOM pitch-only PPM": 2.347, "IDyOM multiple viewpoints": 1.953}
QPM = 120.0


def soprano_midi(score: Any) -> bytes:
    """The soprano part of a music21 chorale as a one-track MIDI file at `QPM`: ties merged,
    the first bar's pickup kept in place (so bar lines fall where the chorale has them)."""
    import pretty_midi

    part = score.parts[0].stripTies()
    measures = part.getElementsByClass("Measure")
    pickup = float(measures[0].paddingLeft) if measures else 0.0
    flat = part.flatten()
    signatures = flat.getElementsByClass("TimeSignature")
    num, den = (signatures[0].numerator, signatures[0].denominator) if signatures else (4, 4)
    seconds = 60.0 / QPM
    pm = pretty_midi.PrettyMIDI(initial_tempo=QPM)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(num, den, 0.0))
    voice = pretty_midi.Instrument(program=52, name="Soprano")  # choir aahs
    for n in flat.notes:
        if not n.isNote:  # a chord in a melody line: keep its top note
            pitch = max(p.midi for p in n.pitches)
        else:
            pitch = n.pitch.midi
        start = (float(n.offset) + pickup) * seconds
        voice.notes.append(
            pretty_midi.Note(80, pitch, start, start + float(n.quarterLength) * seconds)
        )
    pm.instruments.append(voice)
    return pretty_midi_bytes(pm)


def melodies(progress: bool = False) -> list[tuple[int, bytes]]:
    """(BWV number, soprano MIDI) of every chorale BWV 253-438 in music21's corpus, from the
    cache when converted before. Needs music21 (``pip install 'musegen[train]'``) once."""
    folder = cache_dir("chorales")
    wanted = _numbers()
    cached = {bwv: folder / f"bwv{bwv}.mid" for bwv in wanted}
    if all(p.is_file() for p in cached.values()):
        return [(bwv, p.read_bytes()) for bwv, p in cached.items()]
    try:
        from music21 import corpus
    except ImportError as e:
        raise DataError(
            "the chorale benchmark reads music21's corpus once: pip install 'musegen[train]'"
        ) from e
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (bwv, path) in enumerate(cached.items()):
        if not path.is_file():
            try:
                data = soprano_midi(corpus.parse(f"bach/bwv{bwv}"))
            except Exception:  # music21 lacks a few numbers, or cannot read one: leave it
                continue  # out of the list, so that the next run needs no music21
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        if progress and (i + 1) % 20 == 0:
            print(f"chorales: {i + 1}/{len(cached)}", flush=True)
        out.append((bwv, path.read_bytes()))
    (folder / "numbers.txt").write_text(" ".join(str(bwv) for bwv, _ in out))
    return out


def _numbers() -> list[int]:
    """The BWV numbers of the benchmark that music21's chorale list knows."""
    cache = cache_dir("chorales") / "numbers.txt"
    if cache.is_file():
        return [int(x) for x in cache.read_text().split()]
    try:
        from music21.corpus import chorales
    except ImportError as e:
        raise DataError(
            "the chorale benchmark reads music21's corpus once: pip install 'musegen[train]'"
        ) from e
    numbers = sorted(b for b in chorales.ChoraleList().byBWV if FIRST_BWV <= b <= LAST_BWV)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(" ".join(map(str, numbers)))
    return numbers


def evaluate(model: Any, progress: bool = False) -> dict:
    """Bits per note and pitch bits per note of a `MuseGen` on the chorale melodies."""
    import numpy as np

    tok = model.tokenizer
    nlls, tunes, notes = [], [], []
    for _, data in melodies(progress):
        ids = np.asarray(tok.encode(data), dtype=np.int64)
        nlls.append(model._token_nll(ids))
        tunes.append(ids)
        notes.append(int(np.isin(ids, tok.pitch_ids).sum()))
    if not tunes:
        raise DataError("no chorale could be read from music21's corpus")
    result = bits_per_note(nlls, tunes, notes, tok)
    return {"benchmark": "chorales", "bwv": f"{FIRST_BWV}-{LAST_BWV}", **result} | {
        f"reference {name}": value for name, value in IDYOM_PITCH_BITS.items()
    }
