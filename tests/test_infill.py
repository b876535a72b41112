"""Infilling: the arrangement of a gap, the training mix, and `MuseGen.infill` / `bridge` with
every architecture (tiny models trained here with the infilling mix)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
from conftest import INFILL_FORM_OF
from corpus_helpers import make_corpus

import musegen
from musegen.data import InfillMix, Transposer, tokenize_split, training_windows
from musegen.errors import ConfigError, TokenError
from musegen.midi import Note, Score, midi_bytes, read_score
from musegen.models import ARCHITECTURES
from musegen.options import MAX_GAP_BARS
from musegen.quantize import FINE_TICKS_PER_QUARTER
from musegen.tokens.infill import FORMS, arrange, split_bars
from musegen.tokens.tokenizer import Tokenizer
from musegen.train import TrainConfig, train

TOK = Tokenizer(infill=True)


# -- tokens ---------------------------------------------------------------------------------


def test_infill_tokens_come_last_and_old_configs_load_without_them():
    plain = Tokenizer()
    assert TOK.vocab[: plain.vocab_size] == plain.vocab
    assert TOK.vocab[plain.vocab_size :] == ["FILL", "SEP"]
    assert Tokenizer.from_dict(TOK.to_dict()) == TOK
    old = plain.to_dict()
    assert "infill" not in old and not Tokenizer.from_dict(old).infill


def test_grammar_never_allows_fill_or_sep(folk_midis):
    g = TOK.grammar()
    ids = TOK.encode(folk_midis[0])
    state = g.start()
    for t in ids:
        mask = g.allowed(state)
        assert not mask[TOK.fill_id] and not mask[TOK.sep_id]
        state = g.advance(state, t)
    with pytest.raises(TokenError):
        TOK.decode_score(ids[:5] + [TOK.fill_id])


@pytest.mark.parametrize("form", FORMS)
def test_arrangement_reassembles_the_tune_for_every_gap(folk_midis, form):
    rng = np.random.default_rng(0)
    for path in folk_midis[:12]:
        ids = TOK.encode(path)
        bars = split_bars(TOK, ids)
        for _ in range(5):
            start = int(rng.integers(0, len(bars)))
            end = int(rng.integers(start + 1, len(bars) + 1))
            a = arrange(TOK, bars, start, end, form)
            # the grammar's view and the gap put back give the plain tune exactly
            assert a.plain_before + a.gap + bars.after(end, len(bars)) + [TOK.eos_id] == ids
            assert a.context.count(TOK.fill_id) == end - start
            assert a.context.count(TOK.sep_id) == 1 and a.context[0] == TOK.bos_id
            assert a.opening[0] == TOK.bar_id
            seq = a.training_sequence(TOK.eos_id)
            after_sep = seq[seq.index(TOK.sep_id) + 1 :]
            if form == "psm":
                assert after_sep == a.opening + a.gap + [TOK.eos_id]
            # every segment opens with its metre: the context names a TIMESIG per side
            timesigs = sum(TOK.family_of(t) == "TIMESIG" for t in a.context)
            assert timesigs >= (start > 0) + (end < len(bars))


def test_tempo_tokens_open_the_gap_as_the_plain_sequence_does():
    tok = Tokenizer(use_tempo=True, infill=True)
    q = 24
    notes = [Note(i * q, 60 + i % 7, q) for i in range(40)]
    score = Score(q, notes, time_signatures=[(0, 4, 4), (16 * q, 3, 4)], tempos=[(0, 100.0)])
    score.tempos.append((28 * q, 140.0))
    ids = tok.encode_score(score)
    bars = split_bars(tok, ids)
    for start in range(len(bars)):
        for form in FORMS:
            a = arrange(tok, bars, start, start + 1, form)
            tok.grammar().walk(a.plain_before)  # the grammar accepts how the gap opens
            assert a.plain_before + a.gap + bars.after(start + 1, len(bars)) + [tok.eos_id] == ids


def test_arrange_refuses_a_plain_tokenizer_and_a_bad_gap(folk_midis):
    plain = Tokenizer()
    bars = split_bars(plain, plain.encode(folk_midis[0]))
    with pytest.raises(ConfigError, match="infill=True"):
        arrange(plain, bars, 0, 1, "psm")
    with pytest.raises(ConfigError, match="form"):
        arrange(TOK, bars, 0, 1, "mps")
    with pytest.raises(ConfigError, match="not inside"):
        arrange(TOK, bars, 2, 2, "psm")


@pytest.mark.parametrize("form", FORMS)
def test_training_mix_holds_whole_examples(tmp_path, form):
    corpus = make_corpus(tmp_path / "c", tunes=24)
    arrays = tokenize_split(corpus, "train", TOK, progress=False)
    lo, hi = int(TOK.pitch_ids[0]), int(TOK.pitch_ids[-1])
    mix = InfillMix(TOK, 0.5, form)
    batches = training_windows(
        arrays, 128, 32, np.random.default_rng(1), Transposer(lo, hi, 6), mix
    )
    batch = next(batches)
    assert batch.shape == (32, 129)
    rows = [r for r in batch if (r == TOK.sep_id).any()]
    assert 6 <= len(rows) <= 26  # about half
    for r in rows:
        r = r.tolist()
        sep = r.index(TOK.sep_id)
        fills = r[:sep].count(TOK.fill_id)
        eos = r.index(TOK.eos_id, sep)
        assert r[0] == TOK.bos_id and 1 <= fills <= MAX_GAP_BARS
        written = r[sep + 1 : eos].count(TOK.bar_id)  # spm: the prefix, then the gap
        assert written == fills if form == "psm" else written >= fills
        assert r[eos + 1] == TOK.bos_id  # the stream after an example starts with a tune
        assert all(lo <= t <= hi for t in r if TOK.family_of(t) == "PITCH")
    again = next(
        training_windows(arrays, 128, 32, np.random.default_rng(1), Transposer(lo, hi, 6), mix)
    )
    assert (again == batch).all()  # deterministic given the generator
    with pytest.raises(Exception, match="between 0 and 1"):
        InfillMix(TOK, 1.5, "psm")


# -- models ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module", params=ARCHITECTURES)
def model(request, infill_checkpoints) -> musegen.MuseGen:
    return musegen.load(infill_checkpoints[request.param])


@pytest.fixture(scope="module")
def clip(folk_midis) -> bytes:
    """A real tune of at least 12 bars."""
    for path in folk_midis:
        if len(split_bars(TOK, TOK.encode(path))) >= 12:
            return path.read_bytes()
    pytest.skip("no folk tune of 12 bars")


def fine_notes(source) -> list[Note]:
    if isinstance(source, pretty_midi.PrettyMIDI):
        buf = io.BytesIO()
        source.write(buf)
        source = buf.getvalue()
    return read_score(source, ticks_per_quarter=FINE_TICKS_PER_QUARTER).notes


def test_model_knows_its_form(model):
    assert model.infill_form == INFILL_FORM_OF[model.arch]


@pytest.mark.parametrize("first,last", [(1, 2), (5, 8), (10, 12)])
def test_infill_has_exactly_the_bars_and_keeps_everything_else(model, clip, first, last):
    primer = model.prepare(clip)
    gap = model.plan_infill(primer, first, last)
    ids = model.infill_ids(primer, gap, seed=3)[0]
    assert ids[-1] == model.tokenizer.eos_id
    assert ids.count(model.tokenizer.bar_id) == last - first  # bars after the opening one
    assert gap.end - gap.start == (last - first + 1) * gap.state.bar_ticks
    out = model.infill_to_midi(primer, gap, ids)
    f = FINE_TICKS_PER_QUARTER // model.tokenizer.ticks_per_quarter
    lo, hi = gap.start * f, gap.end * f
    before = [n for n in fine_notes(clip) if not lo <= n.start < hi]
    after = fine_notes(out)
    assert [n for n in after if not lo <= n.start < hi] == before  # the user's notes, unchanged
    new = [n for n in after if lo <= n.start < hi]
    assert all(n.end <= hi for n in new)


def test_infill_seeds_reproduce_and_variations_differ(model, clip):
    one = midi_bytes_of(model.infill(clip, 3, 6, seed=11))
    assert midi_bytes_of(model.infill(clip, 3, 6, seed=11)) == one
    outs = model.infill_variations(clip, 3, 6, n=3, seed=11)
    assert len({midi_bytes_of(o) for o in outs}) == 3


def midi_bytes_of(pm: pretty_midi.PrettyMIDI) -> bytes:
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def test_every_kind_of_source_infills_alike(model, clip):
    import mido

    expected = midi_bytes_of(model.infill(clip, 2, 3, seed=4))
    for source in (io.BytesIO(clip), mido.MidiFile(file=io.BytesIO(clip))):
        assert midi_bytes_of(model.infill(source, 2, 3, seed=4)) == expected


@pytest.mark.parametrize(
    "first,last,message",
    [
        (0, 2, "outside the clip"),
        (3, 99, "outside the clip"),
        (5, 4, "empty range"),
        (1, MAX_GAP_BARS + 1, "at most"),
        (1.5, 2, "whole number"),
    ],
)
def test_bad_bar_ranges_say_what_to_do(model, clip, first, last, message):
    if message == "at most" and len(split_bars(TOK, TOK.encode(clip))) <= MAX_GAP_BARS:
        clip = clip_twice(clip)
    with pytest.raises(ConfigError, match=message):
        model.infill(clip, first, last)


def clip_twice(clip: bytes) -> bytes:
    s = read_score(clip, ticks_per_quarter=FINE_TICKS_PER_QUARTER)
    shift = s.end + 4 * FINE_TICKS_PER_QUARTER
    notes = s.notes + [Note(n.start + shift, n.pitch, n.duration, n.velocity) for n in s.notes]
    return midi_bytes(Score(s.ticks_per_quarter, notes, s.tracks, s.time_signatures, s.tempos))


def test_a_gap_across_a_metre_change_is_refused(model):
    q = 24
    notes = [Note(i * q, 60 + i % 5, q) for i in range(8 * 4 + 6 * 3)]
    score = Score(q, notes, time_signatures=[(0, 4, 4), (8 * 4 * q, 3, 4)])
    with pytest.raises(ConfigError, match="metre changes"):
        model.infill(midi_bytes(score), 7, 10)
    out = model.infill(midi_bytes(score), 9, 11, seed=0)  # inside the 3/4 part: fine
    assert [ts.numerator for ts in out.time_signature_changes] == [4, 3]


def test_other_tracks_and_drums_come_back_whole(model):
    import mido

    def track(channel, program, pitches, name):
        t = mido.MidiTrack([mido.MetaMessage("track_name", name=name)])
        t.append(mido.Message("program_change", channel=channel, program=program, time=0))
        for i in range(32):  # eight 4/4 bars of quarter notes
            p = pitches[i % len(pitches)]
            t.append(mido.Message("note_on", channel=channel, note=p, velocity=80, time=0))
            t.append(mido.Message("note_off", channel=channel, note=p, velocity=0, time=480))
        return t

    mid = mido.MidiFile(ticks_per_beat=480)
    mid.tracks += [
        track(0, 0, [72, 74, 76, 77], "Lead"),
        track(1, 33, [40, 43], "Bass"),
        track(9, 0, [36, 42], "Drums"),
    ]
    buf = io.BytesIO()
    mid.save(file=buf)
    clip = buf.getvalue()
    f = FINE_TICKS_PER_QUARTER
    lo, hi = 2 * 4 * f, 4 * 4 * f  # bars 3-4
    mine = read_score_all(clip)
    for chosen in (None, 1):
        out = read_score_all(model.infill(clip, 3, 4, seed=1, track=chosen))
        assert set(out) == {"Lead", "Bass", "Drums"}
        assert out["Drums"] == mine["Drums"]  # never read by the model: whole
        kept = ["Lead", "Bass"] if chosen is None else ["Bass"]
        for name in ["Lead", "Bass"]:
            if name in kept:  # read by the model: unchanged outside bars 3-4
                outside = [n for n in out[name] if not lo <= n[0] < hi]
                assert outside == [n for n in mine[name] if not lo <= n[0] < hi]
            else:
                assert out[name] == mine[name]


def read_score_all(source) -> dict[str, list[tuple[int, int, int]]]:
    """(start, pitch, duration) of every track's notes at 960 per quarter, by track name."""
    from musegen.midi import list_tracks

    if isinstance(source, pretty_midi.PrettyMIDI):
        source = midi_bytes_of(source)
    out = {}
    for info in list_tracks(source):
        s = read_score(source, track=info.index, ticks_per_quarter=FINE_TICKS_PER_QUARTER)
        out[info.name] = [(n.start, n.pitch, n.duration) for n in s.notes]
    return out


def test_played_in_notes_outside_the_gap_stay_as_played(model, clip):
    from musegen.bench_quantize import play_in

    score = read_score(clip, ticks_per_quarter=FINE_TICKS_PER_QUARTER)
    played = midi_bytes(play_in(score, 15.0, np.random.default_rng(0)))
    primer = model.prepare(played)
    assert primer.quantized  # read on a grid
    gap = model.plan_infill(primer, 4, 5)
    out = model.infill_to_midi(primer, gap, model.infill_ids(primer, gap, seed=0)[0])
    f = FINE_TICKS_PER_QUARTER // model.tokenizer.ticks_per_quarter
    got = fine_notes(out)
    mine = fine_notes(played)
    kept = [n for n in mine if n in got]
    new = [n for n in got if n not in mine]
    assert len(kept) >= len(mine) - 12  # the gap's own notes (two bars) at most are replaced
    assert all(gap.start * f - f <= n.start < gap.end * f for n in new)


def test_clips_whose_bars_the_model_reads_differently_are_refused(model):
    q = 24
    notes = [Note(i * q, 60 + i % 5, q) for i in range(36)]
    nine_four = midi_bytes(Score(q, notes, time_signatures=[(0, 9, 4)]))
    with pytest.raises(ConfigError, match="9/4"):
        model.infill(nine_four, 1, 2)
    with pytest.raises(ConfigError, match="needs a clip"):
        model.infill(None, 1, 2)


def test_bridge_from_a_clip_ending_mid_bar_into_another_metre(model):
    q = 24
    a = Score(q, [Note(i * q, 62 + i % 4, q) for i in range(10)])  # 4/4, ends in bar 3
    b = Score(q, [Note(i * q, 67 - i % 3, q) for i in range(9)], time_signatures=[(0, 3, 4)])
    out = model.bridge(midi_bytes(a), midi_bytes(b), bars=2, seed=0)
    f = FINE_TICKS_PER_QUARTER // q
    offset = (3 * 4 + 2 * 4) * q * f  # after bar 3, two bars of 4/4
    got = fine_notes(out)
    assert [n for n in got if n.start < 3 * 4 * q * f] == fine_notes(midi_bytes(a))
    assert [(n.start - offset, n.pitch) for n in got if n.start >= offset] == [
        (n.start * f, n.pitch) for n in b.notes
    ]
    assert [(ts.numerator, ts.denominator) for ts in out.time_signature_changes] == [(4, 4), (3, 4)]


def test_bridge_is_a_then_the_new_bars_then_b(model, folk_midis):
    a, b = folk_midis[0].read_bytes(), folk_midis[1].read_bytes()
    out = model.bridge(a, b, bars=3, seed=2)
    na, nb, got = fine_notes(a), fine_notes(b), fine_notes(out)
    primer = model.prepare(a)
    f = FINE_TICKS_PER_QUARTER // model.tokenizer.ticks_per_quarter
    gap_start = primer.start * f
    offset = gap_start + 3 * model.tokenizer.bar_ticks(*primer.metre) * f
    assert [n for n in got if n.start < gap_start] == na
    shifted = [Note(n.start + offset, n.pitch, n.duration, n.velocity) for n in nb]
    assert [(n.start, n.pitch, n.duration) for n in got if n.start >= offset] == [
        (n.start, n.pitch, n.duration) for n in sorted(shifted)
    ]
    new = [n for n in got if gap_start <= n.start < offset]
    assert all(n.end <= offset for n in new)
    outs = model.bridge(a, b, bars=2, n=2, seed=2)
    assert len(outs) == 2
    with pytest.raises(ConfigError, match="from 1 to"):
        model.bridge(a, b, bars=0)


def test_models_without_infilling_say_so(clip, continuation_checkpoint):
    plain = musegen.load(continuation_checkpoint)
    assert plain.infill_form is None
    with pytest.raises(ConfigError, match="trained without infilling"):
        plain.infill(clip, 1, 2)
    with pytest.raises(ConfigError, match="trained without infilling"):
        plain.bridge(clip, clip, bars=2)


def test_init_from_a_checkpoint_without_infill_tokens_grows_its_vocabulary(
    corpus, tmp_path, continuation_checkpoint
):
    import torch

    from musegen import checkpoint as ckpt

    before, _, _ = ckpt.load_checkpoint(continuation_checkpoint)
    out = tmp_path / "o"
    cfg = TrainConfig(
        "lstm",
        str(corpus),
        str(out),
        init=str(continuation_checkpoint),
        infill_rate=0.5,
        tokens=4 * 128 * 2,
        batch_size=4,
        seq_len=128,
        eval_every=1,
        eval_tunes=2,
        lr=1e-9,  # the weights stay where they were: only the vocabulary grows
    )
    train(cfg, progress=False)
    grown = musegen.load(out)
    assert grown.tokenizer.infill and grown.infill_form == "spm"
    old = before.embed.weight
    new = grown.model.embed.weight
    assert new.shape[0] == old.shape[0] + 2
    assert torch.allclose(new[: old.shape[0]], old, atol=1e-5)
    # the card says where the weights came from and how to make them again, both stages
    training = grown.config["training"]
    first = ckpt.load_checkpoint(continuation_checkpoint)[2]["training"]
    assert training["init"] == {"checkpoint": str(continuation_checkpoint), "training": first}
    card = (out / "README.md").read_text()
    commands = [line for line in card.splitlines() if line.startswith("musegen train")]
    assert len(commands) == 2
    assert "--out runs/lstm-stage1" in commands[0] and "--init" not in commands[0]
    assert "--infill-rate 0.0" in commands[0] and "--infill-rate 0.5" in commands[1]
    assert "--out runs/lstm --init runs/lstm-stage1" in commands[1]
    total = first.get("tokens_seen", 0) + training["tokens_seen"]
    assert f"this one from `{continuation_checkpoint}`" in card and f"{total:,} tokens" in card


# -- command line ---------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "musegen", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_infill_and_bridge(model, clip, folk_midis, tmp_path, continuation_checkpoint):
    src = tmp_path / "clip.mid"
    src.write_bytes(clip)
    out = tmp_path / "out.mid"
    model_dir = str(Path(model.name))
    r = run_cli(
        "infill",
        str(src),
        "--bars",
        "2-4",
        "-o",
        str(out),
        "--model",
        model_dir,
        "--seed",
        "5",
        "--variations",
        "2",
    )
    assert r.returncode == 0, r.stderr
    assert "bars 2-4 regenerated" in r.stdout and "seed 5" in r.stdout
    assert (tmp_path / "out_1.mid").stat().st_size > 0 and (tmp_path / "out_2.mid").exists()
    expected = model.infill_variations(clip, 2, 4, n=2, seed=5)[1]
    assert fine_notes((tmp_path / "out_2.mid").read_bytes()) == fine_notes(expected)
    best = tmp_path / "best.mid"
    args = ["infill", str(src), "--bars", "2-4", "-o", str(best), "--model", model_dir]
    r = run_cli(*args, "--seed", "5", "--candidates", "2")
    assert r.returncode == 0, r.stderr
    expected = model.infill(clip, 2, 4, seed=5, candidates=2)
    assert fine_notes(best.read_bytes()) == fine_notes(expected)
    r = run_cli(*args, "--candidates", "0")
    assert (
        r.returncode == 2 and "candidates must be" in r.stderr and len(r.stderr.splitlines()) == 1
    )
    r = run_cli("infill", str(src), "--bars", "9-3", "-o", str(out), "--model", model_dir)
    assert r.returncode == 2 and "empty range" in r.stderr and len(r.stderr.splitlines()) == 1
    r = run_cli("infill", str(src), "--bars", "x", "-o", str(out), "--model", model_dir)
    assert r.returncode == 2 and "FIRST-LAST" in r.stderr
    plain = str(continuation_checkpoint)
    r = run_cli("infill", str(src), "--bars", "1-2", "-o", str(out), "--model", plain)
    assert r.returncode == 2 and "trained without infilling" in r.stderr
    other = tmp_path / "b.mid"
    other.write_bytes(folk_midis[1].read_bytes())
    r = run_cli(
        "bridge",
        str(src),
        str(other),
        "--bars",
        "2",
        "-o",
        str(out),
        "--model",
        model_dir,
        "--seed",
        "1",
    )
    assert r.returncode == 0, r.stderr
    assert "2 bars of bridge" in r.stdout
    assert fine_notes(out.read_bytes()) == fine_notes(model.bridge(clip, other, 2, seed=1))


def test_the_infilling_bench_reads_each_gap_with_and_without_its_right_side(tmp_path, capsys):
    """`python -m musegen.bench_infill` on a shipped model (one with ONNX graphs: the bench
    scores with its PyTorch twin): a row per model with the gap's bits both ways and seams."""
    import json

    from musegen import bench_infill

    corpus = make_corpus(tmp_path / "c", tunes=32)
    args = ["--data", str(corpus), "--split", "test", "--tunes", "3", "--max-gap", "2"]
    assert bench_infill.main([*args, "--models", "lstm", "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["tunes"] == 3 and row["gap_notes"] > 0 and row["infill_form"] == "spm"
    for key in ("plain_bits_per_note", "gap_left_bits_per_note", "gap_both_bits_per_note"):
        assert 0 < row[key] < 40, key
    assert row["seam_in_infill"] >= 0 and row["seam_out_continuation"] >= 0
    assert bench_infill.main([*args, "--models", "lstm", "--candidates", "2", "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert ranked["candidates"] == 2 and ranked["gap_notes"] == row["gap_notes"]
    assert ranked["seam_out_real"] == row["seam_out_real"]  # the same gaps, other fillings


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_shipped_model_rewrites_bars_in_place(name, clip):
    """The shipped models were trained with infilling: on ONNX Runtime (the default, int8)
    each writes exactly the bars asked and keeps every other note; on its float32 graphs it
    draws the same tokens as its torch reference for the same seed."""
    model = musegen.load(name)
    assert model.infill_form == "spm" and model.precision == "int8"
    primer = model.prepare(clip)
    gap = model.plan_infill(primer, 5, 8)
    ids = model.infill_ids(primer, gap, seed=7)[0]
    assert ids.count(model.tokenizer.bar_id) == 3 and ids[-1] == model.tokenizer.eos_id
    exact = musegen.load(name, precision="float32")
    reference = musegen.load(name, runtime="torch")
    same = exact.infill_ids(exact.prepare(clip), gap, seed=7)[0]
    assert reference.infill_ids(reference.prepare(clip), gap, seed=7)[0] == same
    best = exact.infill_ids(primer, gap, seed=7, candidates=3)  # ranked on ONNX Runtime
    assert reference.infill_ids(reference.prepare(clip), gap, seed=7, candidates=3) == best
    rows = exact.infill_ids(primer, gap, n=3, seed=7)
    before, tails = gap.arranged.plain_before, [exact._body(r) + gap.after for r in rows]
    stepped = exact._stepped_costs(before, tails, len(gap.after))  # the step graphs
    whole = [exact.lead_in_cost(before, r, gap.after) for r in rows]
    np.testing.assert_allclose(stepped, whole, rtol=1e-4)
    out = model.infill_to_midi(primer, gap, ids)
    f = FINE_TICKS_PER_QUARTER // model.tokenizer.ticks_per_quarter
    lo, hi = gap.start * f, gap.end * f
    after = fine_notes(out)
    assert [n for n in after if not lo <= n.start < hi] == [
        n for n in fine_notes(clip) if not lo <= n.start < hi
    ]
    assert any(lo <= n.start < hi for n in after)


def test_fillings_are_ranked_from_one_read_of_the_bars_before_them(model, clip):
    """_stepped_costs (one read of the bars before a gap, then every filling and the bar after
    it stepped together) gives each filling the cost lead_in_cost gives it read whole from
    the same start, for fillings of different lengths, an empty one included. lead_in_costs
    reads all fillings after one common start, whichever way it reads them: the bars before,
    cut where the longest filling leaves too little room in the window. A filling that fills
    the window is read in its own."""
    primer = model.prepare(clip)
    gap = model.plan_infill(primer, 7, 7)
    before, after = gap.arranged.plain_before, gap.after
    rows = model.infill_ids(primer, gap, n=3, seed=2) + [[model.tokenizer.eos_id]]
    body = model._body(rows[0]) * model.window
    crowding = body[: model.window - len(after) - len(before) // 2]  # room for half of before
    for group in (rows, rows + [crowding]):
        tails = [model._body(r) + after for r in group]
        assert len({len(t) for t in tails}) > 2 and min(len(t) for t in tails) == len(after)
        shared = before[-(model.window - max(len(t) for t in tails)) :]
        whole = [model.lead_in_cost(shared, r, after) for r in group]
        stepped = model._stepped_costs(shared, tails, len(after))
        np.testing.assert_allclose(stepped, whole, rtol=1e-5)
        np.testing.assert_allclose(model.lead_in_costs(before, group, after), whole, rtol=1e-5)
        assert all(c > 0 for c in whole)
    assert 0 < len(shared) == len(before) // 2  # the crowded group cut the bars before
    too_long = [body[: model.window], rows[0]]
    assert model.lead_in_costs(before, too_long, after) == [
        model.lead_in_cost(before, r, after) for r in too_long
    ]


def test_ranking_fillings_keeps_the_clip_read_ahead(clip):
    """The sequences that rank candidates are read once and not kept as prefills, so the
    clip the demo read ahead stays kept for the next press (ONNX Runtime keeps 4 reads)."""
    m = musegen.load("lstm")
    primer = m.prepare(clip)
    assert m.warm(primer) is True
    kept = set(m.runtime._cache)
    for first, last in ((5, 8), (9, 10)):  # early and late in the clip
        m.infill_ids(primer, m.plan_infill(primer, first, last), n=2, seed=3, candidates=4)
    assert kept < set(m.runtime._cache) and len(m.runtime._cache) == len(kept) + 2  # 2 gaps


def test_candidates_keep_the_filling_that_leads_best_into_the_next_bar(model, clip):
    """infill_ids(candidates=k) samples n * k fillings and keeps, of each k, the one after
    which the clip's next bar is most likely; with no bar after the gap there is nothing to
    rank, and k is 1."""
    primer = model.prepare(clip)
    gap = model.plan_infill(primer, 3, 4)
    assert gap.after and gap.after[0] == model.tokenizer.bar_id
    sampled = model.infill_ids(primer, gap, n=6, seed=5, candidates=1)
    chosen = model.infill_ids(primer, gap, n=2, seed=5, candidates=3)
    for group, pick in zip((sampled[:3], sampled[3:]), chosen, strict=True):
        costs = [model.lead_in_cost(gap.arranged.plain_before, ids, gap.after) for ids in group]
        assert pick == group[int(np.argmin(costs))]
    assert all(c > 0 for c in costs)
    last = len(split_bars(model.tokenizer, model.tokenizer.encode(clip)))
    end = model.plan_infill(primer, last - 1, last)
    assert end.after == []  # the gap ends the clip
    once = model.infill_ids(primer, end, seed=5)
    assert model.infill_ids(primer, end, seed=5, candidates=4) == once
    for bad in (0, 1.5, True):
        with pytest.raises(ConfigError, match="candidates must be a whole number"):
            model.infill_ids(primer, gap, candidates=bad)
