"""The optimized graphs kept on disk (`musegen.runtime.graph_cache`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from musegen import checkpoint as ckpt

pytest.importorskip("onnxruntime")

from musegen.runtime import graph_cache  # noqa: E402 - needs onnxruntime
from musegen.runtime.onnx_runtime import OnnxRuntime  # noqa: E402

IDS = [1, *range(10, 130)]


def _run(folder: Path, precision: str = "int8") -> tuple[np.ndarray, np.ndarray]:
    """Logits of a prefill and 5 steps after it."""
    rt = OnnxRuntime(folder, precision=precision, prefill_cache=0)
    logits, state = rt.prefill(IDS)
    steps = []
    for token in (5, 9, 40, 7, 11):
        step, state = rt.step(np.array([token]), state)
        steps.append(step)
    return logits, np.concatenate(steps)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MUSEGEN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "graphs"


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """What each session was opened from: "file" or "kept"."""
    import onnxruntime as ort

    real = ort.InferenceSession
    seen: list[str] = []

    def recording(model, *args, **kwargs):
        seen.append("kept" if isinstance(model, bytes) else "file")
        return real(model, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    return seen


@pytest.mark.parametrize("arch", ["transformer", "mamba"])
def test_a_kept_graph_opens_and_computes_what_the_file_does(arch, cache, opened):
    folder = ckpt.SHIPPED_DIR / arch
    first = _run(folder)
    assert opened == ["file", "file"] and len(list(cache.glob("*.onnx"))) == 2
    again = _run(folder)
    assert opened[2:] == ["kept", "kept"]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    _run(folder, "float32")  # another graph: kept beside
    assert len(list(cache.glob("*.onnx"))) == 4 and not list(cache.glob(".*"))


def test_new_weights_are_never_read_through_an_old_kept_graph(tmp_path, cache, opened):
    """Retrained weights of the same shapes (the same safetensors header) open afresh: the
    int8 weights a kept graph holds were made from the old ones."""
    folder = tmp_path / "mamba"
    shutil.copytree(ckpt.SHIPPED_DIR / "mamba", folder)
    old = _run(folder)
    weights = folder / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    header = 8 + int.from_bytes(raw[:8], "little")
    data = np.frombuffer(raw, dtype="<f4", offset=header)  # every tensor is float32
    raw[header:] = (data * np.float32(1.5)).tobytes()
    weights.write_bytes(bytes(raw))
    new = _run(folder)
    assert opened == ["file"] * 4
    assert not np.allclose(old[0], new[0])
    graph_cache_off = _run_uncached(folder)
    for a, b in zip(new, graph_cache_off, strict=True):
        np.testing.assert_array_equal(a, b)


def _run_uncached(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(graph_cache.CACHE_SWITCH_ENV, "0")
        return _run(folder)


def test_a_damaged_kept_graph_is_replaced(cache, opened):
    folder = ckpt.SHIPPED_DIR / "lstm"
    expected = _run(folder)
    for kept in cache.glob("*.onnx"):
        kept.write_bytes(kept.read_bytes()[:1000])  # cut short
    got = _run(folder)
    assert sorted(opened[2:]) == ["file", "file", "kept", "kept"]  # tried, then opened afresh
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(k.stat().st_size > 1000 for k in cache.glob("*.onnx"))


def test_switched_off_or_unwritable_it_opens_the_files(tmp_path, monkeypatch, cache, opened):
    folder = ckpt.SHIPPED_DIR / "lstm"
    expected = _run_uncached(folder)
    assert opened == ["file", "file"] and not cache.exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MUSEGEN_CACHE", str(blocker))  # the cache folder cannot be made
    got = _run(folder)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_only_the_graphs_used_last_are_kept(cache, monkeypatch):
    monkeypatch.setattr(graph_cache, "KEEP", 3)
    _run(ckpt.SHIPPED_DIR / "lstm")
    int8 = set(cache.glob("*.onnx"))
    _run(ckpt.SHIPPED_DIR / "lstm", "float32")  # 4 made: the oldest goes
    assert len(list(cache.glob("*.onnx"))) == 3
    float32 = set(cache.glob("*.onnx")) - int8
    _run(ckpt.SHIPPED_DIR / "lstm")  # the int8 graphs used again (one made again)
    _run(ckpt.SHIPPED_DIR / "mamba")  # 2 more: the float32 ones, used least lately, go
    left = set(cache.glob("*.onnx"))
    assert len(left) == 3 and not left & float32 and len(left & int8) == 1


def test_a_failure_to_write_the_optimized_graph_still_opens_it(cache, monkeypatch):
    import onnxruntime as ort

    real = ort.InferenceSession

    def full_disk(model, options, *args, **kwargs):
        if options.optimized_model_filepath:
            raise RuntimeError("No space left on device")
        return real(model, options, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", full_disk)
    expected = _run_uncached(ckpt.SHIPPED_DIR / "lstm")
    got = _run(ckpt.SHIPPED_DIR / "lstm")
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not cache.exists() or not any(cache.glob("*.onnx"))


def test_a_broken_graph_is_still_a_clear_error(tmp_path, cache):
    from musegen.errors import CheckpointError

    folder = tmp_path / "lstm"
    shutil.copytree(ckpt.SHIPPED_DIR / "lstm", folder)
    (folder / "step.int8.onnx").write_bytes(b"not a graph")
    with pytest.raises(CheckpointError, match="could not be opened.*musegen export"):
        OnnxRuntime(folder, precision="int8")
