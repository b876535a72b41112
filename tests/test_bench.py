"""`musegen bench --json` in its reduced mode: runs, and returns every figure."""

from __future__ import annotations

import json

import pytest

from musegen import bench
from musegen.cli import main
from musegen.models import ARCHITECTURES

KEYS = [
    "generate_tokens_per_s",
    "hf_generate_tokens_per_s",
    "step_ms_at_position",
    "continue_ms",
    "continue_ms_busy_core",
    "fresh_process_s",
    "train_tokens_per_s",
    "tokenize_files_per_s",
    "installed_mb",
]


@pytest.mark.slow
def test_bench_quick_json_has_every_key(capsys, tmp_path):
    plot = tmp_path / "steps.png"
    assert main(["bench", "--json", "--quick", "--positions", "8", "40", "--plot", str(plot)]) == 0
    r = json.loads(capsys.readouterr().out)
    for key in KEYS:
        assert key in r
    columns = {"onnx int8", "onnx fp32", "torch"}  # the runtimes, side by side
    assert set(r["generate_tokens_per_s"]) == columns
    for runtime in columns:
        for name in ARCHITECTURES:
            s = r["generate_tokens_per_s"][runtime][name]
            assert 0 < s["min"] <= s["median"] <= s["max"]
            steps = r["step_ms_at_position"][runtime][name]
            assert set(steps) == {"8", "40"} and all(ms > 0 for ms in steps.values())
            c = r["continue_ms"][runtime][name]
            assert c["one"]["median"] > 0 and c["four_variations"]["median"] > 0
            assert c["again"]["median"] > 0
            assert r["continue_ms_busy_core"][runtime][name]["median"] > 0
    for name in ARCHITECTURES:
        assert r["train_tokens_per_s"][name]["median"] > 0
    fresh = r["fresh_process_s"]
    assert 0 < fresh["help"]["median"] and 0 < fresh["generate"]["median"]
    hf = r["hf_generate_tokens_per_s"]
    assert hf is None or set(hf) == {"gpt2", "mamba2"}
    assert r["tokenize_files_per_s"]["musegen"] > 0 and r["tokenize_files_per_s"]["files"] > 0
    assert plot.read_bytes()[:4] == b"\x89PNG"
    text = bench.table(r)  # the table prints from the same figures
    assert "generation tokens/s" in text and "tokenizing files/s" in text


def test_installed_size_counts_what_a_plain_install_pulls_in():
    sizes = bench.installed_size()
    assert {"musegen", "numpy", "onnxruntime", "mido"} <= set(sizes)
    assert "torch" not in sizes and "gradio" not in sizes  # extras stay out
    assert all(mb >= 0 for mb in sizes.values()) and sizes["numpy"] > 1
    assert list(sizes.values()) == sorted(sizes.values(), reverse=True)


def test_bench_bad_threads_is_exit_2(capsys):
    with pytest.raises(SystemExit) as e:  # argparse: usage errors are exit 2, one line
        main(["bench", "--threads", "-1"])
    assert e.value.code == 2
    assert "use a whole number >= 0" in capsys.readouterr().err


def test_bench_scan_runs_on_cpu_against_itself(infill_checkpoints, tmp_path, capsys):
    """`python -m musegen.bench_scan --device cpu`: no kernel there, so both sides are the
    reference and agree exactly; a state carried mid-sequence gives the whole sequence's
    logits; both step timings print. (On CUDA with mamba_ssm it compares the fused scan.)"""
    from corpus_helpers import make_corpus

    from musegen import bench_scan

    corpus = make_corpus(tmp_path / "corpus")
    args = ["--model", str(infill_checkpoints["mamba"]), "--data", str(corpus), "--device", "cpu"]
    bench_scan.main([*args, "--batch", "2", "--seq-len", "48", "--steps", "1"])
    out = capsys.readouterr().out
    assert "no fused kernel on a CPU" in out
    assert out.count("largest logit difference 0.00e+00; worst gradient difference 0.00%") == 2
    carried = [float(line.rsplit(": ", 1)[1]) for line in out.splitlines() if "carried" in line]
    assert len(carried) == 2 and max(carried) < 1e-4
    assert out.count("forward + backward") == 2


def test_bench_scan_refuses_a_model_that_is_not_mamba(infill_checkpoints, tmp_path):
    from corpus_helpers import make_corpus

    from musegen import bench_scan
    from musegen.errors import ConfigError

    corpus = make_corpus(tmp_path / "corpus")
    args = ["--model", str(infill_checkpoints["lstm"]), "--data", str(corpus), "--device", "cpu"]
    with pytest.raises(ConfigError, match="lstm model; give a Mamba-2 one"):
        bench_scan.main(args)
