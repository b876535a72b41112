"""REAPER ReaScript (Python): continue the selected MIDI item with musegen.

Install musegen into the Python that REAPER uses (Preferences > Plug-ins > ReaScript), then
load this file with Actions > Show action list > New action > Load ReaScript. Select a MIDI
item and run the action: a new item with the continuation appears right after it, on the same
track. Settings are the constants below.

The REAPER calls (`RPR_*`) are kept at the edges; `continue_notes` is plain Python on
(start, end, pitch, velocity) tuples in quarter notes, so it is tested without REAPER.
"""

from __future__ import annotations

import io

MODEL = "mamba"  # lstm | transformer | mamba | a checkpoint directory
BARS = 4
TEMPERATURE = 1.0
KEY = "auto"  # "auto", a key such as "D major", or None
SEED = None  # an int for a repeatable result

SECONDS_PER_QUARTER = 0.5  # the primer is handed to musegen at 120 qpm, in quarter notes


def continue_notes(
    notes: list[tuple[float, float, int, int]],
    metre: tuple[int, int] = (4, 4),
    *,
    model=None,
    bars: int = 4,
    seed: int | None = None,
) -> list[tuple[float, float, int, int]]:
    """Continue a melody given as (start_qn, end_qn, pitch, velocity), times in quarter notes
    from the item start. Returns the new notes the same way (after the primer)."""
    import pretty_midi

    import musegen

    pm = pretty_midi.PrettyMIDI(initial_tempo=60.0 / SECONDS_PER_QUARTER)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(metre[0], metre[1], 0.0))
    inst = pretty_midi.Instrument(program=0)
    for start, end, pitch, velocity in notes:
        inst.notes.append(
            pretty_midi.Note(
                velocity, pitch, start * SECONDS_PER_QUARTER, end * SECONDS_PER_QUARTER
            )
        )
    pm.instruments.append(inst)
    buf = io.BytesIO()
    pm.write(buf)
    model = model or musegen.load(MODEL)
    out = model.continue_midi(
        buf.getvalue(),
        bars=bars,
        temperature=TEMPERATURE,
        key=KEY,
        seed=seed,
        continuation_only=True,
    )
    # continuation_only starts at time 0 = the first bar line after the primer's last note
    offset = _continuation_start_qn(notes, metre)
    return [
        (
            offset + n.start / SECONDS_PER_QUARTER,
            offset + n.end / SECONDS_PER_QUARTER,
            n.pitch,
            n.velocity,
        )
        for n in out.instruments[0].notes
    ]


def _continuation_start_qn(notes, metre: tuple[int, int]) -> float:
    """The first bar line (in quarter notes) at or after the primer's last note end."""
    bar = metre[0] * 4 / metre[1]
    end = max(e for _, e, _, _ in notes)
    return -(-round(end * 1e6) // round(bar * 1e6)) * bar


# --------------------------------------------------------------------------- REAPER edges


def read_selected_item(rpr) -> tuple[object, list[tuple[float, float, int, int]], float]:
    """(item, notes in quarter notes from the item start, item start in QN, metre)."""
    if rpr.RPR_CountSelectedMediaItems(0) < 1:
        raise SystemExit("select a MIDI item first")
    item = rpr.RPR_GetSelectedMediaItem(0, 0)
    take = rpr.RPR_GetActiveTake(item)
    if not rpr.RPR_TakeIsMIDI(take):
        raise SystemExit("the selected item is not MIDI")
    position = rpr.RPR_GetMediaItemInfo_Value(item, "D_POSITION")
    item_qn = rpr.RPR_TimeMap2_timeToQN(0, position)
    _, _, numerator, denominator, _ = rpr.RPR_TimeMap_GetTimeSigAtTime(0, position, 0, 0, 0)
    count = rpr.RPR_MIDI_CountEvts(take, 0, 0, 0)[2]
    notes = []
    for i in range(count):
        _, _, _, _, muted, start, end, _, pitch, vel = rpr.RPR_MIDI_GetNote(
            take, i, 0, 0, 0, 0, 0, 0, 0
        )
        if muted:
            continue
        qn = [
            rpr.RPR_TimeMap2_timeToQN(0, rpr.RPR_MIDI_GetProjTimeFromPPQPos(take, p)) - item_qn
            for p in (start, end)
        ]
        notes.append((qn[0], qn[1], int(pitch), int(vel)))
    return item, notes, item_qn, (int(numerator), int(denominator))


def write_new_item(rpr, item, new_notes, item_qn: float) -> object:
    """A new MIDI item on the item's track holding ``new_notes`` (QN from the item start)."""
    track = rpr.RPR_GetMediaItem_Track(item)
    start_t = rpr.RPR_TimeMap2_QNToTime(0, item_qn + min(s for s, _, _, _ in new_notes))
    end_t = rpr.RPR_TimeMap2_QNToTime(0, item_qn + max(e for _, e, _, _ in new_notes))
    new_item = rpr.RPR_CreateNewMIDIItemInProj(track, start_t, end_t, False)
    take = rpr.RPR_GetActiveTake(new_item)
    for s, e, pitch, vel in new_notes:
        ppq = [
            rpr.RPR_MIDI_GetPPQPosFromProjTime(take, rpr.RPR_TimeMap2_QNToTime(0, item_qn + q))
            for q in (s, e)
        ]
        rpr.RPR_MIDI_InsertNote(take, False, False, ppq[0], ppq[1], 0, pitch, vel, True)
    rpr.RPR_MIDI_Sort(take)
    rpr.RPR_UpdateArrange()
    return new_item


def main(rpr) -> None:
    import musegen

    item, notes, item_qn, metre = read_selected_item(rpr)
    if not notes:
        raise SystemExit("the selected item has no notes")
    model = musegen.load(MODEL)
    new = continue_notes(notes, metre, model=model, bars=BARS, seed=SEED)
    write_new_item(rpr, item, new, item_qn)


if __name__ == "__main__":
    import reaper_python as rpr  # provided by REAPER's ReaScript host

    main(rpr)
