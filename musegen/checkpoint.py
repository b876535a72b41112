"""Checkpoint directories: ``model.safetensors`` + ``config.json`` (+ ``README.md``).

Only safetensors and JSON are ever read: loading never unpickles, so no code in a file can
run. Files are written to a temporary name and renamed into place; ``config.json`` records
the SHA-256 of the weights it belongs to, so a crash between the two renames is detected on
load instead of pairing a config with the wrong weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from musegen.errors import CheckpointError, ConfigError
from musegen.options import ARCHITECTURES
from musegen.tokens.tokenizer import Tokenizer

if TYPE_CHECKING:  # torch is imported where weights are read or written, not to read a config
    import torch

FORMAT = "musegen-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
# musegen.runtime.onnx_runtime's graph_files("float32") and graph_files("int8")
GRAPHS = ("prefill.onnx", "step.onnx", "prefill.int8.onnx", "step.int8.onnx")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: Path, obj: object) -> None:
    """Write JSON atomically (temporary file + rename)."""
    _atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata=None) -> None:
    """Save tensors with safetensors, atomically. Tied weights are stored once."""
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    seen: dict[int, str] = {}
    unique = {}
    for name, t in tensors.items():
        key = t.data_ptr()
        if key in seen and t.data_ptr() != 0:
            continue  # a tied parameter (embedding == head): stored under its first name
        seen[key] = name
        unique[name] = t.detach().contiguous().cpu()
    save_file(unique, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def save_checkpoint(
    directory: str | Path,
    model: torch.nn.Module,
    arch: str,
    tokenizer: Tokenizer,
    *,
    training: dict | None = None,
    metrics: dict | None = None,
    card: str | None = None,
) -> Path:
    """Write a checkpoint directory for ``model`` (weights, config, optional model card)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / WEIGHTS
    for graph in GRAPHS:  # graphs exported for the weights this replaces (musegen export)
        (out / graph).unlink(missing_ok=True)
    save_tensors(weights, model.state_dict(), metadata={"format": FORMAT})
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "model": model_config_dict(model),
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokenizer": tokenizer.to_dict(),
        "training": training or {},
        "metrics": metrics or {},
        "weights_sha256": file_sha256(weights),
    }
    write_json(out / CONFIG, config)
    if card is not None:
        _atomic_write_bytes(out / CARD, card.encode())
    return out


def model_config_dict(model: torch.nn.Module) -> dict:
    from dataclasses import asdict

    return asdict(model.config)


def read_config(directory: str | Path) -> dict:
    """The parsed ``config.json`` of a checkpoint directory, validated."""
    path = Path(directory)
    if not path.is_dir():
        raise CheckpointError(
            f"checkpoint not found: {path} is not a directory "
            f"(use a shipped name: {', '.join(ARCHITECTURES)}, or a checkpoint directory)"
        )
    cfg_path = path / CONFIG
    if not cfg_path.is_file() or not (path / WEIGHTS).is_file():
        raise CheckpointError(
            f"{path} is not a musegen checkpoint: it needs {WEIGHTS} and {CONFIG}"
        )
    try:
        config = json.loads(cfg_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{cfg_path} is not valid JSON: {e}") from e
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_path} is not a musegen checkpoint config")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer musegen (format {config['format_version']}); "
            "upgrade musegen"
        )
    if config.get("arch") not in ARCHITECTURES:
        raise CheckpointError(
            f"{cfg_path} names unknown architecture {config.get('arch')!r}; "
            f"known: {', '.join(ARCHITECTURES)}"
        )
    for key in ("model", "tokenizer"):
        if not isinstance(config.get(key), dict):
            raise CheckpointError(f"{cfg_path} lacks the {key!r} section")
    return config


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; anything else (a pickle, garbage) is refused."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"{path} is not a valid safetensors file ({e}); musegen never loads pickles"
        ) from e


def read_checkpoint(directory: str | Path) -> tuple[Tokenizer, dict]:
    """(tokenizer, config) of a checkpoint directory, with its weights file checked against
    the hash in the config. Needs no torch (what the ONNX runtime loads with)."""
    path = Path(directory)
    config = read_config(path)
    weights = path / WEIGHTS
    expected = config.get("weights_sha256")
    if expected and file_sha256(weights) != expected:
        raise CheckpointError(
            f"{weights} does not match {CONFIG} (hash differs): the checkpoint is corrupt "
            "or half-written; retrain or copy it again"
        )
    try:
        tokenizer = Tokenizer.from_dict(config["tokenizer"])
    except ConfigError as e:
        raise CheckpointError(f"{path / CONFIG}: {e}") from e
    except (TypeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path / CONFIG} has an invalid tokenizer: {e}") from e
    return tokenizer, config


def load_checkpoint(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, Tokenizer, dict]:
    """Load (model in eval mode, tokenizer, config) from a checkpoint directory."""
    from musegen.models import build_from_config

    path = Path(directory)
    tokenizer, config = read_checkpoint(path)
    try:
        model = build_from_config(config["arch"], config["model"])
    except ConfigError as e:
        raise CheckpointError(f"{path / CONFIG}: {e}") from e
    except (TypeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path / CONFIG} has an invalid model: {e}") from e
    if getattr(model.config, "vocab_size", tokenizer.vocab_size) != tokenizer.vocab_size:
        raise CheckpointError(
            f"{path}: model vocabulary ({model.config.vocab_size}) does not match the "
            f"tokenizer's ({tokenizer.vocab_size})"
        )
    load_weights(model, load_tensors(path / WEIGHTS), where=str(path / WEIGHTS))
    model.to(device).eval()
    return model, tokenizer, config


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Copy tensors into ``model``, refusing missing, unexpected, misshapen or NaN weights."""
    import torch

    expected = model.state_dict()
    # Tied parameters are stored once: fill the aliases from the stored name.
    by_ptr: dict[int, list[str]] = {}
    for name, t in expected.items():
        by_ptr.setdefault(t.data_ptr(), []).append(name)
    for names in by_ptr.values():
        present = [n for n in names if n in tensors]
        if present:
            for n in names:
                tensors.setdefault(n, tensors[present[0]])
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{where} does not fit the architecture in config.json: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for name, t in tensors.items():
        if t.shape != expected[name].shape:
            raise CheckpointError(
                f"{where}: {name} has shape {tuple(t.shape)}, the config expects "
                f"{tuple(expected[name].shape)}"
            )
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"{where}: {name} contains NaN or infinite values")
    model.load_state_dict(tensors, strict=True)


def installed_data_dirs(name: str) -> list[Path]:
    """Where an install puts ``share/musegen/<name>`` (the data files of pyproject.toml), for
    every install scheme: the environment's prefix (venvs, system installs) and the user base
    (``pip install --user``), then the interpreter's own prefix."""
    import site
    import sysconfig

    bases = [sys.prefix, site.getuserbase(), sys.base_prefix]
    for scheme in sysconfig.get_scheme_names():
        if scheme.startswith(os.name) or scheme == "venv":
            try:
                bases.append(sysconfig.get_path("data", scheme))
            except KeyError:
                pass
    dirs: list[Path] = []
    for base in bases:
        d = Path(base) / "share" / "musegen" / name
        if d not in dirs:
            dirs.append(d)
    return dirs


SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the checkout, for editable installs


def _shipped_dir(source_root: Path = SOURCE_ROOT) -> Path:
    """Where the shipped checkpoints are: $MUSEGEN_CHECKPOINTS, the source checkout's
    ``checkpoints/`` (editable installs), or ``share/musegen/checkpoints`` of the install."""
    if os.environ.get("MUSEGEN_CHECKPOINTS"):
        return Path(os.environ["MUSEGEN_CHECKPOINTS"])
    checkout = source_root / "checkpoints"
    for c in (checkout, *installed_data_dirs("checkpoints")):
        if c.is_dir():
            return c
    return checkout


def examples_dir(source_root: Path = SOURCE_ROOT) -> Path | None:
    """The example melodies: the source checkout's demo/examples, or the installed copy."""
    checkout = source_root / "demo" / "examples"
    for d in (checkout, *installed_data_dirs("examples")):
        if d.is_dir() and any(d.glob("*.mid")):
            return d
    return None


SHIPPED_DIR = _shipped_dir()


def resolve(name_or_dir: str | Path) -> Path:
    """A shipped model name (``lstm``, ``transformer``, ``mamba``) or a checkpoint directory."""
    text = str(name_or_dir)
    if text in ARCHITECTURES:
        shipped = SHIPPED_DIR / text
        if not (shipped / CONFIG).is_file():
            raise CheckpointError(
                f"the shipped {text!r} checkpoint is missing from {SHIPPED_DIR}; reinstall "
                "musegen from its repository, or set MUSEGEN_CHECKPOINTS to the folder that "
                "holds lstm/, transformer/ and mamba/"
            )
        return shipped
    path = Path(text).expanduser()
    if not path.exists():
        raise CheckpointError(
            f"no model {text!r}: use {', '.join(ARCHITECTURES)} or a checkpoint directory"
        )
    return path


def copy_checkpoint(src: str | Path, dst: str | Path) -> None:
    """Copy the files of a checkpoint directory (weights, config, card, logs)."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for f in Path(src).iterdir():
        if f.is_file() and not f.name.startswith("."):
            shutil.copyfile(f, dst / f.name)


# How the model card names each architecture.
ARCH_NAMES = {"lstm": "LSTM", "transformer": "Transformer", "mamba": "Mamba-2"}

# What each corpus `musegen data` builds is, for the model card's "Data and licence".
CORPUS_TEXT = {
    "folk": "musegen's folk corpus (`musegen data folk`): the essenFolksong, oneills1850, "
    "ryansMammoth and miscFolk ABC collections that ship with the music21 package, converted "
    "with abc2midi, de-duplicated and split by tune",
    "art": "musegen's art-music corpus (`musegen data art`): the composers' scores that ship "
    "with the music21 package (Palestrina, Monteverdi, the Trecento, Josquin, the "
    "Mozart/Haydn/Beethoven quartets, Schubert, the Schumanns, Chopin, Joplin, Handel, Corelli, "
    "C. P. E. Bach, Verdi, Weber, lead sheets and more; never music21's bach/, kept for the "
    "chorale benchmark), as full multi-part pieces, de-duplicated and split by piece",
    "bass": "musegen's bass-line corpus (`musegen data bass`): the lowest part of each "
    "art-music piece where it is a single line (bass voices, cello and continuo lines), "
    "in its piece's split",
}


def corpus_names(training: dict) -> list[str]:
    """The corpora a checkpoint was trained on (runs from before corpus mixes: folk)."""
    return [c["name"] for c in training.get("corpora", [])] or ["folk"]


def built_from(corpora: list[str]) -> list[str]:
    """The corpora to build, in order, to train on ``corpora`` (the bass lines are read from
    the art corpus)."""
    needed = ["art", *corpora] if "bass" in corpora and "art" not in corpora else corpora
    return [name for name in dict.fromkeys(needed) if name in CORPUS_TEXT]


def data_args(training: dict) -> list[str]:
    """What `--data` was: ``data/<name>`` for a corpus `musegen data` builds, else the folder."""
    corpora = training.get("corpora") or [{"name": "folk"}]
    return [f"data/{c['name']}" if c["name"] in CORPUS_TEXT else c["dir"] for c in corpora]


def train_command(
    arch: str,
    tcfg: dict,
    data: list[str] | None = None,
    out: str | None = None,
    init: str | None = None,
) -> str:
    """The `musegen train` command line that reproduces a training config (writing ``out``,
    default runs/<arch>, and starting from ``init`` where the run was a fine-tune)."""
    data = " ".join(data or ["data/folk"])
    parts = [f"musegen train --arch {arch} --data {data} --out {out or f'runs/{arch}'}"]
    if init:
        parts.append(f"--init {init}")
    if tcfg.get("mix"):
        parts.append("--mix " + " ".join(f"{w:g}" for w in tcfg["mix"]))
    for key in (
        "preset",
        "tokens",
        "batch_size",
        "seq_len",
        "lr",
        "warmup_steps",
        "max_shift",
        "eval_every",
        "seed",
    ):
        if key in tcfg:
            parts.append(f"--{key.replace('_', '-')} {tcfg[key]}")
    if tcfg.get("octaves"):
        parts.append(f"--octaves {tcfg['octaves']}")
    if tcfg.get("chord_order", "bass") != "bass":
        parts.append(f"--chord-order {tcfg['chord_order']}")
    if tcfg.get("precision", "auto") != "auto":
        parts.append(f"--precision {tcfg['precision']}")
    if "dropout" in tcfg.get("overrides", {}):
        parts.append(f"--dropout {tcfg['overrides']['dropout']}")
    rate = tcfg.get("infill_rate", 0.0)  # checkpoints from before infilling had none
    parts.append(f"--infill-rate {rate}")
    if rate:
        parts.append(f"--infill-form {tcfg.get('infill_form', 'psm')}")
    return " ".join(parts)


def training_stages(training: dict) -> list[dict]:
    """The training records of a checkpoint's stages, first first: those of the checkpoints it
    was fine-tuned from (``--init``, as far back as they were recorded), then its own."""
    before = (training.get("init") or {}).get("training")
    return [*(training_stages(before) if before else []), training]


def train_commands(arch: str, training: dict) -> list[str]:
    """The `musegen train` commands that reproduce a training record, one per stage: the
    earlier stages write ``runs/<arch>-stage1``, ``-stage2``..., each starting from the one
    before, and the last writes ``runs/<arch>``. A first stage fine-tuned from a checkpoint
    without a training record names that checkpoint as given."""
    out = f"runs/{arch}"
    stages = training_stages(training)
    outs = [f"{out}-stage{n}" for n in range(1, len(stages))] + [out]
    first_init = (stages[0].get("init") or {}).get("checkpoint")
    inits = [first_init, *outs[:-1]]
    return [
        train_command(arch, stage.get("config", {}), data_args(stage), stage_out, init)
        for stage, stage_out, init in zip(stages, outs, inits, strict=True)
    ]


def total_tokens(training: dict) -> int:
    """Tokens seen by a checkpoint, counting those of the checkpoints it was fine-tuned from."""
    return sum(stage.get("tokens_seen", 0) for stage in training_stages(training))


def render_card(config: dict) -> str:
    """The model card (README.md) of a checkpoint, rendered from its config.json."""
    arch = config["arch"]
    tr = config.get("training", {})
    tcfg = tr.get("config", {})
    corpora = corpus_names(tr)
    sources = [CORPUS_TEXT.get(name, f"the `{name}` folder of MIDI files") for name in corpora]
    shares = [c.get("share") for c in tr.get("corpora", [])]
    if len(sources) > 1 and all(shares):
        sources = [
            f"{text} ({share:.0%} of the windows)"
            for text, share in zip(sources, shares, strict=True)
        ]
    lines = [
        f"# musegen {arch} ({tcfg.get('preset', 'custom')})",
        "",
        f"musegen's {ARCH_NAMES.get(arch, arch)} decoder over its REMI-style tokens, "
        f'{config["parameters"]:,} parameters. Load it with `musegen.load("{arch}")` '
        f'(shipped) or `musegen.load("path/to/this/folder")`.',
        "",
        "## Data and licence",
        "",
        "Trained on the training split of " + "; and of ".join(sources) + ". "
        "**The music21 corpus is for non-commercial use; so is this model.**",
        "",
        "## Training",
        "",
    ]
    if tr:
        shift = (
            f"transposition +-{tcfg['max_shift']} semitones"
            if tcfg.get("max_shift")
            else "no transposition augmentation"
        )
        if tcfg.get("octaves"):
            shift += f" and +-{tcfg['octaves']} octaves"
        planned = tr.get("planned_steps")
        kept = []
        if planned and tr.get("steps") != planned:
            kept = [
                f"- planned for {planned:,} steps; this is the run's best checkpoint on validation"
            ]
        rate = tcfg.get("infill_rate", 0.0)
        infill = (
            f"- infilling: {rate:.0%} of the training windows were infilling examples "
            f"({tcfg.get('infill_form', 'psm')} form), so `infill` and `bridge` work"
            if rate
            else "- trained for continuation only: `infill` and `bridge` need a model trained "
            "with infilling"
        )
        stages = training_stages(tr)
        gpu_note = []
        if any(str(s.get("device", "")).startswith("cuda") for s in stages):
            which = "command trains" if len(stages) == 1 else "commands train"
            gpu_note = [
                f"- the same {which} on a CPU too, with the same recipe; there a GPU stage runs "
                "in float32, not bf16, unless the CPU has bfloat16 instructions (AVX-512 BF16 or "
                "AMX), so its weights come out different from these by rounding"
            ]
        init = tr.get("init")
        lineage = []
        if init and len(stages) > 1:
            earlier = "; ".join(
                f"{s.get('steps', 0):,} steps, {s.get('tokens_seen', 0):,} tokens "
                f"on {s.get('device')}"
                for s in stages[:-1]
            )
            lineage = [
                f"- the last of {len(stages)} stages, each fine-tuned from the one before "
                f"(this one from `{init['checkpoint']}`, `runs/{arch}-stage{len(stages) - 1}` "
                f"in the commands below; before it: {earlier}); {total_tokens(tr):,} tokens in all"
            ]
        elif init:
            lineage = [
                f"- fine-tuned from `{init['checkpoint']}` (the weights there when this run began)"
            ]
        lines += [
            *lineage,
            f"- steps: {tr.get('steps', 0):,}, tokens seen: {tr.get('tokens_seen', 0):,}",
            *kept,
            infill,
            f"- batch {tcfg.get('batch_size')} x {tcfg.get('seq_len')} tokens, AdamW, peak lr "
            f"{tcfg.get('lr')}, warmup {tcfg.get('warmup_steps')} steps then cosine, "
            f"{shift}, seed {tcfg.get('seed')}",
            f"- trained on {tr.get('device')}, torch {tr.get('torch')}: "
            f"{tr.get('train_seconds', 0) / 60:.1f} min, {tr.get('tokens_per_s', 0):,} tokens/s",
            *gpu_note,
            "",
            "Reproduce (same data, budget, settings and seed):",
            "",
            "```",
            *(f"musegen data {name} --out data/{name}" for name in built_from(corpora)),
            *train_commands(arch, tr),
            "```",
            "",
        ]
    lines += ["## Results", ""]
    rows = metric_rows(config)
    if rows:
        lines += [
            "| data | tunes | notes | bits/note | pitch bits/note |",
            "|---|---|---|---|---|",
        ]
        for label, m in rows:
            lines.append(
                f"| {label} | {m.get('files')} | {m.get('notes')} | "
                f"{m.get('bits_per_note', float('nan')):.3f} | "
                f"{m.get('pitch_bits_per_note', float('nan')):.3f} |"
            )
        measured = recorded_corpora(config)
        how = ", ".join(
            f"`musegen eval --model checkpoints/{arch} --data data/{name} --record`"
            for name in measured
        )
        lines += [
            "",
            "Bits per note: -log2 p of every token of a tune, summed, divided by its notes. "
            "Pitch bits per note counts only the pitch tokens (comparable to IDyOM's 2.1-2.7 "
            "on Essen folk songs). The validation row is the run's own, over every corpus it "
            "trained on" + (f"; each test row was measured with {how}." if how else "."),
        ]
    else:
        lines.append("Not evaluated yet.")
    return "\n".join(lines) + "\n"


def metrics_key(corpus: str, split: str) -> str:
    """Where `musegen eval --record` stores a corpus split's figures: "folk test"."""
    return f"{corpus} {split}"


def metric_rows(config: dict) -> list[tuple[str, dict]]:
    """A checkpoint's recorded figures as (label, metrics), validation first. Records from
    before per-corpus keys ("test") were measured on the folk corpus."""
    corpora = corpus_names(config.get("training", {}))
    rows = []
    for key, m in config.get("metrics", {}).items():
        if key == "validation":  # the training run's own, over every corpus it trained on
            label = f"validation ({' + '.join(corpora)})"
        elif key == "test":
            label = metrics_key("folk", "test")
        else:
            label = key
        rows.append((label, m))
    return sorted(rows, key=lambda row: not row[0].startswith("validation"))


def recorded_corpora(config: dict) -> list[str]:
    """The corpora whose test split `musegen eval --record` measured for a checkpoint."""
    names = []
    for key in config.get("metrics", {}):
        if key == "test":
            names.append("folk")
        elif key.endswith(" test"):
            names.append(key[: -len(" test")])
    return list(dict.fromkeys(names))


def corpus_metrics(config: dict, corpus: str, split: str = "test") -> dict:
    """The figures recorded for one corpus split (``{}`` when there are none)."""
    metrics = config.get("metrics", {})
    found = metrics.get(metrics_key(corpus, split))
    if found is None and corpus == "folk":
        found = metrics.get(split)  # recorded before per-corpus keys
    return found or {}


def record_metrics(directory: str | Path, key: str, metrics: dict) -> None:
    """Store measured metrics under ``key`` ("validation", or `metrics_key`'s "folk test") in
    a checkpoint's config.json and re-render its model card."""
    path = Path(directory)
    config = read_config(path)
    config.setdefault("metrics", {})[key] = {
        k: v
        for k, v in metrics.items()
        if k in ("files", "notes", "tokens", "bits_per_note", "pitch_bits_per_note")
    }
    write_json(path / CONFIG, config)
    _atomic_write_bytes(path / CARD, render_card(config).encode())
