"""`musegen serve`: the engine DAW scripts talk to over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest

from musegen.errors import MuseGenError
from musegen.generate import muse, serve
from musegen.generate.notes import infill_notes
from musegen.options import INFILL_CANDIDATES

MELODY = [[i * 1.0, i + 1.0, p, 90] for i, p in enumerate([62, 64, 66, 67, 69, 71, 73, 74])]


@pytest.fixture(scope="module")
def engine_port():
    server = serve.make_server(0)  # any free port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()
    server.server_close()


def test_health_names_the_loaded_models(engine_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{engine_port}/health") as r:
        health = json.loads(r.read())
    assert health["musegen"] and isinstance(health["models"], list)


def test_continue_returns_new_notes_after_the_clip(engine_port):
    body = {"notes": MELODY, "metre": [4, 4], "bars": 2, "model": "lstm", "seed": 5}
    a = serve.request("/continue", body, port=engine_port)
    b = serve.request("/continue", body, port=engine_port)
    assert a["notes"] == b["notes"] and a["seed"] == 5  # the same seed, the same notes
    starts = [n[0] for n in a["notes"]]
    assert starts and min(starts) >= 8.0 - 1e-6 and max(starts) < 16.0  # bars 3-4
    assert all(0 <= n[2] <= 127 and n[1] > n[0] for n in a["notes"])


def test_a_second_request_loads_nothing(engine_port, monkeypatch):
    serve.request("/continue", {"notes": MELODY, "bars": 1, "model": "lstm"}, port=engine_port)
    calls = []
    monkeypatch.setattr(muse, "load", lambda *a, **k: calls.append(a))
    answer = serve.request(
        "/continue", {"notes": MELODY, "bars": 1, "model": "lstm"}, port=engine_port
    )
    assert answer["notes"] and calls == []


def test_infill_returns_the_notes_of_the_bars(engine_port, infill_checkpoints):
    notes = [[i * 0.5, i * 0.5 + 0.5, 60 + (i * 7) % 12, 90] for i in range(32)]  # 4 bars
    body = {"notes": notes, "first_bar": 2, "last_bar": 3, "seed": 2}
    answer = serve.request(
        "/infill", body | {"model": str(infill_checkpoints["lstm"])}, port=engine_port
    )
    assert answer["notes"] and all(4.0 <= n[0] < 12.0 for n in answer["notes"])
    model = muse.load(infill_checkpoints["lstm"])
    for k in (1, INFILL_CANDIDATES):  # the default, and what a request may ask for
        direct = [list(n) for n in infill_notes(model, notes, (4, 4), 2, 3, seed=2, candidates=k)]
        asked = body | {"model": str(infill_checkpoints["lstm"]), "candidates": k}
        assert serve.request("/infill", asked, port=engine_port)["notes"] == direct
        if k == INFILL_CANDIDATES:
            assert answer["notes"] == direct


@pytest.mark.parametrize(
    "path, body, message",
    [
        ("/continue", {"notes": [], "bars": 2}, "no notes"),
        ("/continue", {"notes": [[0, 1, 300, 90]], "bars": 2}, "out of range"),
        ("/continue", {"notes": MELODY, "bars": 2.5}, "whole number"),
        ("/continue", {"notes": MELODY, "metre": [4, 5]}, "metre"),
        ("/continue", {"notes": MELODY, "model": "nope"}, "nope"),
        ("/nothing", {"notes": MELODY}, "no such request"),
        ("/infill", {"notes": MELODY, "first_bar": 1, "last_bar": 1, "candidates": 0}, "from 1"),
        ("/infill", {"notes": MELODY, "first_bar": 1, "last_bar": 1, "candidates": "4"}, "whole"),
    ],
)
def test_requests_a_caller_can_fix_get_the_message(engine_port, path, body, message):
    with pytest.raises(MuseGenError, match=message):
        serve.request(path, body, port=engine_port)


def test_infill_with_a_continuation_model_gets_the_message(engine_port, continuation_checkpoint):
    body = {"notes": MELODY, "first_bar": 1, "last_bar": 1, "model": str(continuation_checkpoint)}
    with pytest.raises(MuseGenError, match="trained without infilling"):
        serve.request("/infill", body, port=engine_port)


def test_no_engine_means_none(engine_port):
    server = serve.make_server(0)
    free = server.server_port
    server.server_close()  # nothing listens there now
    assert serve.request("/continue", {"notes": MELODY}, port=free) is None


def test_continue_a_midi_file(engine_port):
    import base64
    import io
    from pathlib import Path

    import pretty_midi

    jig = Path(__file__).resolve().parent.parent / "demo" / "examples" / "jig_in_d.mid"
    body = {"midi": base64.b64encode(jig.read_bytes()).decode(), "bars": 2, "model": "lstm"}
    answer = serve.request("/continue", body | {"seed": 1}, port=engine_port)
    new = pretty_midi.PrettyMIDI(io.BytesIO(base64.b64decode(answer["midi"])))
    notes = [n for i in new.instruments for n in i.notes]
    assert notes and min(n.start for n in notes) >= 0  # the new bars alone, from time 0
    with pytest.raises(MuseGenError, match="base64"):
        serve.request("/continue", {"midi": "not base64!"}, port=engine_port)


def _raw(port: int, body: bytes, headers: dict) -> tuple[int, dict]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/continue", body, headers)
    r = conn.getresponse()
    status, payload = r.status, json.loads(r.read() or b"{}")
    conn.close()
    return status, payload


def test_web_pages_cannot_drive_the_engine(engine_port):
    body = json.dumps({"notes": MELODY, "bars": 1, "model": "lstm"}).encode()
    json_type = {"Content-Type": "application/json"}
    status, payload = _raw(engine_port, body, json_type | {"Origin": "http://evil.example"})
    assert status == 403 and "web pages" in payload["error"]
    status, payload = _raw(engine_port, body, json_type | {"Host": "evil.example"})
    assert status == 403 and "127.0.0.1" in payload["error"]
    status, payload = _raw(engine_port, body, {"Content-Type": "text/plain"})
    assert status == 400 and "JSON" in payload["error"]
    status, payload = _raw(engine_port, body, json_type | {"Content-Length": "-1"})
    assert status == 400 and "Content-Length" in payload["error"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"notes": MELODY, "bars": float("inf")}, "whole number"),
        ({"notes": [[0, float("inf"), 60, 90]]}, "out of range"),
        ({"notes": MELODY, "metre": [99999, 4]}, "metre"),
        ({"notes": MELODY, "metre": "68"}, "metre"),
    ],
)
def test_odd_numbers_are_messages_not_failures(engine_port, body, message):
    with pytest.raises(MuseGenError, match=message):
        serve.request("/continue", body | {"model": "lstm"}, port=engine_port)
