"""Generation with every shipped model: valid MIDI of the asked length, constraints kept,
seeds reproducible, variations distinct, streaming equal to the file, bad input refused."""

from __future__ import annotations

import functools
import io
import subprocess
import sys
from pathlib import Path

import mido
import pretty_midi
import pytest

import musegen
from musegen.errors import ConfigError, MidiError
from musegen.generate.theory import parse_key
from musegen.midi import read_score
from musegen.models import ARCHITECTURES


@pytest.fixture(scope="module", params=ARCHITECTURES)
def model(request) -> musegen.MuseGen:
    return musegen.load(request.param)


@pytest.fixture(scope="module")
def primer(folk_midis) -> Path:
    return folk_midis[3]


def midi_bytes(pm: pretty_midi.PrettyMIDI) -> bytes:
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def assert_valid_midi(pm: pretty_midi.PrettyMIDI) -> None:
    data = midi_bytes(pm)
    mido.MidiFile(file=io.BytesIO(data))  # parses
    again = pretty_midi.PrettyMIDI(io.BytesIO(data))
    notes = [n for inst in again.instruments for n in inst.notes]
    assert notes and all(0 <= n.pitch <= 127 and n.end > n.start for n in notes)


def continuation(model, primer, bars, **kw):
    """(prepared primer, generated ids, notes of the continuation on the grid)."""
    prepared = model.prepare(primer)
    ids = model.generate_ids(prepared, bars=bars, **kw)[0]
    decoded = model.tokenizer.decode_score(prepared.context + ids)
    return prepared, ids, [n for n in decoded.notes if n.start >= prepared.start]


@functools.cache
def float32_model(name: str) -> musegen.MuseGen:
    """A shipped model on its float32 graphs (ONNX Runtime) or torch."""
    return musegen.load(name, precision="float32")


@functools.cache
def torch_model(name: str):
    """The torch decoder of a shipped model."""
    return musegen.load(name, runtime="torch").model


def reference_generate(m, context, n, constraints, sampling, seed):
    """The sampling loop written plainly on the torch model: full masks, the batched torch
    filters and `draw`, one ``rng.random(n)`` per step. The fast loop of `generate` (on the
    model's own runtime) must give the same ids."""
    import numpy as np
    import torch

    from musegen.generate.filters import draw, filtered
    from musegen.generate.sample import _Row, static_mask

    tok, model = m.tokenizer, torch_model(m.name)
    grammar = tok.grammar()
    start = grammar.walk(context)
    rows = [_Row(grammar, start, constraints.bars - 1) for _ in range(n)]
    keep = static_mask(tok, constraints)
    rng = np.random.default_rng(seed)
    with torch.inference_mode():
        window = getattr(model.config, "max_seq_len", None)
        prompt = context if window is None else context[-window:]
        logits, state = model(torch.tensor([prompt]), return_state=True)
        logits = logits[:, -1].expand(n, -1)
        state = state.select(torch.zeros(n, dtype=torch.long))
        while not all(r.done for r in rows):
            masks = np.stack([r.allowed(tok, keep, constraints.max_tokens_per_bar) for r in rows])
            s = sampling
            scores = filtered(
                logits, torch.from_numpy(masks), s.temperature, s.top_k, s.top_p, s.min_p
            )
            u = torch.from_numpy(1.0 - rng.random(n, dtype=np.float32))
            drawn = draw(scores, u=u)
            for r, token in zip(rows, drawn.tolist(), strict=True):
                if not r.done:
                    r.push(tok, token)
            logits, state = model.step(drawn, state)
    return [r.ids for r in rows]


@pytest.mark.parametrize(
    "n, options",
    [(1, {}), (3, {"temperature": 1.3, "top_k": 12}), (2, {"top_p": 0.8, "min_p": 0.05})],
)
def test_fast_sampling_loop_gives_the_reference_loops_ids(model, primer, n, options):
    """On the float32 graphs (the int8 ones are held to them in test_runtime.py)."""
    from musegen.options import Constraints, Sampling

    model = float32_model(model.name)
    prepared = model.prepare(primer)
    constraints, sampling = Constraints(bars=3), Sampling(**options)  # what generate_ids builds
    for seed in (0, 7):
        fast = model.generate_ids(prepared, n=n, bars=3, seed=seed, **options)
        slow = reference_generate(model, prepared.context, n, constraints, sampling, seed)
        assert fast == slow


@pytest.mark.parametrize("bars", [1, 4])
def test_continuation_spans_exactly_the_bars_asked(model, primer, bars):
    prepared, ids, notes = continuation(model, primer, bars, seed=0)
    tok = model.tokenizer
    assert ids[-1] == tok.eos_id and ids.count(tok.eos_id) == 1
    assert ids.count(tok.bar_id) == bars - 1
    bar_ticks = tok.bar_ticks(*prepared.metre)
    assert notes, "the continuation has no notes"
    assert all(prepared.start <= n.start < prepared.start + bars * bar_ticks for n in notes)


def test_output_keeps_primer_and_adds_valid_notes(model, primer):
    out = model.continue_midi(primer, bars=4, seed=1)
    assert_valid_midi(out)
    original = pretty_midi.PrettyMIDI(str(primer))
    kept = [(round(n.start, 6), n.pitch, round(n.end, 6)) for n in original.instruments[0].notes]
    got = sorted((round(n.start, 6), n.pitch, round(n.end, 6)) for n in out.instruments[0].notes)
    assert got[: len(kept)] == sorted(kept)  # the primer comes back unchanged
    assert len(got) > len(kept)
    assert out.instruments[0].program == original.instruments[0].program
    assert [(t.numerator, t.denominator) for t in out.time_signature_changes][:1] == [
        (t.numerator, t.denominator) for t in original.time_signature_changes
    ][:1]


def test_same_seed_same_bytes_and_variations_differ(model, primer):
    a = midi_bytes(model.continue_midi(primer, bars=4, seed=7))
    b = midi_bytes(model.continue_midi(primer, bars=4, seed=7))
    assert a == b
    outs = model.variations(primer, n=4, bars=4, seed=7, continuation_only=True)
    assert len(outs) == 4
    notes = {tuple((n.pitch, round(n.start, 4)) for n in pm.instruments[0].notes) for pm in outs}
    assert len(notes) == 4, "the 4 variations are not all different"


def test_key_constraint_keeps_every_new_pitch_in_key(model, primer):
    key = parse_key("Bb major")
    _, _, notes = continuation(model, primer, 4, seed=3, key="Bb major")
    assert notes and all(n.pitch % 12 in key.pitch_classes for n in notes)
    _, _, auto = continuation(model, primer, 4, seed=3, key="auto", pitch_range=(60, 79))
    assert all(60 <= n.pitch <= 79 for n in auto)


def test_stream_timing_matches_the_written_file(model, primer):
    messages = list(model.stream(primer, bars=4, seed=11, temperature=0.9))
    pm = model.continue_midi(primer, bars=4, seed=11, temperature=0.9, continuation_only=True)
    clock, onsets = 0.0, []
    for m in messages:
        clock += m.time
        if m.type == "note_on":
            onsets.append((round(clock, 6), m.note))
    expected = sorted((round(n.start, 6), n.pitch) for n in pm.instruments[0].notes)
    assert sorted(onsets) == expected
    assert clock == pytest.approx(max(n.end for n in pm.instruments[0].notes))
    assert sum(m.type == "note_off" for m in messages) == len(onsets)


def test_compose_from_scratch(model):
    pm = model.continue_midi(None, bars=2, seed=5)
    assert_valid_midi(pm)
    assert pm.get_end_time() <= 2 * 4 * 0.5 + 1e-6  # two 4/4 bars at 120 qpm at most


def test_every_kind_of_source(model, primer):
    data = primer.read_bytes()
    expected = midi_bytes(model.continue_midi(primer, bars=2, seed=2))
    for source in (str(primer), data, io.BytesIO(data), mido.MidiFile(str(primer))):
        assert midi_bytes(model.continue_midi(source, bars=2, seed=2)) == expected


def test_long_primer_is_handled(model, folk_midis):
    longest = max(folk_midis, key=lambda f: len(read_score(f).notes))
    score = model.score(longest)
    assert score["notes"] > 50 and 0 < score["pitch_bits_per_note"] < score["bits_per_note"]
    assert_valid_midi(model.continue_midi(longest, bars=2, seed=0))


@pytest.mark.slow
def test_real_odd_files_continue_or_raise_midi_error(model, real_midis):
    continued = 0
    for f in real_midis:
        try:
            pm = model.continue_midi(f, bars=2, seed=0, continuation_only=True)
        except MidiError:
            continue
        assert_valid_midi(pm)
        continued += 1
    assert continued >= len(real_midis) // 2


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(bars=0), "bars"),
        (dict(bars=1000), "bars"),
        (dict(temperature=0), "temperature"),
        (dict(top_p=2.0), "top_p"),
        (dict(key="Q minor"), "key"),
        (dict(pitch_range=(80, 60)), "pitch range"),
    ],
)
def test_bad_arguments_say_the_allowed_range(model, primer, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        model.continue_midi(primer, **kwargs)


def test_bad_variations_count(model, primer):
    with pytest.raises(ConfigError, match="variations"):
        model.variations(primer, n=0)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "musegen", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_generate_writes_variations(tmp_path, primer):
    out = tmp_path / "out.mid"
    r = run_cli(
        "generate",
        str(primer),
        "-o",
        str(out),
        "--model",
        "lstm",
        "--bars",
        "2",
        "--variations",
        "2",
        "--seed",
        "1",
        "--key",
        "auto",
    )
    assert r.returncode == 0, r.stderr
    files = [tmp_path / "out_1.mid", tmp_path / "out_2.mid"]
    for f in files:
        assert_valid_midi(pretty_midi.PrettyMIDI(str(f)))
    assert files[0].read_bytes() != files[1].read_bytes()


@pytest.mark.parametrize(
    "content", [b"", b"MThd garbage", b"not midi at all", b"MThd\x00\x00\x00\x06\x00\x01"]
)
def test_cli_bad_primer_is_one_line_exit_2(tmp_path, content):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(content)
    r = run_cli("generate", str(bad), "-o", str(tmp_path / "o.mid"), "--model", "lstm")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("musegen generate: ")


def test_generation_threads_default_env_and_errors(monkeypatch):
    from musegen.options import GENERATION_THREADS, THREADS_ENV, generation_threads

    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert generation_threads() == GENERATION_THREADS == 1
    assert generation_threads(3) == 3 and generation_threads(0) == 0
    monkeypatch.setenv(THREADS_ENV, "2")
    assert generation_threads() == 2 and generation_threads(1) == 1  # the argument wins
    for bad in ("two", "-1", "1.5"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(ConfigError, match="MUSEGEN_THREADS must be a whole number"):
            generation_threads()
    with pytest.raises(ConfigError, match="threads must be a whole number"):
        generation_threads(-2)


def test_load_sets_torch_threads_unless_told_not_to(monkeypatch):
    import torch

    from musegen.options import THREADS_ENV

    monkeypatch.delenv(THREADS_ENV, raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        musegen.load("lstm", runtime="torch", threads=0)
        assert torch.get_num_threads() == 2
        musegen.load("lstm", runtime="torch")
        assert torch.get_num_threads() == 1
        monkeypatch.setenv(THREADS_ENV, "2")
        musegen.load("lstm", runtime="torch")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_cli_threads_errors_are_one_line(tmp_path):
    out = str(tmp_path / "o.mid")
    r = subprocess.run(
        [sys.executable, "-m", "musegen", "generate", "-o", out, "--threads", "-1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "threads" in r.stderr


def test_the_primer_keeps_the_grammar_state_it_ends_in(model, primer):
    """`prepare` keeps the state after the context, so generating and decoding need not walk
    the primer again: it is the state a walk from the start reaches."""
    prepared = model.prepare(primer)
    assert prepared.state == model.tokenizer.grammar().walk(prepared.context)
    scratch = model.prepare(None)
    assert scratch.state is None
    tok = model.tokenizer
    assert scratch.grammar_state(tok) == tok.grammar().walk([tok.bos_id])
