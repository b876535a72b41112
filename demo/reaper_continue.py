"""REAPER ReaScript (Python): continue the selected MIDI item, or regenerate the bars of the
time selection inside it, with musegen.

Load this file with Actions > Show action list > New action > Load ReaScript, select a MIDI
item and run the action:

- with no time selection over the item, a new item with the continuation appears right after
  it, on the same track;
- with a time selection over the item, the bars it touches are rewritten in place (the notes
  that start in them are replaced; everything else stays). This needs a model trained with
  infilling, as the shipped ones are.

Where the work happens: when `musegen serve` runs (a terminal, or a login item), the script
asks it over HTTP on 127.0.0.1 and REAPER's Python needs nothing installed; otherwise it loads
musegen into REAPER's Python (Preferences > Plug-ins > ReaScript) and the model, once per run.

The REAPER calls (`RPR_*`) are kept at the edges; the rest is plain Python on notes
(start, end, pitch, velocity) in quarter notes from the item start, tested without REAPER.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

# ---- settings, all in one place ------------------------------------------------------------
MODEL = "transformer"  # lstm | transformer | mamba | a checkpoint dir (regenerating bars needs
#                  a model trained with infilling, as the shipped ones are)
BARS = 4  # bars a continuation adds
TEMPERATURE = 1.0  # below 1 safer, above 1 more adventurous
KEY = "auto"  # "auto" (the item's key), a key such as "D major", or None (any note)
SEED = None  # an int for a repeatable result
ENGINE_PORT = 7862  # where `musegen serve` listens; None: always work in REAPER's Python
# ---------------------------------------------------------------------------------------------


def ask(path: str, payload: dict) -> dict:
    """The engine's answer to ``payload`` ("/continue" or "/infill"); in REAPER's Python when
    no engine is running. Returns {"notes": [...], "seed": ...}."""
    payload = {"model": MODEL, "temperature": TEMPERATURE, "key": KEY, "seed": SEED} | payload
    if ENGINE_PORT is not None:
        req = urllib.request.Request(
            f"http://127.0.0.1:{ENGINE_PORT}{path}",
            json.dumps(payload).encode(),
            {"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:  # the engine refused: say why
            try:
                message = json.loads(e.read() or b"{}").get("error", str(e))
            except ValueError:
                message = f"port {ENGINE_PORT} answered, but not as musegen serve"
            raise SystemExit(message) from None
        except TimeoutError:
            raise SystemExit("musegen serve did not answer in 120 s") from None
        except (urllib.error.URLError, ConnectionError):
            pass  # no engine: do it here
    return _in_process(path, payload)


def _in_process(path: str, payload: dict) -> dict:
    try:
        from musegen.errors import MuseGenError
        from musegen.generate.serve import Engine
    except ImportError:
        raise SystemExit(
            "musegen is not running (start `musegen serve`) nor installed in REAPER's Python"
        ) from None

    try:
        return Engine().handle(path, payload)
    except MuseGenError as e:
        raise SystemExit(str(e)) from None


def continue_notes(notes, metre=(4, 4), *, bars: int | None = None, seed: int | None = None):
    """The notes of a ``bars``-bar continuation (default `BARS`), (start, end, pitch,
    velocity) in quarter notes from the item start, after the item's last note."""
    payload = {"notes": notes, "metre": list(metre), "bars": bars or BARS}
    answer = ask("/continue", payload | ({"seed": seed} if seed is not None else {}))
    return [tuple(n) for n in answer["notes"]]


def regenerate_notes(notes, metre, first_bar: int, last_bar: int, *, seed: int | None = None):
    """The notes that replace bars ``first_bar``-``last_bar`` (from 1, both included)."""
    payload = {"notes": notes, "metre": list(metre), "first_bar": first_bar, "last_bar": last_bar}
    answer = ask("/infill", payload | ({"seed": seed} if seed is not None else {}))
    return [tuple(n) for n in answer["notes"]]


def bars_of_selection(start_qn: float, end_qn: float, metre) -> tuple[int, int]:
    """The bars (from 1) a time selection touches, in quarter notes from the item start."""
    bar = metre[0] * 4 / metre[1]
    first = int(max(start_qn, 0.0) // bar + 1e-9) + 1
    last = max(first, -int(-(end_qn - 1e-9) // bar))
    return first, last


# --------------------------------------------------------------------------- REAPER edges


def read_selected_item(rpr):
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
    return item, _notes(rpr, take, item_qn), item_qn, (int(numerator), int(denominator))


def _notes(rpr, take, item_qn: float) -> list[tuple[float, float, int, int]]:
    """The take's unmuted notes, in its order, in QN from the item start."""
    notes = []
    for i in range(rpr.RPR_MIDI_CountEvts(take, 0, 0, 0)[2]):
        _, _, _, _, muted, start, end, _, pitch, vel = rpr.RPR_MIDI_GetNote(
            take, i, 0, 0, 0, 0, 0, 0, 0
        )
        qn = [
            rpr.RPR_TimeMap2_timeToQN(0, rpr.RPR_MIDI_GetProjTimeFromPPQPos(take, p)) - item_qn
            for p in (start, end)
        ]
        notes.append((qn[0], qn[1], int(pitch), int(vel), bool(muted)))
    return [n[:4] for n in notes if not n[4] and n[0] >= 0]  # not muted, not trimmed away


def time_selection(rpr, item_qn: float, item_end_qn: float) -> tuple[float, float] | None:
    """The time selection in QN from the item start, or None when there is none over the
    item (a selection left elsewhere in the project does not count)."""
    _, _, start, end, _ = rpr.RPR_GetSet_LoopTimeRange(False, False, 0, 0, False)
    if end <= start:
        return None
    lo, hi = (rpr.RPR_TimeMap2_timeToQN(0, t) - item_qn for t in (start, end))
    if hi <= 0 or lo >= item_end_qn:
        return None
    return max(lo, 0.0), min(hi, item_end_qn)


def _insert(rpr, take, notes, item_qn: float) -> None:
    for s, e, pitch, vel in notes:
        ppq = [
            rpr.RPR_MIDI_GetPPQPosFromProjTime(take, rpr.RPR_TimeMap2_QNToTime(0, item_qn + q))
            for q in (s, e)
        ]
        rpr.RPR_MIDI_InsertNote(take, False, False, ppq[0], ppq[1], 0, pitch, vel, True)
    rpr.RPR_MIDI_Sort(take)


def write_new_item(rpr, item, new_notes, item_qn: float):
    """A new MIDI item on the item's track holding ``new_notes`` (QN from the item start)."""
    track = rpr.RPR_GetMediaItem_Track(item)
    start_t = rpr.RPR_TimeMap2_QNToTime(0, item_qn + min(s for s, _, _, _ in new_notes))
    end_t = rpr.RPR_TimeMap2_QNToTime(0, item_qn + max(e for _, e, _, _ in new_notes))
    new_item = rpr.RPR_CreateNewMIDIItemInProj(track, start_t, end_t, False)
    _insert(rpr, rpr.RPR_GetActiveTake(new_item), new_notes, item_qn)
    rpr.RPR_UpdateArrange()
    return new_item


def replace_bars(rpr, item, new_notes, lo_qn: float, hi_qn: float, item_qn: float) -> int:
    """Delete the item's notes that start in [lo_qn, hi_qn), put ``new_notes`` in; returns
    how many notes were deleted."""
    take = rpr.RPR_GetActiveTake(item)
    count = rpr.RPR_MIDI_CountEvts(take, 0, 0, 0)[2]
    doomed = []
    for i in range(count):
        start = rpr.RPR_MIDI_GetNote(take, i, 0, 0, 0, 0, 0, 0, 0)[5]
        qn = rpr.RPR_TimeMap2_timeToQN(0, rpr.RPR_MIDI_GetProjTimeFromPPQPos(take, start))
        if lo_qn - 1e-6 <= qn - item_qn < hi_qn - 1e-6:
            doomed.append(i)
    for i in reversed(doomed):  # from the last, so that the indices stay valid
        rpr.RPR_MIDI_DeleteNote(take, i)
    _insert(rpr, take, new_notes, item_qn)
    rpr.RPR_UpdateArrange()
    return len(doomed)


def main(rpr) -> None:
    item, notes, item_qn, metre = read_selected_item(rpr)
    if not notes:
        raise SystemExit("the selected item has no notes")
    length = rpr.RPR_GetMediaItemInfo_Value(item, "D_LENGTH")
    position = rpr.RPR_GetMediaItemInfo_Value(item, "D_POSITION")
    item_end_qn = rpr.RPR_TimeMap2_timeToQN(0, position + length) - item_qn
    selection = time_selection(rpr, item_qn, item_end_qn)
    if selection is None:
        new = continue_notes(notes, metre)
        if not new:
            raise SystemExit("the model wrote only rests; run it again (or set another SEED)")
        write_new_item(rpr, item, new, item_qn)
        return
    first, last = bars_of_selection(*selection, metre)
    bar = metre[0] * 4 / metre[1]
    new = regenerate_notes(notes, metre, first, last)
    replace_bars(rpr, item, new, (first - 1) * bar, last * bar, item_qn)


if __name__ == "__main__":
    import reaper_python as rpr  # provided by REAPER's ReaScript host

    main(rpr)
