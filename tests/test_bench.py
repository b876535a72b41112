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
    "train_tokens_per_s",
    "tokenize_files_per_s",
]


@pytest.mark.slow
def test_bench_quick_json_has_every_key(capsys, tmp_path):
    plot = tmp_path / "steps.png"
    assert main(["bench", "--json", "--quick", "--positions", "8", "40", "--plot", str(plot)]) == 0
    r = json.loads(capsys.readouterr().out)
    for key in KEYS:
        assert key in r
    for name in ARCHITECTURES:
        s = r["generate_tokens_per_s"][name]
        assert 0 < s["min"] <= s["median"] <= s["max"]
        assert set(r["step_ms_at_position"][name]) == {"8", "40"}
        assert all(ms > 0 for ms in r["step_ms_at_position"][name].values())
        c = r["continue_ms"][name]
        assert c["one"]["median"] > 0 and c["four_variations"]["median"] > 0
        assert r["train_tokens_per_s"][name]["median"] > 0
    hf = r["hf_generate_tokens_per_s"]
    assert hf is None or set(hf) == {"gpt2", "mamba2"}
    assert r["tokenize_files_per_s"]["musegen"] > 0 and r["tokenize_files_per_s"]["files"] > 0
    assert plot.read_bytes()[:4] == b"\x89PNG"
    text = bench.table(r)  # the table prints from the same figures
    assert "generation tokens/s" in text and "tokenizing files/s" in text


def test_bench_bad_threads_is_exit_2(capsys):
    assert main(["bench", "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err
