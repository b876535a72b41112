"""The command line: help everywhere, JSON outputs, exit status 2 with one line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from corpus_helpers import make_corpus

from musegen.cli import build_parser, main

SUBCOMMANDS = ["generate", "tokenize", "data", "train", "eval", "models", "demo"]
EXAMPLES = Path(__file__).parent.parent / "demo" / "examples"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "musegen", *args], capture_output=True, text=True, timeout=300
    )


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in text


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help_shows_defaults(capsys, name):
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    assert "usage: musegen " + name in capsys.readouterr().out


def test_generate_defaults_come_from_the_library():
    import inspect

    from musegen.generate import MuseGen

    sig = inspect.signature(MuseGen.continue_midi).parameters
    args = build_parser().parse_args(["generate", "-o", "x.mid"])
    for name in ("bars", "temperature", "top_p", "top_k", "seed", "key"):
        assert getattr(args, name) == sig[name].default


def test_no_command_prints_help_and_exit_2(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_unknown_option_is_one_line_exit_2():
    r = run("generate", "--no-such-option")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_tokenize_json(capsys):
    assert main(["tokenize", str(EXAMPLES / "waltz_in_g.mid"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens"][:3] == ["BOS", "BAR", "TIMESIG_3/4"] and out["tokens"][-1] == "EOS"
    assert len(out["ids"]) == len(out["tokens"])


def test_tokenize_missing_file_is_exit_2(capsys):
    assert main(["tokenize", "/no/such/file.mid"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err


def test_models_lists_the_shipped_models(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("lstm", "transformer", "mamba"):
        assert name in out
    assert "(missing)" not in out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("cli-corpus"))


def test_eval_json_ngram_and_model(corpus, capsys):
    assert main(["eval", "--model", "ngram", "--data", str(corpus), "--json"]) == 0
    ngram = json.loads(capsys.readouterr().out)
    for key in ("files", "notes", "bits_per_note", "pitch_bits_per_note"):
        assert key in ngram
    assert ngram["files"] == 6 and ngram["bits_per_note"] > ngram["pitch_bits_per_note"] > 0
    assert main(["eval", "--model", "lstm", "--data", str(corpus), "--json"]) == 0
    model = json.loads(capsys.readouterr().out)
    assert model["notes"] == ngram["notes"] and model["arch"] == "lstm"


def test_eval_bad_data_dir_is_exit_2(tmp_path, capsys):
    assert main(["eval", "--model", "ngram", "--data", str(tmp_path / "none")]) == 2
    assert "not found" in capsys.readouterr().err


def test_demo_bad_port_is_exit_2(capsys):
    assert main(["demo", "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--port must be 1-65535" in err
