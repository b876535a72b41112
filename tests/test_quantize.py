"""Played-in MIDI: the quantizer finds the grid a clip was played to, snaps it for the model,
and never moves the user's own notes in the output."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pretty_midi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import musegen
from musegen.errors import ConfigError
from musegen.midi import Note, Score, midi_bytes
from musegen.quantize import GRIDS, MODES, TICKS_PER_QUARTER, detect_grid, quantize

FINE = 960  # ticks per quarter of the clips made here (as a DAW writes them)
BY_NAME = {g.name: g for g in GRIDS}


def played_in(grid: str, jitter: float, seed: int, notes: int = 40) -> tuple[Score, list[float]]:
    """A melody on ``grid`` (onsets in quarter notes, returned too), played with Gaussian
    timing jitter of ``jitter`` quarter notes (0.02 = 10 ms at 120 bpm) on onsets and ends."""
    rng = np.random.default_rng(seed)
    points = BY_NAME[grid].points(notes * 2)
    steps = np.cumsum(rng.integers(1, 3, size=notes + 1))  # 1 or 2 grid points apart
    onsets = [float(points[i]) for i in steps[:-1]]
    ends = [float(points[i]) for i in steps[1:]]
    played = []
    for k, (a, b) in enumerate(zip(onsets, ends, strict=True)):
        start = max(0.0, a + rng.normal(0, jitter))
        end = max(start + 0.05, b - 0.05 + rng.normal(0, jitter))  # legato, a little short
        pitch = 60 + [0, 2, 4, 5, 7, 9, 7, 4][k % 8]
        played.append(Note(round(start * FINE), pitch, round((end - start) * FINE), 90))
    return Score(FINE, sorted(played), tempos=[(0, 120.0)]), onsets


@pytest.mark.parametrize("grid", ["1/8", "1/8 swing", "1/8T", "1/16", "1/16T"])
@pytest.mark.parametrize("seed", range(4))
def test_recovers_the_grid_of_a_jittered_clip_exactly(grid, seed):
    clip, onsets = played_in(grid, jitter=0.02, seed=seed)
    snapped, used = quantize(clip)
    assert used is not None and used.name == grid
    assert [n.start / FINE for n in snapped.notes] == pytest.approx(onsets)
    assert all(n.duration > 0 for n in snapped.notes)
    assert [n.pitch for n in snapped.notes] == [n.pitch for n in clip.notes]


@pytest.mark.parametrize("grid", ["1/8", "1/16", "1/8T", "1/8 swing"])
def test_an_on_grid_clip_is_left_as_it_is(grid):
    clip, _ = played_in(grid, jitter=0.0, seed=1)
    on_grid = quantize(clip, "1/32")[0] if grid != "1/8 swing" else quantize(clip, grid)[0]
    snapped, used = quantize(on_grid)
    assert used is None and snapped is on_grid


def test_written_music_with_a_few_ornaments_or_late_onsets_is_left_alone():
    """Only played-in timing is snapped: a written clip with grace notes (off the grid) or
    with every onset a source tick late (abc2midi) is read as it is."""
    clip, _ = played_in("1/8T", jitter=0.0, seed=2)
    exact = quantize(clip, "1/8T")[0]
    graces = [Note(n.start - 15, n.pitch + 2, 15) for n in exact.notes[::6] if n.start >= 15]
    ornamented = replace(exact, notes=sorted(exact.notes + graces))  # 1/64 grace notes
    assert quantize(ornamented) == (ornamented, None)
    late = replace(exact, notes=[replace(n, start=n.start + 2) for n in exact.notes])
    assert quantize(late) == (late, None)


def test_a_forced_grid_and_off(tmp_path):
    clip, _ = played_in("1/16", jitter=0.02, seed=0)
    assert quantize(clip, "off") == (clip, None)
    snapped, used = quantize(clip, "1/8T")
    assert used is BY_NAME["1/8T"]
    assert all((n.start * 3) % FINE == 0 for n in snapped.notes)  # on eighth-note triplets
    with pytest.raises(ConfigError, match="1/16T"):
        quantize(clip, "1/13")
    assert quantize(Score(FINE), "auto") == (Score(FINE), None)


def test_a_bad_mode_is_refused_even_without_a_primer(model):
    with pytest.raises(ConfigError, match="quantize must be one of"):
        model.prepare(None, quantize="sometimes")


def test_the_coarsest_exact_grid_wins():
    eighths = np.arange(32) / 2
    assert detect_grid(eighths).name == "1/8"
    assert detect_grid(np.arange(16.0)).name == "1/4"
    assert detect_grid(np.concatenate([eighths, [0.25, 4.75]])).name == "1/16"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 40 * FINE), st.integers(1, 4 * FINE), st.integers(21, 108)),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from(MODES),
)
def test_any_timing_snaps_onto_the_chosen_grid(raw, mode):
    clip = Score(FINE, sorted(Note(s, p, d) for s, d, p in raw))
    snapped, used = quantize(clip, mode)
    assert len(snapped.notes) == len(clip.notes)
    if used is None:
        assert snapped is clip
        return
    per_tick = FINE // TICKS_PER_QUARTER
    for n in snapped.notes:
        assert n.duration > 0
        assert (n.start // per_tick) % TICKS_PER_QUARTER in used.positions
        assert n.start % per_tick == 0 and n.end % per_tick == 0


# ------------------------------------------------------------------ through the model


@pytest.fixture(scope="module")
def model() -> musegen.MuseGen:
    return musegen.load("transformer")


def _notes(pm: pretty_midi.PrettyMIDI, before: float) -> list[float]:
    """(start, end, pitch) of every note before ``before`` seconds, flattened."""
    notes = sorted(
        (n.start, n.end, n.pitch) for inst in pm.instruments for n in inst.notes if n.start < before
    )
    return [x for note in notes for x in note]


def test_played_in_primer_is_read_quantized_and_comes_back_untouched(model):
    clip, _ = played_in("1/16", jitter=0.02, seed=3)
    data = midi_bytes(clip)
    primer = model.prepare(data)
    assert primer.quantized == "1/16"
    assert all(n.start % 6 == 0 for n in primer.grid.notes)  # sixteenths of 24 ticks
    assert model.prepare(data, quantize="off").quantized is None
    out = model.continue_midi(data, bars=2, seed=0)
    given = pretty_midi.PrettyMIDI(io.BytesIO(data))
    split = primer.start_seconds
    # the user's timing, to well under a tick of 960 per quarter (0.5 ms here)
    assert _notes(out, split) == pytest.approx(_notes(given, split), abs=1e-5)


def test_quantizing_a_played_in_clip_lowers_its_bits_per_note(model):
    """The model reads the snapped clip far better than the raw played-in one."""
    clip, _ = played_in("1/16", jitter=0.02, seed=5, notes=64)
    data = midi_bytes(clip)
    snapped = model.score(data)
    raw = model.score(data, quantize="off")
    assert snapped["notes"] == raw["notes"] == 64
    assert snapped["bits_per_note"] < raw["bits_per_note"] - 2.0


def test_cli_says_what_it_detected_and_the_default_matches_the_library(tmp_path, capsys):
    import inspect

    from musegen.cli import build_parser, main
    from musegen.generate.muse import MuseGen

    cli_default = build_parser().parse_args(["generate", "-o", "x.mid"]).quantize
    assert cli_default == inspect.signature(MuseGen.prepare).parameters["quantize"].default
    clip, _ = played_in("1/8T", jitter=0.02, seed=2)
    src = tmp_path / "played.mid"
    src.write_bytes(midi_bytes(clip))
    out = str(tmp_path / "out.mid")
    args = ["generate", str(src), "-o", out, "--model", "lstm", "--bars", "1", "--seed", "1"]
    assert main(args) == 0
    assert "read it on a 1/8T grid" in capsys.readouterr().out
    assert main([*args, "--quantize", "off"]) == 0
    assert "grid" not in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:  # refused while parsing, before a model loads
        main([*args, "--quantize", "1/13"])
    assert e.value.code == 2
    assert "quantize must be one of auto, off" in capsys.readouterr().err


def test_demo_summary_names_the_grid(tmp_path):
    pytest.importorskip("gradio")
    from musegen.app import Studio

    clip, _ = played_in("1/8 swing", jitter=0.02, seed=4)
    src = tmp_path / "swing.mid"
    src.write_bytes(midi_bytes(clip))
    studio = Studio(tmp_path / "scratch")
    _, summary = studio.continue_midi(str(src), bars=1, model="lstm", seed=0)
    assert "read on a 1/8 swing grid" in summary
    _, summary = studio.continue_midi(str(src), bars=1, model="lstm", seed=0, quantize="off")
    assert "grid" not in summary
