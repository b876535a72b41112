"""The demo app as HARP sees it: the same HTTP calls, in the same order, with the same JSON.

HARP 3.0.1 (`src/client/GradioClient.cpp`): ``POST /gradio_api/call/controls`` and read the
event stream; upload the track with ``POST /gradio_api/upload`` (field ``files``); ``POST
/gradio_api/call/process`` with the FileData and the controls' values in the card's order,
read the stream, download each returned file by its ``url``; ``cancel`` likewise.
"""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import pretty_midi
import pytest

from musegen.midi import read_score

pytest.importorskip("gradio")
httpx = pytest.importorskip("httpx")

from musegen.app import Studio, launch  # noqa: E402 - after the skip
from musegen.harp import CONTINUE, REGENERATE  # noqa: E402

JIG = Path(__file__).resolve().parent.parent / "demo" / "examples" / "jig_in_d.mid"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_STUDIO: list[Studio] = []


def app_url_studio() -> Studio:
    """The studio behind the module's server."""
    return _STUDIO[0]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, infill_checkpoints, continuation_checkpoint):
    studio = Studio(
        tmp_path_factory.mktemp("harp"),
        checkpoints={"infiller": infill_checkpoints["lstm"], "plain": continuation_checkpoint},
    )
    port = _free_port()
    app = launch("127.0.0.1", port, block=False, studio=studio)
    url = f"http://127.0.0.1:{port}"
    _STUDIO[:] = [studio]  # what the cancel test slows down
    yield url
    app.close()
    studio.close()


def call(base: str, name: str, data: list) -> tuple[str, object]:
    """One HARP call: POST the data, then read the event stream to its end.
    Returns ("complete", outputs) or ("error", message)."""
    with httpx.Client(timeout=120) as client:
        r = client.post(f"{base}/gradio_api/call/{name}", json={"data": data})
        assert r.status_code == 200, r.text
        event_id = r.json()["event_id"]
        lines = client.get(f"{base}/gradio_api/call/{name}/{event_id}").text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("event:") and line.split(":", 1)[1].strip() in ("complete", "error"):
            kind = line.split(":", 1)[1].strip()
            payload = json.loads(lines[i + 1].removeprefix("data:").strip())
            return kind, payload
    raise AssertionError(f"no complete or error event in {lines}")


def upload(base: str, path: Path) -> dict:
    """HARP's upload: multipart field ``files``, content type audio/midi; -> FileData."""
    files = {"files": (path.name, path.read_bytes(), "audio/midi")}
    r = httpx.post(f"{base}/gradio_api/upload", files=files, timeout=60)
    assert r.status_code == 200, r.text
    return {"path": r.json()[0], "meta": {"_type": "gradio.FileData"}}


def fetch_midi(output: dict) -> pretty_midi.PrettyMIDI:
    assert output["meta"]["_type"] == "gradio.FileData"
    assert output["url"].startswith("http") and output["url"].endswith(".mid")
    r = httpx.get(output["url"], timeout=60)
    assert r.status_code == 200
    return pretty_midi.PrettyMIDI(io.BytesIO(r.content))


def test_controls_card_has_the_shape_harp_reads(app_url):
    kind, (controls,) = call(app_url, "controls", [])
    assert kind == "complete"
    c = controls["card"]
    assert c["name"] == "musegen" and c["author"] and c["description"]
    assert isinstance(c["tags"], list)
    inputs = controls["inputs"]
    assert inputs[0] == {
        "label": "Input MIDI",
        "info": "the clip to work on",
        "required": True,
        "type": "midi_track",
    }
    kinds = {i["type"] for i in inputs}
    assert kinds <= {"midi_track", "slider", "dropdown"}  # what HARP 3 displays
    for i in inputs:
        if i["type"] == "dropdown":  # HARP reads choices as [label, value] pairs
            assert all(isinstance(p, list) and len(p) == 2 for p in i["choices"])
            assert i["value"] in [p[1] for p in i["choices"]]
        if i["type"] == "slider":
            assert i["minimum"] <= i["value"] <= i["maximum"] and i["step"] > 0
    models = next(i for i in inputs if i["label"] == "Model")
    names = [p[0] for p in models["choices"]]
    assert names == ["lstm", "transformer", "mamba", "infiller", "plain"]
    assert [o["type"] for o in controls["outputs"]] == ["midi_track", "json"]


def test_process_continues_a_clip_as_harp_calls_it(app_url):
    clip = upload(app_url, JIG)
    kind, outputs = call(app_url, "process", [clip, "lstm", CONTINUE, 4.0, 1.0, 4.0, 1.0, 7.0])
    assert kind == "complete", outputs
    midi, labels = outputs
    assert all("meta" in o for o in outputs)  # HARP rejects an output without one
    out = fetch_midi(midi)
    mine = pretty_midi.PrettyMIDI(str(JIG))
    assert out.get_end_time() > mine.get_end_time()
    theirs = sorted((round(n.start, 4), n.pitch) for i in out.instruments for n in i.notes)
    kept = sorted((round(n.start, 4), n.pitch) for i in mine.instruments for n in i.notes)
    assert theirs[: len(kept)] == kept  # the clip comes back unchanged, new bars after it
    assert labels["meta"]["_type"] == "pyharp.LabelList"
    (label,) = labels["labels"]
    assert label["label_type"] == "MidiLabel" and "4 new bars" in label["label"]
    assert label["t"] >= mine.get_end_time() - 1e-6 and label["duration"] > 0
    again = fetch_midi(call(app_url, "process", [clip, "lstm", CONTINUE, 4.0, 1, 4, 1.0, 7])[1][0])
    assert [(n.start, n.pitch) for n in again.instruments[0].notes] == [
        (n.start, n.pitch) for n in out.instruments[0].notes
    ]  # the same seed, the same notes


def test_process_regenerates_bars_and_keeps_the_rest(app_url, tmp_path):
    clip = upload(app_url, JIG)
    kind, (midi, labels) = call(
        app_url, "process", [clip, "infiller", REGENERATE, 8.0, 3.0, 4.0, 1.0, 5.0]
    )
    assert kind == "complete"
    path = tmp_path / "out.mid"
    fetch_midi(midi).write(str(path))
    bar = 3 * 960  # 6/8
    lo, hi = 2 * bar, 4 * bar

    def outside(notes):
        return sorted((n.start, n.pitch, n.end) for n in notes if not lo <= n.start < hi)

    mine = read_score(str(JIG), ticks_per_quarter=960).notes
    theirs = read_score(str(path), ticks_per_quarter=960).notes
    assert outside(theirs) == outside(mine)
    assert any(lo <= n.start < hi for n in theirs)
    assert "bars 3-4 rewritten" in labels["labels"][0]["label"]


def test_user_errors_reach_harp_as_messages(app_url):
    clip = upload(app_url, JIG)
    kind, message = call(app_url, "process", [clip, "plain", REGENERATE, 8, 3, 4, 1.0, 0])
    assert kind == "error" and "trained without infilling" in json.dumps(message)
    kind, message = call(app_url, "process", [None, "lstm", CONTINUE, 8, 1, 4, 1.0, 0])
    assert kind == "error" and "no MIDI in the input track" in json.dumps(message)
    kind, message = call(app_url, "process", [clip, "lstm", CONTINUE, 2.5, 1, 4, 1.0, 0])
    assert kind == "error" and "whole number" in json.dumps(message)


def test_cancel_stops_a_running_process_and_the_app_keeps_working(app_url, monkeypatch):
    """HARP's cancel while a process runs: the process ends with "cancelled", at once."""
    import threading
    import time

    runtime = app_url_studio().model("mamba").runtime
    slow_step = runtime.step

    def step(*args):  # a slow model: 32 bars would take many seconds
        time.sleep(0.02)
        return slow_step(*args)

    monkeypatch.setattr(runtime, "step", step)
    clip = upload(app_url, JIG)
    result = {}

    def run() -> None:
        result["process"] = call(app_url, "process", [clip, "mamba", CONTINUE, 32, 1, 4, 1.0, 3])

    worker = threading.Thread(target=run)
    started = time.perf_counter()
    worker.start()
    time.sleep(1.0)  # the process is stepping by now
    kind, outputs = call(app_url, "cancel", [])
    assert kind == "complete"
    worker.join(timeout=30)
    kind, message = result["process"]
    assert kind == "error" and "cancelled" in json.dumps(message)
    assert time.perf_counter() - started < 5  # well short of the 32 bars' time
    monkeypatch.undo()
    kind, outputs = call(app_url, "process", [clip, "lstm", CONTINUE, 1, 1, 4, 1.0, 3])
    assert kind == "complete" and fetch_midi(outputs[0]).instruments
