"""The ONNX Runtime backend against the torch reference, export, and life without torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import musegen
from musegen import checkpoint as ckpt
from musegen.errors import CheckpointError, ConfigError
from musegen.options import ARCHITECTURES, DEFAULT_MODEL
from musegen.runtime import choose_precision, choose_runtime

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from musegen.runtime.export import export  # noqa: E402 - needs onnx
from musegen.runtime.onnx_runtime import (  # noqa: E402
    STEP,
    WEIGHTS,
    OnnxRuntime,
    graph_files,
)
from musegen.runtime.torch_runtime import TorchRuntime  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "demo" / "examples").glob("*.mid"))
REL = 1e-4  # float32 graphs against eager float32
ALL_GRAPHS = [*graph_files("float32"), *graph_files("int8")]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _agree(onnx: OnnxRuntime, torch_rt: TorchRuntime, ids: list[int], steps: int, rows: int):
    """Largest relative logit difference over a prefill of ``ids`` and ``steps`` steps."""
    rng = np.random.default_rng(0)
    a, sa = onnx.prefill(ids)
    b, sb = torch_rt.prefill(ids)
    assert a.shape == b.shape == (len(ids), b.shape[-1])
    worst = _rel(a, b)
    sa, sb = onnx.repeat(sa, rows), torch_rt.repeat(sb, rows)
    vocab = b.shape[-1]
    for _ in range(steps):
        tokens = rng.integers(0, vocab, rows)
        a, sa = onnx.step(tokens, sa)
        b, sb = torch_rt.step(tokens, sb)
        worst = max(worst, _rel(a, b))
    return worst


@pytest.fixture(scope="module")
def shipped():
    """(onnx MuseGen, torch MuseGen) per shipped model."""
    return {
        arch: (
            musegen.load(arch, runtime="onnx", precision="float32"),
            musegen.load(arch, runtime="torch"),
        )
        for arch in ARCHITECTURES
    }


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_shipped_graphs_give_torchs_logits(shipped, arch):
    onnx_m, torch_m = shipped[arch]
    ids = onnx_m.tokenizer.encode(EXAMPLES[0])
    assert _agree(onnx_m.runtime, torch_m.runtime, ids, steps=100, rows=2) < REL


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_same_seed_same_music_on_both_runtimes(shipped, arch):
    onnx_m, torch_m = shipped[arch]
    for path in EXAMPLES[:3]:
        a = onnx_m.generate_ids(onnx_m.prepare(path), n=2, bars=4, seed=7)
        b = torch_m.generate_ids(torch_m.prepare(path), n=2, bars=4, seed=7)
        assert a == b


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_scores_agree_across_runtimes(shipped, arch):
    onnx_m, torch_m = shipped[arch]
    a, b = onnx_m.score(EXAMPLES[1]), torch_m.score(EXAMPLES[1])
    assert a["notes"] == b["notes"] > 0
    assert a["bits_per_note"] == pytest.approx(b["bits_per_note"], rel=1e-4)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _int8_drift(exact: OnnxRuntime, int8: OnnxRuntime, ids: list[int], steps: int) -> dict:
    """How far the int8 graphs' next-token distributions are from float32's over a prefill
    of ``ids`` and ``steps`` steps of two rows: KL(float32 || int8) mean and max (nats) and
    how often the most likely token is the same."""
    rng = np.random.default_rng(0)
    a, sa = exact.prefill(ids)
    b, sb = int8.prefill(ids)
    rows_a, rows_b = [a], [b]
    sa, sb = exact.repeat(sa, 2), int8.repeat(sb, 2)
    for _ in range(steps):
        tokens = rng.integers(0, a.shape[-1], 2)
        a, sa = exact.step(tokens, sa)
        b, sb = int8.step(tokens, sb)
        rows_a.append(a)
        rows_b.append(b)
    p, q = _log_softmax(np.concatenate(rows_a)), _log_softmax(np.concatenate(rows_b))
    kl = (np.exp(p) * (p - q)).sum(-1)
    same = (p.argmax(-1) == q.argmax(-1)).mean()
    return {"kl_mean": float(kl.mean()), "kl_max": float(kl.max()), "same_top": float(same)}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_int8_graphs_stay_close_to_float32(shipped, arch):
    """The int8 graphs predict nearly what the float32 ones do (measured on the shipped
    models: KL 0.0006-0.0018 nats on average, the top token the same 94-98% of the time),
    and they score a tune within a fraction of a percent."""
    exact = shipped[arch][0]
    int8 = musegen.load(arch, runtime="onnx", precision="int8")
    assert (int8.precision, exact.precision) == ("int8", "float32")
    ids = exact.tokenizer.encode(EXAMPLES[0])
    drift = _int8_drift(exact.runtime, int8.runtime, ids, steps=100)
    assert drift["kl_mean"] < 0.01 and drift["kl_max"] < 0.15, drift
    assert drift["same_top"] > 0.9, drift
    a, b = exact.score(EXAMPLES[1]), int8.score(EXAMPLES[1])
    assert b["bits_per_note"] == pytest.approx(a["bits_per_note"], rel=0.01)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_int8_generation_keeps_every_guarantee(arch):
    """The default (int8) continues a clip by exactly the bars asked, seeded, and decodes."""
    m = musegen.load(arch)
    assert (m.runtime.name, m.precision) == ("onnx", "int8")
    tok = m.tokenizer
    primer = m.prepare(EXAMPLES[2])
    rows = m.generate_ids(primer, n=2, bars=3, seed=5)
    for ids in rows:
        assert ids[-1] == tok.eos_id and ids.count(tok.eos_id) == 1
        assert ids.count(tok.bar_id) == 2
        notes = tok.decode_score(primer.context + ids).notes
        new = [n.start for n in notes if n.start >= primer.start]
        assert new and max(new) < primer.start + 3 * tok.bar_ticks(*primer.metre)
    assert rows == m.generate_ids(primer, n=2, bars=3, seed=5)


def test_long_primers_go_in_pieces_and_match(shipped):
    """Prefill past one call's length (the LSTM and Mamba carry state between pieces) and
    a Transformer sequence past its window (scored in overlapping windows)."""
    rng = np.random.default_rng(3)
    ids = [1, *(int(i) for i in rng.integers(5, 300, 1300))]
    for arch in ("lstm", "mamba"):
        onnx_m, torch_m = shipped[arch]
        assert _agree(onnx_m.runtime, torch_m.runtime, ids, steps=5, rows=1) < REL
    onnx_m, torch_m = shipped["transformer"]
    a = onnx_m._token_nll(np.array(ids))
    b = torch_m._token_nll(np.array(ids))
    assert a.shape == (len(ids) - 1,)
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_a_transformer_ring_grows_as_it_fills(shipped):
    """A short primer's rings hold the next multiple of RING_GROWTH slots, not the whole
    window; they grow as the steps need, then wrap as a full ring does. Logits match torch
    across every growth and the wrap, and match rings passed full (as graphs exported before
    growing rings were possible are fed)."""
    from musegen.runtime.onnx_runtime import RING_GROWTH

    onnx_m, torch_m = shipped["transformer"]
    rt, window = onnx_m.runtime, onnx_m.runtime.window
    assert rt.growing and rt.ring_slots(0) == RING_GROWTH < window
    assert rt.ring_slots(RING_GROWTH) == 2 * RING_GROWTH and rt.ring_slots(window + 7) == window
    full = OnnxRuntime(ckpt.SHIPPED_DIR / "transformer", precision="float32", prefill_cache=0)
    full.growing = False
    ids = [int(i) for i in np.random.default_rng(4).integers(5, 300, 40)]
    rng = np.random.default_rng(5)
    (a, sa), (b, sb), (c, sc) = (r.prefill(ids) for r in (rt, torch_m.runtime, full))
    sa, sb, sc = rt.repeat(sa, 2), torch_m.runtime.repeat(sb, 2), full.repeat(sc, 2)
    slots = set()
    for _ in range(window + 100 - len(ids)):  # past the window: every growth, then the wrap
        tokens = rng.integers(0, b.shape[-1], 2)
        (a, sa), (b, sb), (c, sc) = (
            rt.step(tokens, sa),
            torch_m.runtime.step(tokens, sb),
            full.step(tokens, sc),
        )
        slots.add(sa["k0"].shape[-1])
        assert sc["k0"].shape[-1] == window
        assert _rel(a, b) < REL
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-5)
    assert sorted(slots) == list(range(RING_GROWTH, window + 1, RING_GROWTH))


def test_graphs_exported_before_growing_rings_keep_full_rings(tmp_path):
    """A Transformer step graph whose rings have a fixed slot count (as exported before
    rings could grow) is detected and fed full rings, with the same logits."""
    import onnx

    folder = tmp_path / "transformer"
    shutil.copytree(ckpt.SHIPPED_DIR / "transformer", folder)
    graph = onnx.load(str(folder / STEP), load_external_data=False)
    for value in graph.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param == "S":
                dim.dim_value = 512
    onnx.save(graph, str(folder / STEP))
    old = OnnxRuntime(folder, precision="float32", prefill_cache=0)
    new = OnnxRuntime(ckpt.SHIPPED_DIR / "transformer", precision="float32", prefill_cache=0)
    assert not old.growing and new.growing
    ids = [int(i) for i in np.random.default_rng(6).integers(5, 300, 60)]
    (a, sa), (b, sb) = old.prefill(ids), new.prefill(ids)
    assert sa["k0"].shape[-1] == 512 and sb["k0"].shape[-1] < 512
    for token in np.random.default_rng(7).integers(0, a.shape[-1], 120):
        (a, sa), (b, sb) = old.step(np.array([token]), sa), new.step(np.array([token]), sb)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert sa["k0"].shape[-1] == 512 and sb["k0"].shape[-1] == 256


def test_threads_asking_for_one_primer_at_once_read_it_once():
    """A prefill asked for while another thread reads the same ids waits for that reading;
    if that reading fails, the waiting thread reads for itself."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    m = musegen.load("lstm", runtime="onnx")
    rt, ids = m.runtime, m.prepare(EXAMPLES[0]).context
    read, calls, release = rt.read, [], threading.Event()

    def held(ids, fail=False):
        calls.append(len(ids))
        if len(calls) == 1:  # the first reading holds until released
            release.wait()
            if fail:
                raise RuntimeError("the first reading failed")
        return read(ids)

    for fail in (False, True):
        rt.forget()
        calls.clear()
        release.clear()
        rt.read = lambda ids, fail=fail: held(ids, fail)
        with ThreadPoolExecutor(3) as pool:
            first = pool.submit(rt.prefill, ids)
            others = [pool.submit(rt.prefill, ids) for _ in range(2)]
            release.set()
            if fail:
                with pytest.raises(RuntimeError, match="first reading failed"):
                    first.result()
            results = [f.result() for f in ([] if fail else [first]) + others]
        assert len(calls) == (2 if fail else 1)
        for logits, state in results:
            np.testing.assert_array_equal(logits, results[0][0])
            np.testing.assert_array_equal(state["h"], results[0][1]["h"])
    rt.read = read


def test_graphs_hold_no_weights():
    """The graphs point into model.safetensors: a few KB of structure each, no second copy."""
    import onnx

    for arch in ARCHITECTURES:
        folder = ckpt.SHIPPED_DIR / arch
        weights = (folder / WEIGHTS).stat().st_size
        for name in ALL_GRAPHS:
            assert (folder / name).stat().st_size < min(256_000, weights / 20)
            graph = onnx.load(str(folder / name), load_external_data=False)
            external = [
                i for i in graph.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL
            ]
            assert external, "parameters are external data"
            assert {e.value for i in external for e in i.external_data if e.key == "location"} == {
                WEIGHTS
            }


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_export_a_checkpoint_of_your_own(infill_checkpoints, tmp_path, arch):
    """`export` on a freshly trained tiny model (the Mamba one has two groups, the
    Transformer a 128-token window), then the graphs agree with torch past the window."""
    folder = tmp_path / arch
    shutil.copytree(infill_checkpoints[arch], folder)
    written = export(folder)
    assert [p.name for p in written] == ALL_GRAPHS
    model, tok, _ = ckpt.load_checkpoint(folder)
    onnx_rt, torch_rt = OnnxRuntime(folder), TorchRuntime(model)
    ids = [tok.bos_id, *range(10, 10 + 120)]  # 121 tokens + 30 steps: past a 128 window
    assert _agree(onnx_rt, torch_rt, ids, steps=30, rows=3) < REL
    # a model trained for 20 steps is rougher in 8 bits than the shipped ones, not wrong
    drift = _int8_drift(onnx_rt, OnnxRuntime(folder, precision="int8"), ids, steps=30)
    assert drift["kl_mean"] < 0.1 and drift["same_top"] > 0.9, drift
    loaded = musegen.load(folder)  # auto: the graphs are there now
    assert loaded.runtime.name == "onnx"
    assert loaded.infill(EXAMPLES[0], 2, 2, seed=1).instruments


def test_graphs_of_other_weights_are_refused(tmp_path):
    """Weights rewritten with another layout (retrained, converted) need a new export."""
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "lstm"
    shutil.copytree(ckpt.SHIPPED_DIR / "lstm", folder)
    tensors = load_file(str(folder / WEIGHTS))
    save_file(dict(reversed(tensors.items())), str(folder / WEIGHTS), metadata={"note": "moved"})
    config = json.loads((folder / "config.json").read_text())
    config["weights_sha256"] = ckpt.file_sha256(folder / WEIGHTS)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="musegen export"):
        musegen.load(folder, runtime="onnx")
    assert musegen.load(folder, runtime="torch").runtime.name == "torch"


def test_choosing_a_runtime(tmp_path):
    shipped = ckpt.SHIPPED_DIR / "mamba"
    assert choose_runtime("auto", shipped) == "onnx"
    assert choose_runtime("auto", shipped, "cuda") == "torch"
    assert choose_runtime("torch", shipped) == "torch"
    bare = tmp_path / "bare"
    shutil.copytree(shipped, bare, ignore=shutil.ignore_patterns("*.onnx"))
    assert choose_runtime("auto", bare) == "torch"
    with pytest.raises(ConfigError, match="musegen export"):
        choose_runtime("onnx", bare)
    with pytest.raises(ConfigError, match="auto, onnx, torch"):
        choose_runtime("tensorrt", shipped)
    with pytest.raises(ConfigError, match="CPU"):
        choose_runtime("onnx", shipped, "cuda")


def test_choosing_a_precision(tmp_path):
    shipped = ckpt.SHIPPED_DIR / "mamba"
    assert choose_precision("auto", "onnx", shipped) == "int8"
    assert choose_precision("float32", "onnx", shipped) == "float32"
    assert choose_precision("auto", "torch", shipped) == "float32"
    with pytest.raises(ConfigError, match="ONNX Runtime"):
        choose_precision("int8", "torch", shipped)
    with pytest.raises(ConfigError, match="auto, float32, int8"):
        choose_precision("fp16", "onnx", shipped)
    older = tmp_path / "older"  # exported before int8 graphs existed
    shutil.copytree(shipped, older, ignore=shutil.ignore_patterns("*.int8.onnx"))
    assert choose_precision("auto", "onnx", older) == "float32"
    with pytest.raises(ConfigError, match="musegen export"):
        choose_precision("int8", "onnx", older)
    assert musegen.load(older).precision == "float32"
    swapped = tmp_path / "swapped"  # a float32 graph where the int8 one should be
    shutil.copytree(shipped, swapped)
    shutil.copy(swapped / STEP, swapped / graph_files("int8")[1])
    with pytest.raises(CheckpointError, match="int8"):
        OnnxRuntime(swapped, precision="int8")


NO_TORCH = "import sys; sys.modules['torch'] = None; from musegen.cli import main; "


def _run_without_torch(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, MUSEGEN_THREADS="1")
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH + code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_continues_and_infills_without_torch(tmp_path):
    """What an install without torch does: continue and regenerate bars from the CLI."""
    out = tmp_path / "out.mid"
    args = [str(EXAMPLES[0]), "-o", str(out), "--bars", "4", "--seed", "1"]
    done = _run_without_torch(f"sys.exit(main({['generate', *args]!r}))", tmp_path)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 100 and DEFAULT_MODEL in done.stdout
    infilled = tmp_path / "infilled.mid"
    args = [str(EXAMPLES[0]), "-o", str(infilled), "--bars", "2-3", "--seed", "1"]
    done = _run_without_torch(f"sys.exit(main({['infill', *args]!r}))", tmp_path)
    assert done.returncode == 0, done.stderr  # the shipped models infill
    assert infilled.stat().st_size > 100
    done = _run_without_torch(
        f"sys.exit(main({['generate', '-o', str(out), '--runtime', 'torch']!r}))", tmp_path
    )
    assert done.returncode == 2 and "needs PyTorch" in done.stderr
    done = _run_without_torch(f"sys.exit(main({['export', 'lstm']!r}))", tmp_path)
    assert done.returncode == 2 and "pip install 'musegen[export]'" in done.stderr


def test_graphs_of_another_model_config_are_refused(tmp_path):
    """A config changed under the graphs (another window, say) needs a new export."""
    folder = tmp_path / "transformer"
    shutil.copytree(ckpt.SHIPPED_DIR / "transformer", folder)
    config = json.loads((folder / "config.json").read_text())
    config["model"]["max_seq_len"] = 256
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="musegen export"):
        OnnxRuntime(folder)


def test_the_prefill_cache_gives_what_reading_again_gives():
    """Asking again for the same clip reuses its prefill; the music is the same as after
    reading it afresh, and what a generation does to its state never reaches the cache."""
    m = musegen.load("transformer", runtime="onnx")  # its step writes its caches in place
    rt, primer = m.runtime, m.prepare(EXAMPLES[0])
    reads = []
    read = rt.read
    rt.read = lambda ids: reads.append(len(ids)) or read(ids)
    rt.forget()
    first = m.generate_ids(primer, n=2, bars=2, seed=3)
    again = m.generate_ids(primer, n=2, bars=2, seed=3)  # from the cache
    assert len(reads) == 1 and again == first
    rt.forget()
    assert m.generate_ids(primer, n=2, bars=2, seed=3) == first and len(reads) == 2
    logits, state = rt.prefill(primer.context)
    fresh_logits, fresh_state = read(primer.context)
    np.testing.assert_array_equal(logits, fresh_logits)
    for name in fresh_state:
        np.testing.assert_array_equal(state[name], fresh_state[name])
    for k in range(1, rt.cache_size + 1):  # the oldest goes first
        rt.prefill(primer.context[:-k])
    rt.prefill(primer.context)
    assert len(reads) == 2 + rt.cache_size + 1
    off = OnnxRuntime(ckpt.SHIPPED_DIR / "lstm", prefill_cache=0)
    off.prefill([1, 2, 3])
    assert not off._cache


def test_warming_reads_a_primer_before_its_continuation_is_asked_for(shipped):
    """`MuseGen.warm` leaves the primer's prefill (what the model reads of it: its last
    ``window`` tokens for the Transformer) where the continuation finds it; the torch runtime
    keeps no prefills, so warming there does nothing."""
    m = musegen.load("transformer", runtime="onnx")
    rt, primer = m.runtime, m.prepare(EXAMPLES[0])
    long = m.prepare(EXAMPLES[0])
    long.context = [*primer.context[:1], *primer.context[1:] * 8][-(rt.window + 50) :]
    for p in (primer, long):
        rt.forget()
        assert m.warm(p) is True
        read = rt.read
        rt.read = lambda ids: pytest.fail("the warmed primer was read again")
        try:
            ids = m.generate_ids(p, bars=2, seed=1)
        finally:
            rt.read = read
        assert ids == m.generate_ids(p, bars=2, seed=1)
    torch_model = shipped["lstm"][1]
    assert not torch_model.runtime.keeps_prefills and torch_model.warm(primer) is False
    assert not OnnxRuntime(ckpt.SHIPPED_DIR / "lstm", prefill_cache=0).keeps_prefills


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_step_graph_scores_what_the_prefill_graph_scores(shipped, arch):
    """`bench_precision.step_nll` (tunes fed token by token, side by side as one batch)
    against the prefill's scores of each tune alone."""
    from musegen.bench_precision import step_nll

    m = shipped[arch][0]
    tunes = [np.array(m.tokenizer.encode(p)[:300]) for p in EXAMPLES[:3]]
    stepped = step_nll(m, tunes)
    for tune, nll in zip(tunes, stepped, strict=True):
        np.testing.assert_allclose(nll, m._token_nll(tune), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_bound_steps_give_the_plain_steps_results(arch):
    """Bound steps (the fast path: the LSTM's and Mamba's two state buffers, the
    Transformer's rings read in place) against plain ``run`` calls: the same logits and
    states, bit for bit, across a change of batch size, a new state and (the Transformer's)
    rings that grow."""
    rt = OnnxRuntime(ckpt.SHIPPED_DIR / arch, precision="int8", prefill_cache=0)
    rng = np.random.default_rng(2)
    _, first = rt.prefill([1, *rng.integers(5, 300, 40).tolist()])
    for rows, steps in ((2, 100), (3, 30), (2, 30)):
        fast = rt.repeat(first, rows)
        slow = {name: a.copy() for name, a in fast.items()}
        kept = []
        for _ in range(steps):
            tokens = rng.integers(5, 300, rows)
            a, fast = rt.step(tokens, fast)
            b, slow = rt.step_unbound(tokens, slow)
            kept.append((a, b))
            for name in rt.names:
                np.testing.assert_array_equal(fast[name], slow[name])
        for a, b in kept:  # logits handed out earlier are not overwritten later
            np.testing.assert_array_equal(a, b)


def test_bound_rings_follow_states_taken_in_turn_and_strided_rings():
    """The Transformer's bound step with several states stepped in turn (as the bench does),
    and with a ring that is a strided view (bound as it is, it would read the wrong numbers):
    the plain steps' results, bit for bit. A binding does not keep a state's rings alive."""
    import gc
    import weakref

    rt = OnnxRuntime(ckpt.SHIPPED_DIR / "transformer", precision="int8", prefill_cache=0)
    rng = np.random.default_rng(3)
    _, first = rt.prefill([1, *rng.integers(5, 300, 30).tolist()])
    fast = [{n: a.copy() for n, a in first.items()} for _ in range(3)]
    slow = [{n: a.copy() for n, a in first.items()} for _ in range(3)]
    for _ in range(5):
        for i in range(3):
            token = rng.integers(5, 300, 1)
            a, fast[i] = rt.step(token, fast[i])
            b, slow[i] = rt.step_unbound(token, slow[i])
            np.testing.assert_array_equal(a, b)
    strided = {n: a.copy() for n, a in first.items()}
    wide = np.zeros((*strided["k0"].shape[:-1], 2 * strided["k0"].shape[-1]), np.float32)
    wide[..., ::2] = strided["k0"]
    strided["k0"] = wide[..., ::2]  # the same numbers, every other float
    assert not strided["k0"].flags.c_contiguous
    plain = {n: a.copy() for n, a in first.items()}
    a, _ = rt.step(np.array([7]), strided)
    b, _ = rt.step_unbound(np.array([7]), plain)
    np.testing.assert_array_equal(a, b)
    ring = weakref.ref(fast[0]["k0"])
    fast.clear()
    gc.collect()
    assert ring() is None


def test_threads_generating_at_once_get_what_they_get_alone():
    """The demo and `musegen serve` answer requests in threads that share a model."""
    from concurrent.futures import ThreadPoolExecutor

    m = musegen.load("mamba")
    primer = m.prepare(EXAMPLES[1])
    alone = [m.generate_ids(primer, bars=2, seed=s) for s in range(4)]
    m.runtime.forget()
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda s: m.generate_ids(primer, bars=2, seed=s), range(4)))
    assert together == alone
