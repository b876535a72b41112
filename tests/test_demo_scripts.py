"""The DAW examples in demo/, run against a fake REAPER API and a fake MIDI port."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).parent.parent / "demo"


def load_demo(name: str):
    spec = importlib.util.spec_from_file_location(name, DEMO / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class FakeReaper:
    """Just enough of REAPER's ReaScript API: one project at 100 qpm, 960 PPQ per quarter,
    one selected MIDI item at 2 s holding the given notes (in PPQ)."""

    PPQ, QPM, ITEM_START = 960, 100.0, 2.0

    def __init__(self, notes, selection: tuple[float, float] | None = None):
        self.items = {"item0": {"pos": self.ITEM_START, "notes": notes, "track": "track0"}}
        self.created: list[dict] = []
        self.selection = selection or (0.0, 0.0)  # the time selection, in seconds

    # time maps: seconds <-> quarter notes <-> PPQ from the item start
    def RPR_TimeMap2_timeToQN(self, proj, t):
        return t * self.QPM / 60

    def RPR_TimeMap2_QNToTime(self, proj, qn):
        return qn * 60 / self.QPM

    def RPR_MIDI_GetProjTimeFromPPQPos(self, take, ppq):
        return self.items[take]["pos"] + ppq / self.PPQ * 60 / self.QPM

    def RPR_MIDI_GetPPQPosFromProjTime(self, take, t):
        return (t - self.items[take]["pos"]) * self.QPM / 60 * self.PPQ

    def RPR_CountSelectedMediaItems(self, proj):
        return 1

    def RPR_GetSelectedMediaItem(self, proj, i):
        return "item0"

    def RPR_GetActiveTake(self, item):
        return item

    def RPR_TakeIsMIDI(self, take):
        return True

    def RPR_GetMediaItemInfo_Value(self, item, name):
        if name == "D_LENGTH":  # the item ends after its last note
            end = max((e for _, e, _, _ in self.items[item]["notes"]), default=0)
            return end / self.PPQ * 60 / self.QPM
        return self.items[item]["pos"]

    def RPR_MIDI_CountEvts(self, take, a, b, c):
        return (1, take, len(self.items[take]["notes"]), 0, 0)

    def RPR_MIDI_GetNote(self, take, i, *rest):
        start, end, pitch, vel = self.items[take]["notes"][i]
        return (True, take, i, False, False, start, end, 0, pitch, vel)

    def RPR_TimeMap_GetTimeSigAtTime(self, proj, t, num, den, tempo):
        return (None, None, 4, 4, self.QPM)

    def RPR_GetMediaItem_Track(self, item):
        return self.items[item]["track"]

    def RPR_CreateNewMIDIItemInProj(self, track, start, end, qn):
        name = f"item{len(self.items)}"
        self.items[name] = {"pos": start, "end": end, "notes": [], "track": track}
        self.created.append(self.items[name])
        return name

    def RPR_MIDI_InsertNote(self, take, sel, muted, start, end, chan, pitch, vel, nosort):
        self.items[take]["notes"].append((start, end, pitch, vel))

    def RPR_MIDI_Sort(self, take):
        self.items[take]["notes"].sort()

    def RPR_UpdateArrange(self):
        pass

    def RPR_GetSet_LoopTimeRange(self, is_set, is_loop, start, end, autoseek):
        return (is_set, is_loop, *self.selection, autoseek)

    def RPR_MIDI_DeleteNote(self, take, i):
        del self.items[take]["notes"][i]
        return True


def test_reaper_script_continues_the_selected_item():
    reaper = load_demo("reaper_continue")
    reaper.ENGINE_PORT = None  # in REAPER's own Python
    # one 4/4 bar and a half of quarter notes (PPQ 960 per quarter)
    notes = [(i * 960, (i + 1) * 960, p, 90) for i, p in enumerate([62, 64, 66, 67, 69, 71])]
    fake = FakeReaper(notes)
    reaper.BARS, reaper.SEED, reaper.MODEL = 2, 3, "lstm"
    reaper.main(fake)
    (new,) = fake.created
    assert new["track"] == "track0" and new["notes"]
    # the continuation starts at the first bar line after the primer (quarter 8 of the item)
    # and lasts two bars (8 quarters), in the new item's own PPQ
    first_qn = fake.RPR_TimeMap2_timeToQN(0, new["pos"]) - fake.RPR_TimeMap2_timeToQN(0, 2.0)
    starts = [first_qn + s / 960 for s, _, _, _ in new["notes"]]
    assert min(starts) >= 8 - 1e-6 and max(starts) < 16
    assert all(0 <= p <= 127 and e > s for s, e, p, _ in new["notes"])


def test_continue_notes_is_plain_python():
    reaper = load_demo("reaper_continue")
    reaper.ENGINE_PORT, reaper.MODEL = None, "lstm"
    notes = [(0.0, 1.0, 67, 80), (1.0, 2.0, 71, 80), (2.0, 3.5, 74, 80)]
    new = reaper.continue_notes(notes, (3, 4), bars=2, seed=1)
    # the last primer note ends in bar 2 (at 3.5), so the new bars are 3 and 4 (QN 6 to 12)
    assert new and all(6.0 <= s < 12.0 for s, _, _, _ in new)


def test_stream_script_sends_to_a_port(folk_midis):
    script = load_demo("stream_to_port")
    sent = []

    class Port:
        def send(self, msg):
            sent.append(msg)

    from musegen.generate import live

    original = live.time.sleep
    live.time.sleep = lambda s: None  # do not wait in a test
    try:
        n = script.stream(
            str(folk_midis[1]), Port(), model="lstm", bars=1, seed=0, engine_port=None
        )
    finally:
        live.time.sleep = original
    assert n == len(sent) > 0
    assert sum(m.type == "note_on" for m in sent) == sum(m.type == "note_off" for m in sent)


def test_reaper_script_refuses_non_midi_items():
    reaper = load_demo("reaper_continue")
    fake = FakeReaper([])
    fake.RPR_TakeIsMIDI = lambda take: False
    with pytest.raises(SystemExit, match="not MIDI"):
        reaper.read_selected_item(fake)


def _bars_of(notes_ppq, lo_qn, hi_qn):
    """The notes (PPQ 960 from the item start) whose onset lies in [lo_qn, hi_qn), sorted."""
    return sorted(n for n in notes_ppq if lo_qn * 960 <= n[0] < hi_qn * 960)


def test_reaper_script_regenerates_the_time_selection_in_place(infill_checkpoints):
    """A time selection over bars 2-3 of a four-bar item: only notes that start there change."""
    reaper = load_demo("reaper_continue")
    reaper.ENGINE_PORT, reaper.MODEL, reaper.SEED = None, str(infill_checkpoints["lstm"]), 4
    notes = [(i * 480, (i + 1) * 480, 60 + (i * 5) % 12, 90) for i in range(32)]  # 4 bars of 8ths
    qn = 60 / FakeReaper.QPM  # seconds per quarter
    # from the middle of bar 2 to the middle of bar 3 (item at 2 s): bars 2-3
    fake = FakeReaper(list(notes), selection=(2.0 + 6 * qn, 2.0 + 10 * qn))
    reaper.main(fake)
    after = fake.items["item0"]["notes"]
    outside = [n for n in notes if not 4 * 960 <= n[0] < 12 * 960]
    assert sorted(n for n in after if not 4 * 960 <= n[0] < 12 * 960) == sorted(outside)
    new = _bars_of(after, 4, 12)
    assert new and new != _bars_of(notes, 4, 12)  # bars 2-3 were rewritten
    assert not fake.created  # in place: no new item


def test_a_selection_away_from_the_item_means_continue():
    reaper = load_demo("reaper_continue")
    reaper.ENGINE_PORT, reaper.MODEL, reaper.SEED = None, "lstm", 3
    notes = [(i * 960, (i + 1) * 960, p, 90) for i, p in enumerate([62, 64, 66, 67, 69])]
    fake = FakeReaper(list(notes), selection=(0.0, 1.0))  # before the item (at 2 s)
    reaper.main(fake)
    assert fake.items["item0"]["notes"] == notes and len(fake.created) == 1


def test_reaper_bars_of_a_selection():
    reaper = load_demo("reaper_continue")
    assert reaper.bars_of_selection(6.0, 10.0, (4, 4)) == (2, 3)
    assert reaper.bars_of_selection(4.0, 8.0, (4, 4)) == (2, 2)  # ends on a bar line
    assert reaper.bars_of_selection(0.0, 1.0, (6, 8)) == (1, 1)
    assert reaper.bars_of_selection(3.0, 3.5, (6, 8)) == (2, 2)


def test_reaper_script_asks_a_running_engine(monkeypatch):
    """With `musegen serve` running, the script asks it and loads nothing itself."""
    import threading

    from musegen.generate import serve

    server = serve.make_server(0)  # any free port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        reaper = load_demo("reaper_continue")
        reaper.ENGINE_PORT, reaper.MODEL, reaper.SEED = server.server_port, "lstm", 3

        def no_local_work(*args):
            raise AssertionError("the script worked in-process with an engine running")

        monkeypatch.setattr(reaper, "_in_process", no_local_work)
        notes = [(i * 960, (i + 1) * 960, p, 90) for i, p in enumerate([62, 64, 66, 67, 69])]
        fake = FakeReaper(notes)
        reaper.main(fake)
        (new,) = fake.created
        assert new["notes"]
        assert server.RequestHandlerClass.engine.loaded == ["lstm"]
    finally:
        server.shutdown()
        server.server_close()


def test_stream_script_uses_a_running_engine(folk_midis, monkeypatch):
    import threading

    from musegen.generate import live, serve

    server = serve.make_server(0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = load_demo("stream_to_port")
    monkeypatch.setattr(script.musegen, "load", lambda *a, **k: pytest.fail("loaded here"))
    monkeypatch.setattr(live.time, "sleep", lambda s: None)
    sent = []

    class Port:
        def send(self, msg):
            sent.append(msg)

    try:
        n = script.stream(
            str(folk_midis[1]),
            Port(),
            model="lstm",
            bars=1,
            seed=0,
            engine_port=server.server_port,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert n == len(sent) > 0 and any(m.type == "note_on" for m in sent)
