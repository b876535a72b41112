"""Training: it learns, resumes exactly after a kill, matches across 2 processes; and the
evaluation gives the hand-computed value."""

from __future__ import annotations

import itertools
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from corpus_helpers import make_corpus

from musegen import checkpoint as ckpt
from musegen.data import (
    InfillMix,
    Transposer,
    WindowMaker,
    batch_stream,
    join_arrays,
    spread,
    tokenize_split,
    training_windows,
)
from musegen.errors import ConfigError, MuseGenError
from musegen.evaluate import evaluate_model, music_statistics
from musegen.tokens.tokenizer import Tokenizer
from musegen.train import TrainConfig, lr_at, train

TINY = dict(preset="tiny", batch_size=4, seq_len=64, warmup_steps=5, eval_every=5, eval_tunes=6)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return ckpt.load_tensors(directory / "resume" / "state.safetensors")


def run_cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "musegen", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
@pytest.mark.parametrize("arch", ["lstm", "transformer", "mamba"])
def test_tiny_training_learns_and_writes_a_checkpoint(corpus, tmp_path, arch, precision):
    out = tmp_path / arch
    cfg = TrainConfig(
        arch, str(corpus), str(out), tokens=4 * 64 * 40, lr=1e-2, precision=precision, **TINY
    )
    result = train(cfg, progress=False)
    log = (out / "log.csv").read_text().splitlines()
    first, last = (float(row.split(",")[3]) for row in (log[1], log[-1]))
    assert last < first - 1.0, f"train bits/token did not fall: {first} -> {last}"
    model, tok, config = ckpt.load_checkpoint(out)
    assert config["training"]["tokens_seen"] > 0
    assert ("bf16 autocast" in config["training"]["device"]) == (precision == "bfloat16")
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast, not bf16 weights
    assert config["metrics"]["validation"]["bits_per_note"] == pytest.approx(
        result["best_val_bits_per_note"]
    )
    assert (out / "curve.png").stat().st_size > 1000


def wait_for_evaluations(out: Path, count: int, timeout: float = 120) -> None:
    """Wait until ``out/log.csv`` holds ``count`` evaluations in all. Each evaluation is
    followed by a resume checkpoint, so a kill now lands before, during or after writing it."""
    log = out / "log.csv"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if log.exists() and len(log.read_text().splitlines()) - 1 >= count:
            return
        time.sleep(0.02)


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(corpus, tmp_path):
    args = [
        "train",
        "--arch",
        "mamba",
        "--data",
        str(corpus),
        "--preset",
        "tiny",
        "--tokens",
        str(4 * 64 * 60),
        "--batch-size",
        "4",
        "--seq-len",
        "64",
        "--warmup-steps",
        "5",
        "--eval-every",
        "5",
        "--eval-tunes",
        "6",
        "--quiet",
    ]
    full = run_cli(*args, "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr

    # Killed twice with SIGKILL at different points (after the 1st and the 4th evaluation,
    # wherever the checkpoint write is then), resumed each time: the end result is the
    # uninterrupted run's, bit for bit.
    out = tmp_path / "killed"
    for evaluations, extra in ((1, []), (4, ["--resume"])):
        proc = subprocess.Popen(
            [sys.executable, "-m", "musegen", *args, "--out", str(out), *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_evaluations(out, evaluations)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (out / "train_result.json").exists(), "the run finished before it was killed"
    resumed = run_cli(*args, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr

    a, b = weights(tmp_path / "full"), weights(out)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process(corpus, tmp_path):
    common = [
        "train",
        "--arch",
        "lstm",
        "--data",
        str(corpus),
        "--preset",
        "tiny",
        "--tokens",
        str(4 * 64 * 12),
        "--batch-size",
        "4",
        "--seq-len",
        "64",
        "--warmup-steps",
        "2",
        "--eval-every",
        "6",
        "--eval-tunes",
        "4",
        "--precision",  # bf16 would round a batch of 4 and two of 2 differently
        "float32",
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = run_cli(*common, "--out", str(tmp_path / "one"), env=env)
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            "-m",
            "musegen",
            *common,
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    for name in a:
        if name.startswith("model."):
            torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)


def hand_bits(model, tok: Tokenizer, arrays, indices) -> tuple[float, float, int]:
    """Bits and pitch bits per note of the tunes at ``indices``, one token at a time."""
    expected_bits, expected_pitch = 0.0, 0.0
    pitch_ids = set(tok.pitch_ids.tolist())
    for i in indices:
        ids = torch.as_tensor(np.asarray(arrays.tune(i), dtype=np.int64))
        with torch.no_grad():
            logp = torch.log_softmax(model(ids[None, :-1])[0].double(), -1)
        for t in range(1, len(ids)):
            bits = -logp[t - 1, ids[t]].item() / math.log(2)
            expected_bits += bits
            expected_pitch += bits if int(ids[t]) in pitch_ids else 0.0
    notes = sum(int(arrays.notes[i]) for i in indices)
    return expected_bits / notes, expected_pitch / notes, notes


def test_eval_matches_hand_computation(corpus, tmp_path):
    torch.manual_seed(0)
    tok = Tokenizer()
    from musegen.models import build

    model = build("transformer", tok.vocab_size, "tiny").eval()
    arrays = tokenize_split(corpus, "test", tok, progress=False)
    bits, pitch, notes = hand_bits(model, tok, arrays, range(len(arrays)))
    result = evaluate_model(model, tok, arrays)
    assert result["notes"] == notes == int(arrays.notes.sum())
    assert result["bits_per_note"] == pytest.approx(bits, rel=1e-5)
    assert result["pitch_bits_per_note"] == pytest.approx(pitch, rel=1e-5)


def test_spread_picks_evenly_spaced_tunes():
    assert spread(10, 4).tolist() == [0, 2, 5, 7]
    assert spread(5).tolist() == spread(5, 5).tolist() == spread(5, 99).tolist() == [0, 1, 2, 3, 4]
    for n, limit in [(629, 250), (558, 100), (7, 6), (1000, 1)]:
        idx = spread(n, limit)
        assert len(idx) == limit and len(set(idx.tolist())) == limit
        assert idx[0] == 0 and idx[-1] >= n - n // limit - 1  # reaches the end of the split
        if limit > 1:
            gaps = np.diff(idx)
            assert gaps.min() >= n // limit and gaps.max() <= -(-n // limit)


def test_eval_limit_scores_tunes_spread_over_the_split(corpus):
    """`--limit` scores tunes from the whole split (a split lists its collections in turn)."""
    torch.manual_seed(0)
    tok = Tokenizer()
    from musegen.models import build

    model = build("lstm", tok.vocab_size, "tiny").eval()
    arrays = tokenize_split(corpus, "validation", tok, progress=False)
    picked = spread(len(arrays), 3)
    assert picked[-1] > 2  # not simply the first three
    bits, pitch, notes = hand_bits(model, tok, arrays, picked)
    result = evaluate_model(model, tok, arrays, limit=3)
    assert result["files"] == 3 and result["notes"] == notes
    assert result["bits_per_note"] == pytest.approx(bits, rel=1e-5)
    assert result["pitch_bits_per_note"] == pytest.approx(pitch, rel=1e-5)


def test_best_checkpoint_is_chosen_among_like_figures(corpus, tmp_path, monkeypatch):
    """Every evaluation during training scores the same tunes and the best of those is kept,
    the last one included; the kept weights are then scored on the whole validation split."""
    import musegen.train as train_module

    scripted = iter([5.0, 3.0, 4.0, 4.5])  # the second of four evaluations is the best
    real_evaluate = train_module.evaluate_model

    def evaluate(model, tokenizer, arrays, *, limit=None):
        result = real_evaluate(model, tokenizer, arrays, limit=limit)
        if limit is not None:
            result["bits_per_note"] = next(scripted)
        return result

    monkeypatch.setattr(train_module, "evaluate_model", evaluate)
    out = tmp_path / "run"
    cfg = TrainConfig(
        "lstm", str(corpus), str(out), tokens=4 * 64 * 20, **{**TINY, "eval_tunes": 3}
    )
    result = train(cfg, progress=False)
    rows = [line.split(",") for line in (out / "log.csv").read_text().splitlines()[1:]]
    assert [int(r[0]) for r in rows] == [5, 10, 15, 20]
    assert [float(r[4]) for r in rows] == [5.0, 3.0, 4.0, 4.5]
    model, tok, config = ckpt.load_checkpoint(out)
    assert config["training"]["steps"] == 10
    val = tokenize_split(corpus, "validation", tok, progress=False)
    whole = real_evaluate(model, tok, val)
    assert config["metrics"]["validation"]["files"] == len(val) > 3
    assert config["metrics"]["validation"]["bits_per_note"] == pytest.approx(whole["bits_per_note"])
    assert result["best_val_bits_per_note"] == pytest.approx(whole["bits_per_note"])
    card = (out / "README.md").read_text()
    assert "| validation (test) | 6 |" in card and "planned for 20 steps" in card


def test_music_statistics_compare_continuations_with_the_real_bars(corpus, tmp_path):
    """The real side depends only on the tunes; the generated side on the model; all in range."""
    import musegen
    from musegen.models import build

    tok = Tokenizer()
    stats = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        ckpt.save_checkpoint(
            tmp_path / str(seed), build("lstm", tok.vocab_size, "tiny"), "lstm", tok
        )
        generator = musegen.load(tmp_path / str(seed))
        arrays = tokenize_split(corpus, "train", tok, progress=False)
        stats.append(music_statistics(generator, arrays, tunes=5, primer_bars=2, bars=2))
    a, b = stats
    assert a["tunes"] == b["tunes"] == 5
    for key in ("in_key_real", "notes_per_bar_real"):
        assert a[key] == b[key]
    assert a["notes_per_bar_real"] > 0 and a["notes_per_bar_generated"] > 0
    assert (a["pitch_class_overlap"], a["interval_overlap"]) != (
        b["pitch_class_overlap"],
        b["interval_overlap"],
    )
    for s in stats:
        for key in ("pitch_class_overlap", "interval_overlap", "in_key_generated", "in_key_real"):
            assert 0.0 <= s[key] <= 1.0
        assert s["voices_per_onset_primer"] == a["voices_per_onset_primer"] >= 1.0
        assert s["voices_per_onset_generated"] >= 1.0
        for where in ("low", "median", "high"):
            assert s[f"register_move_{where}_real"] == a[f"register_move_{where}_real"] >= 0.0
            assert s[f"register_move_{where}_generated"] >= 0.0
    # more samples per tune: the same tunes and real side, one sample is the default's figures
    one = music_statistics(generator, arrays, tunes=5, primer_bars=2, bars=2, samples=1)
    three = music_statistics(generator, arrays, tunes=5, primer_bars=2, bars=2, samples=3)
    assert one == b and (one["samples"], three["samples"]) == (1, 3)
    assert three["tunes"] == 5
    for key in (
        "in_key_real",
        "notes_per_bar_real",
        "voices_per_onset_real",
        "notes_per_bar_primer",
    ):
        assert three[key] == pytest.approx(one[key])
    assert three["voices_per_onset_generated"] >= 1.0 and three["notes_per_bar_generated"] > 0
    assert three["pitch_class_overlap"] != one["pitch_class_overlap"]


def test_texture_counts_voices_bars_and_register():
    from musegen.evaluate import texture
    from musegen.midi import Note

    # two bars: a C major triad under a melody note, then three single notes
    notes = [Note(0, p, 24) for p in (48, 52, 55, 72)] + [Note(t, 74, 12) for t in (24, 36, 48)]
    t = texture(notes, bars=2)
    assert t["notes_per_bar"] == 3.5
    assert t["voices_per_onset"] == 7 / 4
    assert t["median"] == 72 and t["low"] == pytest.approx(48 + 0.6 * 4) and t["high"] == 74
    assert texture([], bars=4) == {"notes_per_bar": 0.0, "voices_per_onset": 0.0, "median": None}


def test_sliding_window_eval_scores_every_token(corpus):
    """A tune longer than the Transformer's window is scored completely, once per token."""
    from musegen.evaluate import token_nll
    from musegen.models import build

    tok = Tokenizer()
    model = build("transformer", tok.vocab_size, "tiny", max_seq_len=32).eval()
    arrays = tokenize_split(corpus, "train", tok, progress=False)
    tune = np.asarray(arrays.tune(0), dtype=np.int64)
    assert len(tune) > 64
    nll = token_nll(model, [tune])[0]
    assert nll.shape == (len(tune) - 1,) and np.isfinite(nll).all() and (nll > 0).all()
    # the first window's tokens are scored exactly as a plain forward over that window
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.as_tensor(tune[None, :31]))[0], -1)
    first = -logp[torch.arange(31), torch.as_tensor(tune[1:32])].numpy()
    np.testing.assert_allclose(nll[:31], first, rtol=1e-5)


def test_schedule_warmup_then_cosine():
    cfg = TrainConfig("lstm", "d", "o", tokens=100 * 16 * 512, warmup_steps=10, lr=1e-3)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(cfg.steps, cfg) == pytest.approx(1e-4)
    values = [lr_at(s, cfg) for s in range(10, cfg.steps)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_transposition_keeps_pitches_in_range():
    tok = Tokenizer()
    lo, hi = int(tok.pitch_ids[0]), int(tok.pitch_ids[-1])
    shift = Transposer(lo, hi, max_shift=6)
    rng = np.random.default_rng(0)
    window = np.array([tok.bos_id, lo + 1, hi - 2, tok.bar_id, lo + 60])
    seen = set()
    for _ in range(200):
        out = shift(window, rng)
        pitches = out[[1, 2, 4]]
        assert ((pitches >= lo) & (pitches <= hi)).all()
        assert out[0] == tok.bos_id and out[3] == tok.bar_id
        seen.add(int(out[4] - window[4]))
    assert seen == {-1, 0, 1, 2}  # room for one step down and two up


def test_octave_augmentation_moves_register_and_keeps_pitches_in_range():
    tok = Tokenizer()
    lo, hi = int(tok.pitch_ids[0]), int(tok.pitch_ids[-1])
    rng = np.random.default_rng(0)
    melody = np.array([tok.bos_id, lo + 40, lo + 60, tok.bar_id, lo + 76])  # E2 .. E5
    seen = set()
    for _ in range(400):
        out = Transposer(lo, hi, max_shift=2, octaves=2)(melody, rng)
        assert (out[[1, 2, 4]] >= lo).all() and (out[[1, 2, 4]] <= hi).all()
        assert np.array_equal(out[[0, 3]], melody[[0, 3]])
        assert len(set((out - melody)[[1, 2, 4]].tolist())) == 1  # one interval for all
        seen.add(int(out[1] - melody[1]))
    # every octave (up to 2) plus every key (up to 2 semitones) that fits: E0 is the floor
    # (down 40 at most), G9 the ceiling (up 51)
    assert seen == {o + k for o in (-24, -12, 0, 12, 24) for k in (-2, -1, 0, 1, 2)}
    near_floor = np.array([tok.bos_id, lo + 5, lo + 30])
    moves = {int(Transposer(lo, hi, 0, 2)(near_floor, rng)[1] - near_floor[1]) for _ in range(99)}
    assert moves == {0, 12, 24}  # no octave down would fit


def test_windows_are_deterministic(corpus):
    arrays = tokenize_split(corpus, "train", Tokenizer(), progress=False)
    a = next(training_windows(arrays, 32, 4, np.random.default_rng(7)))
    b = next(training_windows(arrays, 32, 4, np.random.default_rng(7)))
    assert a.shape == (4, 33) and np.array_equal(a, b)


def test_a_mix_draws_windows_from_each_corpus_by_weight(corpus, tmp_path):
    other = make_corpus(tmp_path / "other", seed=3, name="other")
    tok = Tokenizer()
    parts = [tokenize_split(d, "train", tok, progress=False) for d in (corpus, other)]
    first = {bytes(parts[0].ids[i : i + 33].tobytes()) for i in range(len(parts[0].ids) - 32)}

    def share_from_first(weights) -> float:
        batches = training_windows(parts, 32, 50, np.random.default_rng(0), weights=weights)
        rows = np.concatenate([next(batches) for _ in range(8)])  # 400 windows
        return np.mean([row.astype(np.int16).tobytes() in first for row in rows])

    assert share_from_first([1, 0]) == 1.0
    assert share_from_first([0, 1]) == 0.0
    assert 0.65 < share_from_first([3, 1]) < 0.85
    with pytest.raises(MuseGenError, match="--mix needs one non-negative weight"):
        next(training_windows(parts, 8, 4, np.random.default_rng(0), weights=[1]))
    joined = join_arrays(parts, ["test", "other"])
    assert len(joined) == len(parts[0]) + len(parts[1])
    assert np.array_equal(joined.tune(len(parts[0])), parts[1].tune(0))
    assert joined.files[-1].startswith("other/")


def test_batches_are_the_same_made_ahead_by_workers(corpus, tmp_path):
    """Batch i depends on the seed and i alone: worker processes, a start in the middle (a
    resumed run) and one process all give the same batches."""
    other = make_corpus(tmp_path / "other", seed=3, name="other")
    tok = Tokenizer(infill=True)
    parts = [tokenize_split(d, "train", tok, progress=False) for d in (corpus, other)]
    lo, hi = int(tok.pitch_ids[0]), int(tok.pitch_ids[-1])
    maker = WindowMaker(parts, 64, 6, 11, Transposer(lo, hi, 6), InfillMix(tok, 0.5, "spm"))
    alone = list(itertools.islice(batch_stream(maker), 7))
    ahead = batch_stream(maker, workers=2)
    made = list(itertools.islice(ahead, 7))
    ahead.close()
    later = list(itertools.islice(batch_stream(maker, start=4, workers=3), 3))
    for a, b in zip(alone, made, strict=True):
        assert np.array_equal(a, b)
    for a, b in zip(alone[4:], later, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(alone[0], alone[1])  # each batch draws its own windows
    assert any((batch == tok.sep_id).any() for batch in alone)  # infilling examples too
    reseeded = WindowMaker(parts, 64, 6, 12, Transposer(lo, hi, 6), InfillMix(tok, 0.5, "spm"))
    assert not np.array_equal(reseeded(0), alone[0])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_batch_workers_end_with_their_stream_and_with_a_killed_parent(corpus, tmp_path):
    """No worker outlives its batch stream: closed, or its process killed with SIGKILL."""
    import multiprocessing

    arrays = tokenize_split(corpus, "train", Tokenizer(), progress=False)
    stream = batch_stream(WindowMaker(arrays, 32, 2, 0), workers=2)
    next(stream)
    assert len(multiprocessing.active_children()) == 2
    stream.close()
    deadline = time.time() + 10
    while multiprocessing.active_children() and time.time() < deadline:
        time.sleep(0.05)
    assert multiprocessing.active_children() == []

    script = (
        "import multiprocessing, sys, time\n"
        "from musegen.data import WindowMaker, batch_stream, tokenize_split\n"
        "from musegen.tokens.tokenizer import Tokenizer\n"
        "if __name__ == '__main__':\n"
        f"    arrays = tokenize_split({str(corpus)!r}, 'train', Tokenizer(), progress=False)\n"
        "    stream = batch_stream(WindowMaker(arrays, 32, 2, 0), workers=2)\n"
        "    next(stream)\n"
        "    print(*[p.pid for p in multiprocessing.active_children()], flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    alive = pids
    while alive and time.time() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if _running(pid)]
    assert alive == [], "workers outlived their killed parent"


def _running(pid: int) -> bool:
    """Whether a process runs (Linux: an exited one left unreaped counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_how_many_batch_workers_and_where_a_run_trained(monkeypatch, tmp_path):
    from musegen.train import data_workers, device_text

    cfg = TrainConfig("lstm", str(tmp_path), str(tmp_path))
    assert data_workers(cfg, torch.device("cpu")) == 0  # the model needs the cores
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(16)), raising=False)
    assert data_workers(cfg, torch.device("cuda")) == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun, 4 GPUs: 4 cores per rank
    assert data_workers(cfg, torch.device("cuda")) == 2
    cfg.workers = 7
    assert data_workers(cfg, torch.device("cuda")) == 7
    assert device_text(torch.device("cpu")) == f"cpu ({torch.get_num_threads()} threads)"


def test_auto_precision_is_bfloat16_where_the_hardware_runs_it(monkeypatch):
    from musegen import train as train_module
    from musegen.train import autocast_dtype, device_text

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for device in (cpu, cuda):
        assert autocast_dtype("float32", device) is None
        assert autocast_dtype("bfloat16", device) is torch.bfloat16
    assert autocast_dtype("auto", cuda) is torch.bfloat16
    monkeypatch.setattr(train_module, "onednn_runs", lambda dtype: True)  # AVX-512 BF16 / AMX
    assert autocast_dtype("auto", cpu) is torch.bfloat16
    monkeypatch.setattr(train_module, "onednn_runs", lambda dtype: dtype == torch.float32)  # AVX2
    assert autocast_dtype("auto", cpu) is None
    threads = torch.get_num_threads()
    assert device_text(cpu, torch.bfloat16) == f"cpu ({threads} threads, bf16 autocast)"
    with pytest.raises(ConfigError, match="--precision"):
        TrainConfig("lstm", "data", "out", precision="fp16")


def test_a_run_with_data_workers_trains_the_same_weights(corpus, tmp_path):
    for workers in (0, 2):
        cfg = TrainConfig(
            "lstm", str(corpus), str(tmp_path / f"w{workers}"), workers=workers, **TINY
        )
        cfg.tokens = 4 * 64 * 6
        train(cfg, progress=False)
    a, b = weights(tmp_path / "w0"), weights(tmp_path / "w2")
    for name in a:
        assert torch.equal(a[name], b[name]), name
    with pytest.raises(MuseGenError, match="--workers must be 0 or more"):
        TrainConfig("lstm", str(corpus), str(tmp_path), workers=-1)


def test_training_on_two_corpora_records_both(corpus, tmp_path):
    other = make_corpus(tmp_path / "other", seed=3, name="other")
    out = tmp_path / "mixed"
    cfg = TrainConfig(
        "lstm", [str(corpus), str(other)], str(out), mix=[1, 1], chord_order="top", **TINY
    )
    train(cfg, progress=False)
    model, tok, config = ckpt.load_checkpoint(out)
    assert tok.chord_order == "top"
    corpora = config["training"]["corpora"]
    assert [c["name"] for c in corpora] == ["test", "other"]
    assert [c["share"] for c in corpora] == [0.5, 0.5]
    card = (out / "README.md").read_text()
    assert f"--data {corpus} {other} " in card and "--mix 1 1 " in card  # plain folders
    assert "--chord-order top" in card and "(50% of the windows)" in card
    with pytest.raises(MuseGenError, match="one non-negative weight per --data"):
        TrainConfig("lstm", [str(corpus)], str(out), mix=[1, 1])


def test_unwritable_out_fails_before_training(corpus, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cfg = TrainConfig("lstm", str(corpus), str(blocker / "out"), **TINY)
    with pytest.raises(MuseGenError, match="cannot write"):
        train(cfg, progress=False)
    result = run_cli(
        "train",
        "--arch",
        "lstm",
        "--data",
        str(corpus),
        "--out",
        str(blocker / "out"),
        "--preset",
        "tiny",
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_full_disk_fails_before_training(corpus, tmp_path, monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=10 * 2**20))
    cfg = TrainConfig("mamba", str(corpus), str(tmp_path / "out"), **{**TINY, "preset": "small"})
    with pytest.raises(MuseGenError, match="not enough disk space .* 10 MB free"):
        train(cfg, progress=False)
    assert not (tmp_path / "out" / "log.csv").exists()


def test_resume_without_state_is_a_clear_error(corpus, tmp_path):
    cfg = TrainConfig("lstm", str(corpus), str(tmp_path / "none"), **TINY)
    with pytest.raises(MuseGenError, match="no resume state"):
        train(cfg, resume=True, progress=False)
