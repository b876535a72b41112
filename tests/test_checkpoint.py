"""Checkpoints: exact round trip, and every kind of bad directory refused without running code."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from musegen import checkpoint as ckpt
from musegen.errors import CheckpointError
from musegen.models import ARCHITECTURES, build
from musegen.tokens.tokenizer import Tokenizer


def save_tiny(directory: Path, arch: str = "lstm") -> torch.nn.Module:
    torch.manual_seed(0)
    tok = Tokenizer()
    model = build(arch, tok.vocab_size, "tiny")
    ckpt.save_checkpoint(directory, model, arch, tok, training={"steps": 1})
    return model


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_round_trip_is_exact(tmp_path, arch):
    model = save_tiny(tmp_path, arch)
    loaded, tok, config = ckpt.load_checkpoint(tmp_path)
    assert config["arch"] == arch and tok == Tokenizer()
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    x = torch.randint(0, tok.vocab_size, (2, 20))
    model.eval()
    assert torch.equal(model(x), loaded(x))


class Boom:
    """Unpickling this writes a file: proof that code in the checkpoint ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).write_text, ("pwned",))


def test_pickle_disguised_as_checkpoint_is_refused_and_never_runs(tmp_path):
    save_tiny(tmp_path)
    marker = tmp_path / "marker"
    with open(tmp_path / ckpt.WEIGHTS, "wb") as f:
        pickle.dump({"weight": Boom(str(marker))}, f)
    config = json.loads((tmp_path / ckpt.CONFIG).read_text())
    config.pop("weights_sha256")  # a forger would drop the hash too
    (tmp_path / ckpt.CONFIG).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="never loads pickles"):
        ckpt.load_checkpoint(tmp_path)
    assert not marker.exists()


def test_torch_save_file_is_refused(tmp_path):
    model = save_tiny(tmp_path)
    torch.save(model.state_dict(), tmp_path / ckpt.WEIGHTS)
    with pytest.raises(CheckpointError, match="does not match"):  # the hash catches it first
        ckpt.load_checkpoint(tmp_path)


def _edit_config(directory: Path, **changes) -> None:
    config = json.loads((directory / ckpt.CONFIG).read_text())
    config.update(changes)
    (directory / ckpt.CONFIG).write_text(json.dumps(config))


def test_unknown_architecture_is_refused(tmp_path):
    save_tiny(tmp_path)
    _edit_config(tmp_path, arch="gpt5")
    with pytest.raises(CheckpointError, match="unknown architecture 'gpt5'"):
        ckpt.load_checkpoint(tmp_path)


def test_shape_mismatch_is_refused(tmp_path):
    save_tiny(tmp_path)
    config = json.loads((tmp_path / ckpt.CONFIG).read_text())
    config["model"]["d_model"] = 64
    (tmp_path / ckpt.CONFIG).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape"):
        ckpt.load_checkpoint(tmp_path)


def _rewrite_weights(directory: Path, edit) -> None:
    tensors = ckpt.load_tensors(directory / ckpt.WEIGHTS)
    edit(tensors)
    save_file(tensors, str(directory / ckpt.WEIGHTS))
    _edit_config(directory, weights_sha256=ckpt.file_sha256(directory / ckpt.WEIGHTS))


def test_nan_weights_are_refused(tmp_path):
    save_tiny(tmp_path)

    def poison(t):
        name = next(iter(t))
        t[name] = t[name].clone()
        t[name].view(-1)[0] = float("nan")

    _rewrite_weights(tmp_path, poison)
    with pytest.raises(CheckpointError, match="NaN"):
        ckpt.load_checkpoint(tmp_path)


def test_missing_and_unexpected_tensors_are_refused(tmp_path):
    save_tiny(tmp_path)
    _rewrite_weights(tmp_path, lambda t: t.update({"extra.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match="unexpected"):
        ckpt.load_checkpoint(tmp_path)


def test_half_written_checkpoint_is_detected(tmp_path):
    save_tiny(tmp_path)
    (tmp_path / ckpt.WEIGHTS).write_bytes((tmp_path / ckpt.WEIGHTS).read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="corrupt or half-written"):
        ckpt.load_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "config,message",
    [
        (None, "needs model.safetensors"),
        ("{", "not valid JSON"),
        ("[]", "not a musegen checkpoint"),
        ('{"format": "musegen-checkpoint", "format_version": 99}', "newer musegen"),
    ],
)
def test_not_a_checkpoint(tmp_path, config, message):
    if config is not None:
        (tmp_path / ckpt.WEIGHTS).write_bytes(b"x")
        (tmp_path / ckpt.CONFIG).write_text(config)
    with pytest.raises(CheckpointError, match=message):
        ckpt.load_checkpoint(tmp_path)


def test_resolve_names_and_missing_paths(tmp_path):
    with pytest.raises(CheckpointError, match="no model"):
        ckpt.resolve(tmp_path / "nope")
    assert ckpt.resolve(tmp_path) == tmp_path


def test_record_metrics_updates_config_and_card(tmp_path):
    save_tiny(tmp_path)
    ckpt.record_metrics(
        tmp_path,
        "test",
        {"files": 3, "notes": 30, "bits_per_note": 5.5, "pitch_bits_per_note": 2.25, "model": "x"},
    )
    config = ckpt.read_config(tmp_path)
    assert config["metrics"]["test"] == {
        "files": 3,
        "notes": 30,
        "bits_per_note": 5.5,
        "pitch_bits_per_note": 2.25,
    }
    card = (tmp_path / ckpt.CARD).read_text()
    assert "| folk test | 3 | 30 | 5.500 | 2.250 |" in card and "non-commercial" in card
    ckpt.load_checkpoint(tmp_path)  # still loads: the weights are untouched


def test_each_corpus_keeps_its_own_test_figures(tmp_path):
    """A model trained on a corpus mix is measured on each corpus; no record overwrites
    another, the card shows each with the command that measured it, validation first."""
    save_tiny(tmp_path)
    config = ckpt.read_config(tmp_path)
    config["training"] = {"corpora": [{"name": "folk"}, {"name": "art"}], "steps": 1}
    ckpt.write_json(tmp_path / ckpt.CONFIG, config)
    for key, bits in (("folk test", 3.0), ("art test", 6.0), ("validation", 4.0)):
        figures = {"files": 2, "notes": 20, "bits_per_note": bits, "pitch_bits_per_note": 1.0}
        ckpt.record_metrics(tmp_path, key, figures)
    config = ckpt.read_config(tmp_path)
    assert ckpt.corpus_metrics(config, "folk")["bits_per_note"] == 3.0
    assert ckpt.corpus_metrics(config, "art")["bits_per_note"] == 6.0
    assert ckpt.corpus_metrics(config, "bass") == {}
    card = (tmp_path / ckpt.CARD).read_text()
    rows = [line for line in card.splitlines() if "| 2 | 20 |" in line]
    assert [row.split(" | ")[0] for row in rows] == [
        "| validation (folk + art)",
        "| folk test",
        "| art test",
    ]
    assert "--data data/folk --record" in card and "--data data/art --record" in card


def test_figures_recorded_before_per_corpus_keys_read_as_folk():
    config = {"metrics": {"test": {"bits_per_note": 2.5}}}
    assert ckpt.corpus_metrics(config, "folk") == {"bits_per_note": 2.5}
    assert ckpt.corpus_metrics(config, "art") == {}
    assert ckpt.metric_rows(config) == [("folk test", {"bits_per_note": 2.5})]


def test_a_card_says_where_a_gpu_run_trained_and_that_a_cpu_reproduces_it():
    training = {"config": {"preset": "small"}, "steps": 1, "torch": "2.11.0+cu130"}
    gpu = {**training, "device": "cuda (NVIDIA H200, bf16 autocast)"}
    card = ckpt.render_card({"arch": "mamba", "parameters": 12345, "training": gpu})
    assert "musegen's Mamba-2 decoder over its REMI-style tokens, 12,345 parameters" in card
    assert "trained on cuda (NVIDIA H200, bf16 autocast), torch 2.11.0+cu130" in card
    assert "trains on a CPU too, with the same recipe" in card and "float32, not bf16" in card
    cpu = {**training, "device": "cpu (2 threads)"}
    card = ckpt.render_card({"arch": "mamba", "parameters": 10, "training": cpu})
    assert "trained on cpu (2 threads)" in card and "on a CPU too" not in card


def test_a_fine_tuned_card_gives_every_stage_of_its_training():
    base = {"config": {"tokens": 40, "lr": 0.0015, "seed": 0}, "steps": 4750, "tokens_seen": 40}
    first = {**base, "device": "cuda (NVIDIA H200, bf16 autocast)"}
    second = {
        "config": {"tokens": 16, "lr": 0.0003, "seed": 1, "precision": "bfloat16"},
        "steps": 2,
        "tokens_seen": 16,
        "device": "cpu (2 threads, bf16 autocast)",
        "init": {"checkpoint": "checkpoints/mamba", "training": first},
    }
    third = {**second, "init": {"checkpoint": "runs/second", "training": second}}
    card = ckpt.render_card({"arch": "mamba", "parameters": 10, "training": third})
    commands = [line for line in card.splitlines() if line.startswith("musegen train")]
    assert [c.split(" --out ")[1].split(" --")[0:2] for c in commands] == [
        ["runs/mamba-stage1", "tokens 40"],
        ["runs/mamba-stage2", "init runs/mamba-stage1"],
        ["runs/mamba", "init runs/mamba-stage2"],
    ]
    assert "--precision bfloat16" in commands[2] and "--precision" not in commands[0]
    assert "the last of 3 stages" in card and "72 tokens in all" in card
    assert "before it: 4,750 steps, 40 tokens on cuda" in card
    assert "this one from `runs/second`, `runs/mamba-stage2` in the commands below" in card
    # the first stage ran on a GPU: the card says the commands train on a CPU too
    assert "the same commands train on a CPU too" in card
    unknown = {**second, "init": {"checkpoint": "my/own", "training": {}}}
    card = ckpt.render_card({"arch": "mamba", "parameters": 10, "training": unknown})
    assert "--out runs/mamba --init my/own" in card and "in all" not in card


def test_a_user_install_finds_its_checkpoints_and_examples(tmp_path, monkeypatch):
    """`pip install --user` puts the data files under the user base's share/musegen."""
    import site
    import sys

    from musegen.checkpoint import _shipped_dir, examples_dir

    user_base = tmp_path / "userbase"
    shipped = user_base / "share" / "musegen" / "checkpoints"
    (shipped / "lstm").mkdir(parents=True)
    examples = user_base / "share" / "musegen" / "examples"
    examples.mkdir(parents=True)
    (examples / "tune.mid").write_bytes(b"MThd")
    monkeypatch.setattr(site, "getuserbase", lambda: str(user_base))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))  # a venv without the data
    monkeypatch.setattr(sys, "base_prefix", str(tmp_path / "python"))
    monkeypatch.delenv("MUSEGEN_CHECKPOINTS", raising=False)
    no_checkout = tmp_path / "site-packages"  # a wheel install: no checkout beside the package
    assert _shipped_dir(no_checkout) == shipped
    assert examples_dir(no_checkout) == examples
    monkeypatch.setenv("MUSEGEN_CHECKPOINTS", str(tmp_path / "mine"))
    assert _shipped_dir(no_checkout) == tmp_path / "mine"


def test_a_missing_shipped_checkpoint_says_how_to_fix_it(tmp_path, monkeypatch):
    from musegen import checkpoint

    monkeypatch.setattr(checkpoint, "SHIPPED_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="MUSEGEN_CHECKPOINTS"):
        checkpoint.resolve("lstm")


def test_the_card_names_every_corpus_and_how_to_build_it():
    training = {
        "config": {"preset": "small", "tokens": 100, "max_shift": 6, "octaves": 2, "mix": [2, 1]},
        "corpora": [
            {"name": "folk", "dir": "/x/folk", "share": 0.6667},
            {"name": "bass", "dir": "/x/bass", "share": 0.3333},
        ],
        "steps": 1,
    }
    card = ckpt.render_card({"arch": "lstm", "parameters": 10, "training": training})
    assert "folk corpus (`musegen data folk`)" in card and "(67% of the windows)" in card
    assert "bass-line corpus (`musegen data bass`)" in card and "(33% of the windows)" in card
    build = [line for line in card.splitlines() if line.startswith("musegen data")]
    assert build == [  # the bass lines are read from the art corpus: it is built first
        "musegen data art --out data/art",
        "musegen data folk --out data/folk",
        "musegen data bass --out data/bass",
    ]
    assert "--data data/folk data/bass --out runs/lstm --mix 2 1 " in card
    assert "--octaves 2" in card and "+-6 semitones and +-2 octaves" in card
