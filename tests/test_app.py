"""The web demo: the engine, the /continue API through gradio_client, and a real browser."""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import wave
from pathlib import Path

import pretty_midi
import pytest

from musegen.app import ALL_TRACKS, KEYS, MAX_VARIATIONS, Studio, parse_track
from musegen.errors import ConfigError, MidiError
from musegen.io.pianoroll import CONTINUATION_COLOUR, PRIMER_COLOUR
from musegen.options import DEFAULT_MODEL, INFILL_CANDIDATES

gr = pytest.importorskip("gradio")
EXAMPLES = Path(__file__).resolve().parent.parent / "demo" / "examples"
JIG = EXAMPLES / "jig_in_d.mid"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _wav_seconds(path: str) -> float:
    with wave.open(path) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getnframes() / w.getframerate()


def _colours(png: str) -> set[tuple[int, int, int]]:
    from PIL import Image

    with Image.open(png) as image:
        return {rgb for _, rgb in image.convert("RGB").getcolors(maxcolors=1 << 24)}


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


@pytest.fixture(scope="module")
def studio(tmp_path_factory, infill_checkpoints, continuation_checkpoint) -> Studio:
    return Studio(
        tmp_path_factory.mktemp("scratch"),
        checkpoints={"infiller": infill_checkpoints["lstm"], "plain": continuation_checkpoint},
    )


# ------------------------------------------------------------------ the engine


def test_continue_renders_midi_audio_and_roll(studio):
    (r,), summary = studio.continue_midi(str(JIG), model="mamba", bars=4, seed=3)
    primer = pretty_midi.PrettyMIDI(str(JIG))
    out = pretty_midi.PrettyMIDI(r.midi)
    n_primer = sum(len(i.notes) for i in primer.instruments)
    assert sum(len(i.notes) for i in out.instruments) > n_primer
    assert out.get_end_time() > primer.get_end_time()
    # the audio lasts as long as the music plus the tail
    assert abs(_wav_seconds(r.audio) - (out.get_end_time() + 1.0)) < 0.05
    # the picture shows both the primer and the continuation colours
    colours = _colours(r.roll)
    assert _rgb(PRIMER_COLOUR) in colours and _rgb(CONTINUATION_COLOUR) in colours
    assert "4 bars with mamba" in summary and " ms " in summary
    assert {Path(p).name for p in (r.midi, r.audio, r.roll)} == {
        f"jig_in_d_mamba_1.{ext}" for ext in ("mid", "wav", "png")
    }
    assert all(Path(p).parent.parent == studio.scratch for p in (r.midi, r.audio, r.roll))


def test_takes_of_a_previewed_clip_render_only_their_new_bars(studio, monkeypatch):
    """The preview renders the clip; Continue and its variations render only the notes they
    add, mixed over the clip's kept audio."""
    from musegen.io import audio

    audio.fluidsynth_available()  # the once-per-process probe renders a note of its own
    rendered: list[int] = []
    for name in ("_fluidsynth", "_plain"):
        real = getattr(audio, name)

        def counting(pm, rate, real=real):
            rendered.append(sum(len(i.notes) for i in pm.instruments))
            return real(pm, rate)

        monkeypatch.setattr(audio, name, counting)
    studio.renders = audio.Renders()
    clip_notes = sum(len(i.notes) for i in pretty_midi.PrettyMIDI(str(JIG)).instruments)
    studio.preview(str(JIG), model="lstm")
    assert rendered == [clip_notes]
    results, _ = studio.continue_midi(str(JIG), model="lstm", bars=2, variations=2, seed=4)
    new = [sum(len(i.notes) for i in pretty_midi.PrettyMIDI(r.midi).instruments) for r in results]
    assert rendered == [clip_notes, *(n - clip_notes for n in new)]
    for r in results:
        end = pretty_midi.PrettyMIDI(r.midi).get_end_time()
        assert abs(_wav_seconds(r.audio) - (end + 1.0)) < 0.05


def test_regenerate_bars_keeps_the_rest_and_marks_the_bars(studio):
    from musegen.midi import read_score

    results, summary = studio.infill(str(JIG), 3, 4, model="infiller", seed=2, variations=2)
    assert len(results) == 2 and "bars 3-4 regenerated with infiller" in summary
    mine = read_score(str(JIG), ticks_per_quarter=960).notes
    q = 960
    bar = 3 * q  # the jig is in 6/8: a bar is three quarter notes
    lo, hi = 2 * bar, 4 * bar
    for r in results:
        got = read_score(r.midi, ticks_per_quarter=960).notes
        assert [n for n in got if not lo <= n.start < hi] == [
            n for n in mine if not lo <= n.start < hi
        ]
        colours = _colours(r.roll)
        assert _rgb(PRIMER_COLOUR) in colours and _rgb(CONTINUATION_COLOUR) in colours
    assert Path(results[0].midi).name == "jig_in_d_bars3-4_infiller_1.mid"
    with pytest.raises(ConfigError, match="trained without infilling"):
        studio.infill(str(JIG), 3, 4, model="plain")
    with pytest.raises(ConfigError, match="upload a MIDI clip"):
        studio.infill(None, 3, 4, model="infiller")
    with pytest.raises(ConfigError, match="outside the clip"):
        studio.infill(str(JIG), 3, 400, model="infiller")


def test_summary_names_the_tracks_read_as_one_part(studio, tmp_path):
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    for name, program, base in (("Flute", 73, 72), ("Bass", 33, 40)):
        inst = pretty_midi.Instrument(program, name=name)
        inst.notes = [pretty_midi.Note(90, base + i % 5, i * 0.5, i * 0.5 + 0.4) for i in range(8)]
        pm.instruments.append(inst)
    path = tmp_path / "duo.mid"
    pm.write(str(path))
    _, summary = studio.continue_midi(str(path), model="lstm", bars=1, seed=1)
    assert "read 2 tracks as one part (Flute, Bass)" in summary
    _, summary = studio.continue_midi(str(path), track=1, model="lstm", bars=1, seed=1)
    assert "tracks as one part" not in summary


def test_variations_differ_and_seed_repeats(studio):
    rows, _ = studio.continue_midi(str(JIG), model="lstm", bars=2, variations=3, seed=5)
    notes = [
        [(n.pitch, round(n.start, 3)) for n in pretty_midi.PrettyMIDI(r.midi).instruments[0].notes]
        for r in rows
    ]
    assert len(rows) == 3 and len({tuple(n) for n in notes}) > 1
    again, _ = studio.continue_midi(str(JIG), model="lstm", bars=2, variations=3, seed=5)
    first = pretty_midi.PrettyMIDI(again[0].midi).instruments[0].notes
    assert [(n.pitch, round(n.start, 3)) for n in first] == notes[0]


def test_from_scratch_and_every_key_choice_is_accepted(studio):
    (r,), _ = studio.continue_midi(None, model="transformer", bars=2, key="none", seed=1)
    assert pretty_midi.PrettyMIDI(r.midi).get_end_time() > 0
    from musegen.generate.theory import parse_key

    for k in KEYS[2:]:
        parse_key(k)


def test_tracks_and_preview(studio):
    assert studio.tracks(str(JIG))[0] == ALL_TRACKS
    assert parse_track(ALL_TRACKS) is None and parse_track("0: Flute (3 notes)") == 0
    with pytest.raises(ConfigError, match="track"):
        parse_track("flute")
    p = studio.preview(str(JIG))
    assert _rgb(PRIMER_COLOUR) in _colours(p.roll)
    assert _wav_seconds(p.audio) > 1.0


def test_the_models_read_an_uploaded_clip_before_continue_is_pressed(studio, monkeypatch):
    """The preview (on upload) and a change of model read the clip in the background as
    Continue will read it: Continue then starts generating at once."""

    def no_read(ids):
        raise AssertionError("Continue read the clip again")

    for model, read_ahead in (
        ("lstm", lambda: studio.preview(str(JIG), None, "lstm")),
        ("mamba", lambda: studio.warm(str(JIG), ALL_TRACKS, "mamba").result()),
    ):
        runtime = studio.model(model).runtime
        runtime.forget()
        read_ahead()
        studio.idle()
        with monkeypatch.context() as patch:
            patch.setattr(runtime, "read", no_read)
            (r,), summary = studio.continue_midi(str(JIG), model=model, bars=2, seed=5)
        assert Path(r.midi).exists() and f"with {model}" in summary
    assert studio.warm(None) is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"variations": 0}, "variations must be 1-4"),
        ({"variations": MAX_VARIATIONS + 1}, "variations must be 1-4"),
        ({"bars": 0}, "bars must be 1-32"),
        ({"model": "gpt"}, "model must be one of"),
        ({"temperature": 0.0}, "temperature"),
        ({"key": "H major"}, "key"),
    ],
)
def test_bad_options_are_user_errors(studio, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        studio.continue_midi(str(JIG), **kwargs)


def test_bad_files_are_user_errors(studio, tmp_path):
    garbage = tmp_path / "garbage.mid"
    garbage.write_bytes(b"this is not a MIDI file")
    with pytest.raises(MidiError, match="not a Standard MIDI File"):
        studio.continue_midi(str(garbage))
    empty = tmp_path / "empty.mid"
    pretty_midi.PrettyMIDI().write(str(empty))
    with pytest.raises(MidiError, match="no notes"):
        studio.continue_midi(str(empty))


def test_drum_only_file_can_still_pick_its_track(studio, tmp_path):
    pm = pretty_midi.PrettyMIDI()
    drums = pretty_midi.Instrument(program=0, is_drum=True, name="kit")
    drums.notes += [pretty_midi.Note(100, 36 + i % 3, i * 0.25, i * 0.25 + 0.1) for i in range(16)]
    pm.instruments.append(drums)
    path = tmp_path / "drums.mid"
    pm.write(str(path))
    choices = studio.tracks(str(path))
    assert len(choices) == 2 and "drums" in choices[1]
    with pytest.raises(MidiError, match="no notes"):
        studio.preview(str(path))  # all tracks = no drums
    assert _wav_seconds(studio.preview(str(path), choices[1]).audio) > 1.0


def test_demo_refuses_files_over_its_limits(studio, tmp_path):
    from musegen.app import DEMO_LIMITS

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0)
    end = DEMO_LIMITS.max_seconds + 100
    inst.notes += [pretty_midi.Note(90, 60, 0.0, 0.5), pretty_midi.Note(90, 62, end, end + 0.5)]
    pm.instruments.append(inst)
    path = tmp_path / "long.mid"
    pm.write(str(path))
    with pytest.raises(MidiError, match="more than the 900 s"):
        studio.continue_midi(str(path))
    with pytest.raises(MidiError, match="more than the 900 s"):
        studio.tracks(str(path))


def test_prune_removes_only_old_files(tmp_path):
    s = Studio(tmp_path)
    old, new = tmp_path / "old", tmp_path / "new"
    for d in (old, new):
        d.mkdir()
        (d / "tune.wav").write_bytes(b"x")
    os.utime(old, (1, 1))
    s.prune()
    assert not old.exists() and (new / "tune.wav").exists()


# ------------------------------------------------------------------ the running app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(studio):
    from musegen.app import launch

    port = _free_port()
    app = launch("127.0.0.1", port, block=False, studio=studio)
    yield f"http://127.0.0.1:{port}/"
    app.close()


def test_continue_endpoint_through_gradio_client(server):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    assert "/continue" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    out = client.predict(handle_file(str(JIG)), api_name="/continue")
    midi, audio, roll, *rest, status = out
    assert rest == [None] * 3 * (MAX_VARIATIONS - 1)
    pm = pretty_midi.PrettyMIDI(io.BytesIO(Path(midi).read_bytes()))
    assert pm.get_end_time() > pretty_midi.PrettyMIDI(str(JIG)).get_end_time()
    assert _wav_seconds(audio) > 1.0
    assert Path(roll).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"8 bars with {DEFAULT_MODEL}" in status

    # two variations with the lstm, all options given by name
    out = client.predict(
        handle_file(str(JIG)),
        track=ALL_TRACKS,
        model="lstm",
        bars=2,
        variations=2,
        key="D major",
        api_name="/continue",
    )
    assert out[3] is not None and out[6] is None and "2 x 2 bars with lstm" in out[-1]


def test_infill_endpoint_through_gradio_client(server):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server, verbose=False)
    assert "/infill" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    out = client.predict(
        handle_file(str(JIG)), model="infiller", first_bar=2, last_bar=3, seed=1, api_name="/infill"
    )
    midi, audio, roll, *rest, status = out
    assert rest == [None] * 3 * (MAX_VARIATIONS - 1) and "bars 2-3 regenerated" in status
    pm = pretty_midi.PrettyMIDI(io.BytesIO(Path(midi).read_bytes()))
    jig = pretty_midi.PrettyMIDI(str(JIG))
    assert abs(pm.get_end_time() - jig.get_end_time()) < 1e-6  # same length: bars replaced
    with pytest.raises(AppError, match="empty range"):
        client.predict(
            handle_file(str(JIG)), model="infiller", first_bar=5, last_bar=2, api_name="/infill"
        )
    with pytest.raises(AppError, match="trained without infilling"):
        client.predict(handle_file(str(JIG)), model="plain", api_name="/infill")


def test_garbage_upload_gets_the_message_and_the_app_keeps_working(server, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server, verbose=False)
    garbage = tmp_path / "song.mid"
    garbage.write_bytes(b"RIFF....WAVEfmt not midi at all")
    with pytest.raises(AppError, match="not a Standard MIDI File"):
        client.predict(handle_file(str(garbage)), api_name="/continue")
    out = client.predict(handle_file(str(JIG)), bars=1, api_name="/continue")
    assert out[0] is not None


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt install chromium)"
)
def test_real_browser_upload_continue_and_see_results(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    shot = Path(os.environ.get("MUSEGEN_SCREENSHOT", tmp_path / "demo.png"))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(server)
            page.locator("#midi-in input[type=file]").set_input_files(str(JIG))
            # the upload shows the melody's own piano roll before anything is generated
            sync_api.expect(page.locator("#primer-roll img")).to_be_visible(timeout=30_000)
            page.locator("#continue").click()
            status = page.locator("#status")
            sync_api.expect(status).to_contain_text(f"8 bars with {DEFAULT_MODEL}", timeout=60_000)
            roll = page.locator("#roll-1 img")
            sync_api.expect(roll).to_be_visible()
            assert (
                page.evaluate("(el) => el.complete && el.naturalWidth", roll.element_handle())
                == 1000
            )
            sync_api.expect(
                page.locator("#audio-1 audio, #audio-1 .waveform-container").first
            ).to_be_attached()
            sync_api.expect(page.locator("#midi-1")).to_contain_text(
                re.compile(rf"jig_in_d_{DEFAULT_MODEL}_1\s*\.mid")
            )
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt install chromium)"
)
def test_real_browser_regenerates_bars(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(server)
            page.locator("#midi-in input[type=file]").set_input_files(str(JIG))
            sync_api.expect(page.locator("#primer-roll img")).to_be_visible(timeout=30_000)
            page.get_by_label("infiller").check()
            page.get_by_text("Regenerate bars inside the clip").click()
            for box, value in (("#from-bar input", "3"), ("#to-bar input", "4")):
                page.locator(box).fill(value)
                page.locator(box).press("Tab")  # commit the number before the click reads it
                sync_api.expect(page.locator(box)).to_have_value(value)
            page.locator("#infill").click()
            status = page.locator("#status")
            sync_api.expect(status).to_contain_text(
                "bars 3-4 regenerated with infiller", timeout=60_000
            )
            sync_api.expect(page.locator("#roll-1 img")).to_be_visible()
            sync_api.expect(page.locator("#midi-1")).to_contain_text(
                re.compile(r"jig_in_d_bars3-4_infiller_1\s*\.mid")
            )
        finally:
            browser.close()


def _load_test():
    import importlib.util

    spec = importlib.util.spec_from_file_location("load_test", EXAMPLES.parent / "load_test.py")
    load_test = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load_test)
    return load_test


def test_launch_announces_its_address_and_no_gradio_hints(studio, capfd):
    from musegen.app import launch

    port = _free_port()
    said: list[str] = []
    app = launch("127.0.0.1", port, block=False, studio=studio, announce=said.append)
    try:
        assert said == [f"http://127.0.0.1:{port}/"]
        out = capfd.readouterr()
        assert "share=True" not in out.out + out.err
    finally:
        app.close()


def test_concurrent_users_and_oversize_upload(server, capsys, fresh_probe):
    """demo/load_test.py against the running app: 4 users at once, then a too-large upload."""
    assert _load_test().main(["--url", server, "--users", "4", "--calls", "1", "--bars", "1"]) == 0
    out = capsys.readouterr().out
    assert "4 answered, 0 errors" in out
    assert "exceeds the maximum file size" in out


def test_concurrent_users_without_libfluidsynth(server, capsys, no_libfluidsynth):
    """The fresh-machine case: 8 users press Continue at once on a server whose FluidSynth
    library is missing; every answer comes back, with the plain synth's audio."""
    from musegen.io import audio

    args = ["--url", server, "--users", "8", "--calls", "1", "--bars", "1"]
    assert _load_test().main(args) == 0
    assert "8 answered, 0 errors" in capsys.readouterr().out
    assert audio.fluidsynth_available() is False


def test_any_server_failure_reaches_the_page_with_its_message(server, studio, monkeypatch):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(studio, "continue_midi", broken)
    client = Client(server, verbose=False)
    with pytest.raises(AppError, match="Something went wrong.*RuntimeError: disk on fire"):
        client.predict(handle_file(str(JIG)), bars=1, api_name="/continue")


def test_seed_is_new_each_press_and_shown(studio):
    seeds = set()
    for _ in range(3):
        _, summary = studio.continue_midi(str(JIG), bars=1, model="lstm")
        seeds.add(re.search(r"seed (\d+)", summary).group(1))
    assert len(seeds) == 3
    seed = int(seeds.pop())
    first, summary = studio.continue_midi(str(JIG), bars=2, model="lstm", seed=seed)
    again, _ = studio.continue_midi(str(JIG), bars=2, model="lstm", seed=seed)
    assert f"seed {seed}" in summary
    assert Path(first[0].midi).read_bytes() == Path(again[0].midi).read_bytes()


def test_the_page_default_seed_draws_a_new_one_each_press(server):
    from gradio_client import Client, handle_file

    from musegen.app import NEW_SEED

    client = Client(server, verbose=False)
    summaries = [
        client.predict(handle_file(str(JIG)), bars=1, seed=NEW_SEED, api_name="/continue")[-1]
        for _ in range(2)
    ]
    seeds = {re.search(r"seed (\d+)", s).group(1) for s in summaries}
    assert len(seeds) == 2


def test_auto_key_is_named_in_the_summary(studio):
    _, summary = studio.continue_midi(str(JIG), bars=1, model="lstm", key="auto", seed=0)
    assert "key D major (detected)" in summary


def test_key_default_matches_the_command_line():
    import inspect

    from musegen.app import DEFAULT_KEY
    from musegen.cli import build_parser
    from musegen.generate.muse import MuseGen

    cli_default = build_parser().parse_args(["generate", "-o", "x.mid"]).key
    assert cli_default == inspect.signature(MuseGen.continue_midi).parameters["key"].default
    assert DEFAULT_KEY == (cli_default or "none")
    assert inspect.signature(Studio.continue_midi).parameters["key"].default == DEFAULT_KEY
    assert inspect.signature(Studio.continue_midi).parameters["seed"].default is None


def test_only_the_latest_reading_ahead_waits_its_turn(studio):
    """Readings queued behind a busy reading thread: a newer one drops the older (the clip
    or the choices changed), so stale readings never take the CPU from a generation."""
    import threading

    release = threading.Event()
    studio._warming.submit(release.wait)  # the reading thread is busy
    first = studio.warm(str(JIG), ALL_TRACKS, "lstm")
    second = studio.warm(str(JIG), ALL_TRACKS, "mamba")
    release.set()
    studio.idle()
    assert first.cancelled() and second.result() is True


def test_bench_demo_times_an_upload_and_a_press(studio):
    from musegen.bench_demo import presses

    times = presses(studio, str(JIG), "lstm", bars=2, rounds=2, pause=0.0, regenerate=(2, 3))
    assert {k: len(v) for k, v in times.items()} == {
        "upload": 2,
        "continue": 2,
        "generating": 2,
        "regenerate, 1 candidate": 2,
        f"regenerate, {INFILL_CANDIDATES} candidates": 2,
    }
    assert all(0 < g < c for g, c in zip(times["generating"], times["continue"], strict=True))
    assert min(times["regenerate, 1 candidate"]) > 0
    quiet = presses(studio, str(JIG), "lstm", bars=2, rounds=1, pause=0.0, regenerate=None)
    assert set(quiet) == {"upload", "continue", "generating"}
