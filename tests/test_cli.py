"""The command line: help everywhere, JSON outputs, exit status 2 with one line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from corpus_helpers import make_corpus

from musegen.cli import build_parser, main
from musegen.errors import MidiError
from musegen.options import DEFAULT_MODEL

SUBCOMMANDS = [
    "generate",
    "infill",
    "bridge",
    "tokenize",
    "data",
    "train",
    "eval",
    "models",
    "demo",
]
ALL_SUBCOMMANDS = [*SUBCOMMANDS, "play", "ports", "bench", "export", "serve"]
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


def test_help_never_imports_torch():
    """`musegen --help` and every subcommand's --help start at once: no torch, no numpy."""
    code = (
        "import sys\n"
        "from musegen.cli import main\n"
        f"for argv in [[]] + [[c] for c in {ALL_SUBCOMMANDS!r}]:\n"
        "    try:\n"
        "        main([*argv, '--help'])\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, argv\n"
        "heavy = sorted({'torch', 'onnxruntime', 'numpy', 'gradio'} & set(sys.modules))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stderr


def test_infill_and_bridge_defaults_come_from_the_library():
    import inspect

    from musegen.generate.muse import MuseGen

    infill = inspect.signature(MuseGen.infill).parameters
    args = build_parser().parse_args(["infill", "x.mid", "--bars", "5", "-o", "y.mid"])
    assert args.bars == (5, 5)  # one bar: FIRST alone
    for name in ("temperature", "top_p", "top_k", "min_p", "seed", "key", "quantize", "track"):
        assert getattr(args, name) == infill[name].default, name
    args = build_parser().parse_args(["bridge", "a.mid", "b.mid", "-o", "y.mid"])
    assert args.bars == inspect.signature(MuseGen.bridge).parameters["bars"].default


def test_generate_defaults_come_from_the_library():
    import inspect

    import musegen
    from musegen.generate.muse import MuseGen

    sig = inspect.signature(MuseGen.continue_midi).parameters
    args = build_parser().parse_args(["generate", "-o", "x.mid"])
    for name in ("bars", "temperature", "top_p", "top_k", "min_p", "seed", "key"):
        assert getattr(args, name) == sig[name].default
    for name in ("track", "pitch_range"):
        assert getattr(args, name) == sig[name].default
    assert args.model == inspect.signature(musegen.load).parameters["name_or_dir"].default


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
    marked = [line.split()[0] for line in out.splitlines() if line.split()[1:2] == ["*"]]
    assert marked == [DEFAULT_MODEL] and "* the default" in out


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


def test_eval_record_stores_the_figures_under_the_corpus_name(corpus, tmp_path, capsys):
    from musegen.checkpoint import copy_checkpoint, read_config, resolve

    copy_checkpoint(resolve("lstm"), tmp_path / "mine")
    args = ["eval", "--model", str(tmp_path / "mine"), "--data", str(corpus)]
    assert main([*args, "--json", "--record"]) == 0
    measured = json.loads(capsys.readouterr().out)
    recorded = read_config(tmp_path / "mine")["metrics"]["test test"]  # corpus "test", split
    assert recorded["bits_per_note"] == measured["bits_per_note"]
    assert "| test test | 6 |" in (tmp_path / "mine" / "README.md").read_text()


def test_eval_bad_data_dir_is_exit_2(tmp_path, capsys):
    assert main(["eval", "--model", "ngram", "--data", str(tmp_path / "none")]) == 2
    assert "not found" in capsys.readouterr().err


def test_eval_music_samples_out_of_range_is_exit_2(corpus, capsys):
    assert main(["eval", "--model", "ngram", "--data", str(corpus), "--music-samples", "0"]) == 2
    assert "--music-samples must be 1 to 16 (got 0)" in capsys.readouterr().err


def test_demo_bad_port_is_exit_2(capsys):
    assert main(["demo", "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--port must be 1-65535" in err


def test_eval_of_a_plain_folder_scores_every_file(tmp_path, capsys):
    """A folder of MIDI files (no corpus manifest) is scored whole, and the result says so."""
    import numpy as np
    from corpus_helpers import random_melody

    from musegen.midi import write_midi

    rng = np.random.default_rng(3)
    for i in range(5):
        write_midi(random_melody(rng, bars=4), tmp_path / f"clip{i}.mid")
    assert main(["eval", "--model", "lstm", "--data", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "all" and result["files"] == 5
    assert main(["eval", "--model", "ngram", "--data", str(tmp_path), "--split", "all"]) == 2
    assert "--split test" in capsys.readouterr().err
    assert main(["eval", "--model", "lstm", "--data", str(tmp_path), "--record"]) == 2
    assert "plain folder" in capsys.readouterr().err


def test_eval_of_style_folders_reports_each_style(tmp_path, capsys):
    """A folder of MIDI files sorted into style folders: the figures per style add up."""
    import numpy as np
    from corpus_helpers import random_melody

    from musegen.midi import write_midi

    rng = np.random.default_rng(4)
    for style, n in (("jazz", 3), ("pop", 2)):
        (tmp_path / style).mkdir()
        for i in range(n):
            write_midi(random_melody(rng, bars=4), tmp_path / style / f"clip{i}.mid")
    assert main(["eval", "--model", "lstm", "--data", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    styles = result["by_collection"]
    assert set(styles) == {"jazz", "pop"}
    assert [styles[s]["files"] for s in ("jazz", "pop")] == [3, 2]
    assert sum(s["notes"] for s in styles.values()) == result["notes"]
    total_bits = sum(s["bits_per_note"] * s["notes"] for s in styles.values())
    assert total_bits / result["notes"] == pytest.approx(result["bits_per_note"])
    assert main(["eval", "--model", "lstm", "--data", str(tmp_path)]) == 0
    assert "by_collection\n  jazz\n    files" in capsys.readouterr().out


def test_eval_of_a_corpus_scores_its_test_split(corpus, capsys):
    assert main(["eval", "--model", "lstm", "--data", str(corpus), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "test"


def test_top_level_usage_error_names_the_program_once():
    r = run("--no-such-flag")
    assert r.returncode == 2 and r.stderr.startswith("musegen: ")
    assert "musegen musegen" not in r.stderr


def test_help_texts_are_complete(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--temperature TEMPERATURE randomness" in text
    with pytest.raises(SystemExit):
        main(["tokenize", "--help"])
    text = capsys.readouterr().out
    assert "(unset: all non-drum tracks)" in text and "(default: None)" not in text


def test_generate_refuses_an_output_that_is_not_midi(tmp_path, capsys):
    assert main(["generate", str(EXAMPLES / "jig_in_d.mid"), "-o", str(tmp_path / "x.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ending in .mid" in err
    assert not (tmp_path / "x.txt").exists()


def test_generate_refuses_a_drum_track_and_names_the_flag(tmp_path, capsys):
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    kit = pretty_midi.Instrument(0, is_drum=True, name="kit")
    kit.notes += [pretty_midi.Note(100, 36 + i % 3, i * 0.25, i * 0.25 + 0.1) for i in range(16)]
    pm.instruments.append(kit)
    drums = tmp_path / "drums.mid"
    pm.write(str(drums))
    out = str(tmp_path / "out.mid")
    assert main(["generate", str(drums), "-o", out, "--model", "lstm", "--bars", "1"]) == 2
    assert "drum" in capsys.readouterr().err
    assert main(["tokenize", str(drums)]) == 2
    assert "--track N" in capsys.readouterr().err
    assert main(["generate", str(drums), "-o", out, "--track", "0", "--model", "lstm"]) == 2
    assert "is a drum track" in capsys.readouterr().err
    import musegen

    with pytest.raises(MidiError, match="is a drum track"):
        next(musegen.load("lstm").stream(str(drums), bars=1, track=0))
    assert not Path(out).exists()


def test_demo_command_prints_the_address_launch_announces(monkeypatch, capsys):
    from musegen import app

    calls = {}

    def fake_launch(host, port, *, announce=None, **kw):
        calls["args"] = (host, port)
        announce(f"http://{host}:{port}/")

    monkeypatch.setattr(app, "launch", fake_launch)
    assert main(["demo", "--port", "7999"]) == 0
    assert calls["args"] == ("127.0.0.1", 7999)
    assert capsys.readouterr().err == "musegen demo: http://127.0.0.1:7999/  (Ctrl+C stops it)\n"


def test_generate_says_the_detected_key_and_the_tracks_it_read(tmp_path, capsys):
    import pretty_midi

    out = str(tmp_path / "out.mid")
    jig = str(EXAMPLES / "jig_in_d.mid")
    assert (
        main(["generate", jig, "-o", out, "--key", "auto", "--bars", "1", "--model", "lstm"]) == 0
    )
    text = capsys.readouterr().out
    assert "(1 bar, lstm" in text and "key: D major (detected" in text
    pm = pretty_midi.PrettyMIDI()
    for name, low in (("right hand", 72), ("left hand", 48)):
        inst = pretty_midi.Instrument(0, name=name)
        inst.notes += [pretty_midi.Note(90, low + i % 5, i * 0.5, i * 0.5 + 0.4) for i in range(8)]
        pm.instruments.append(inst)
    two = tmp_path / "two.mid"
    pm.write(str(two))
    assert main(["generate", str(two), "-o", out, "--bars", "1", "--model", "lstm"]) == 0
    assert "read 2 tracks as one part: right hand, left hand" in capsys.readouterr().out


def test_the_readme_option_table_gives_the_cli_defaults():
    """The README's `musegen generate` option table names the defaults the CLI has (the
    default model changed three times with the shipped weights; the table must follow)."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    rows = {
        cells[1].strip("`"): cells[2].strip("`")
        for line in readme.splitlines()
        if line.startswith("| `--")
        for cells in [[c.strip() for c in line.split("|")]]
    }
    args = build_parser().parse_args(["generate", "x.mid", "-o", "y.mid"])
    assert rows["--model"] == args.model == DEFAULT_MODEL
    assert rows["--bars"] == str(args.bars)
    assert rows["--variations"] == str(args.variations)
    assert rows["--temperature"] == str(args.temperature)
