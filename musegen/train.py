"""The training loop: one process, or several with torchrun (DistributedDataParallel).

Deterministic on CPU for a given seed. Every ``eval_every`` steps it measures validation bits
per note, keeps the best weights as the checkpoint in ``out`` and writes a resume state
(optimizer, schedule position, torch's RNG state) to ``out/resume``, so a killed run continued
with ``resume=True`` ends with the same weights as one that was never interrupted. Batch ``i``
is a function of the seed and ``i`` alone (`musegen.data.WindowMaker`), made ahead by worker
processes beside a GPU.

With torchrun every rank draws the same global batch and trains on its own rows; DDP averages
the gradients, so N processes match one process on the same global batch.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from musegen import checkpoint as ckpt
from musegen.data import (
    InfillMix,
    Transposer,
    WindowMaker,
    batch_stream,
    corpus_name,
    join_arrays,
    mix_shares,
    tokenize_split,
)
from musegen.errors import ConfigError, MuseGenError
from musegen.evaluate import evaluate_model
from musegen.models import build, count_parameters, grow_vocab
from musegen.models.lstm import onednn_runs
from musegen.tokens.tokenizer import Tokenizer
from musegen.train_config import TrainConfig

RESUME_DIR = "resume"
LOG = "log.csv"
CURVE = "curve.png"


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to ``lr * min_lr_ratio`` at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """What the run computes in under autocast, or None for plain float32.

    "auto" is bfloat16 on a GPU, and on a CPU where oneDNN runs bfloat16 natively (AVX-512
    BF16 or AMX): on this project's AMD EPYC (Zen 5) a training step is 1.5-1.9x as fast
    (`python -m musegen.bench_models --precision bfloat16`). On other CPUs (AVX2) bfloat16
    is emulated, slower than float32, so "auto" is float32 there.
    """
    if precision == "float32":
        return None
    if precision == "bfloat16" or device.type == "cuda":
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cpu" and onednn_runs(torch.bfloat16) else None


def data_workers(cfg: TrainConfig, device: torch.device) -> int:
    """Processes that make training batches ahead: ``cfg.workers``, else none on a CPU (the
    model needs its cores) and up to 4 beside a GPU (which outruns one core's windows), fewer
    where this process has few cores to itself (its share under torchrun)."""
    if cfg.workers is not None:
        return cfg.workers
    if device.type == "cpu":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    per_rank = (cores or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # torchrun
    return max(0, min(4, per_rank - 2))


def check_writable(out: Path, need_bytes: int) -> None:
    """Fail before training if the output folder cannot take the checkpoints."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise MuseGenError(f"cannot write to --out {out}: {e.strerror or e}") from e
    free = shutil.disk_usage(out).free
    if free < need_bytes:
        raise MuseGenError(
            f"not enough disk space in {out}: {free // 2**20} MB free, "
            f"{need_bytes // 2**20} MB needed for checkpoints"
        )


# ------------------------------------------------------------------ distributed


def _dist() -> tuple[int, int, bool]:
    """(rank, world size, whether this call started the process group)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, False
    import torch.distributed as dist

    started = not dist.is_initialized()
    if started:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return dist.get_rank(), world, started


def _dist_done(started: bool) -> None:
    """Wait for every rank, then close a process group that `_dist` started: a rank that exits
    with the group open can abort in its communication threads while the others still work."""
    if started:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


# ------------------------------------------------------------------ resume state


def save_resume(out: Path, model, optimizer, state: dict) -> None:
    """Write the resume state as a new folder, then swap it in (never half-written)."""
    tmp = out / f".{RESUME_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for pid, s in opt["state"].items():
        for k, v in s.items():
            tensors[f"opt.{pid}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    tensors["torch_rng"] = torch.get_rng_state()
    ckpt.save_tensors(tmp / "state.safetensors", tensors)
    ckpt.write_json(tmp / "state.json", {**state, "param_groups": opt["param_groups"]})
    final, old = out / RESUME_DIR, out / f".{RESUME_DIR}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _resume_folder(out: Path) -> Path:
    folder = out / RESUME_DIR
    if not folder.is_dir() and (out / f".{RESUME_DIR}.old").is_dir():
        folder = out / f".{RESUME_DIR}.old"  # killed between the two renames
    return folder


def has_resume_state(out: Path) -> bool:
    """Whether ``out`` holds a resume checkpoint."""
    return (_resume_folder(out) / "state.json").is_file()


def load_resume(out: Path, model, optimizer) -> dict:
    folder = _resume_folder(out)
    if not (folder / "state.json").is_file():
        raise MuseGenError(f"--resume: no resume state in {out}; start without --resume")
    state = json.loads((folder / "state.json").read_text())
    tensors = ckpt.load_tensors(folder / "state.safetensors")
    ckpt.load_weights(
        model,
        {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")},
        where=str(folder),
    )
    opt_state: dict = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = v
    optimizer.load_state_dict({"state": opt_state, "param_groups": state.pop("param_groups")})
    torch.set_rng_state(tensors["torch_rng"])
    return state


# ------------------------------------------------------------------ logging


def write_curve(out: Path) -> None:
    """PNG of training loss and validation bits per note against tokens seen."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = list(csv.DictReader(open(out / LOG)))
    if not rows:
        return
    tokens = [int(r["tokens"]) / 1e6 for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(tokens, [float(r["train_bits_per_token"]) for r in rows], label="train bits/token")
    ax2 = ax.twinx()
    ax2.plot(tokens, [float(r["val_bits_per_note"]) for r in rows], "C1", label="val bits/note")
    ax.set_xlabel("tokens seen (M)")
    ax.set_ylabel("train bits / token")
    ax2.set_ylabel("validation bits / note")
    fig.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(out / CURVE)
    plt.close(fig)


# ------------------------------------------------------------------ the loop


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> dict:
    """Train a model as configured; return the final metrics. The best weights are in cfg.out.

    Beside a GPU, worker processes make the batches (``cfg.workers``); they import the calling
    script again, so a script that calls this does so under ``if __name__ == "__main__":``.
    """
    rank, world, started_group = _dist()
    device = pick_device(cfg.device)
    out = Path(cfg.out)
    if cfg.batch_size % world:
        raise ConfigError(f"--batch-size {cfg.batch_size} must divide by {world} processes")
    torch.manual_seed(cfg.seed)

    if cfg.init:
        model, tokenizer, init_config = ckpt.load_checkpoint(ckpt.resolve(cfg.init))
        if init_config["arch"] != cfg.arch:
            raise ConfigError(
                f"--init {cfg.init} is a {init_config['arch']} model; use --arch "
                f"{init_config['arch']}"
            )
        if tokenizer.chord_order != cfg.chord_order:
            raise ConfigError(
                f"--init {cfg.init} orders chord tones from the {tokenizer.chord_order}; use "
                f"--chord-order {tokenizer.chord_order}"
            )
        if cfg.infill_rate > 0 and not tokenizer.infill:  # learn infilling: two new tokens
            grown = {k: v for k, v in tokenizer.to_dict().items() if k != "vocab_size"}
            tokenizer = Tokenizer.from_dict({**grown, "infill": True})
            model = grow_vocab(model, cfg.arch, tokenizer.vocab_size)
        model.train()
        init_record = {"checkpoint": cfg.init, "training": init_config.get("training") or {}}
    else:
        init_record = None
        tokenizer = Tokenizer(infill=cfg.infill_rate > 0, chord_order=cfg.chord_order)
        model = build(cfg.arch, tokenizer.vocab_size, cfg.preset, **cfg.overrides)
    model.to(device)
    params = count_parameters(model)
    if rank == 0:
        check_writable(out, need_bytes=params * 4 * 4 + 50 * 2**20)

    show = progress and rank == 0
    train_sets = [tokenize_split(d, "train", tokenizer, progress=show) for d in cfg.data]
    names = [corpus_name(d) for d in cfg.data]
    val_arrays = join_arrays(
        [tokenize_split(d, "validation", tokenizer, progress=False) for d in cfg.data], names
    )
    shares = mix_shares(train_sets, cfg.mix)
    corpora = [
        {"name": n, "dir": d, "train_tokens": len(a.ids), "share": round(float(w), 4)}
        for n, d, a, w in zip(names, cfg.data, train_sets, shares, strict=True)
    ]

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )
    if resume and not has_resume_state(out) and (out / LOG).is_file():
        if rank == 0:  # a run was started here but stopped before its first checkpoint
            print(
                f"--resume: {out} has no checkpoint yet (the run stopped before its first); "
                "starting from the beginning",
                file=sys.stderr,
            )
        resume = False
    state = {"step": 0, "best": None, "stale": 0, "train_seconds": 0.0}
    if resume:
        state = load_resume(out, model, optimizer)
        if state.pop("rng", None) is not None and rank == 0:
            print(
                "--resume: this run was started by an older musegen, which drew its batches "
                "in another order; it goes on with the new order (same data and settings)",
                file=sys.stderr,
            )
    elif rank == 0:
        with open(out / LOG, "w", newline="") as f:
            csv.writer(f).writerow(
                [
                    "step",
                    "tokens",
                    "lr",
                    "train_bits_per_token",
                    "val_bits_per_note",
                    "val_pitch_bits_per_note",
                    "tokens_per_s",
                    "seconds",
                ]
            )

    lo, hi = int(tokenizer.pitch_ids[0]), int(tokenizer.pitch_ids[-1])
    augment = cfg.max_shift or cfg.octaves
    transposer = Transposer(lo, hi, cfg.max_shift, cfg.octaves) if augment else None
    mix = InfillMix(tokenizer, cfg.infill_rate, cfg.infill_form) if cfg.infill_rate else None
    maker = WindowMaker(
        train_sets, cfg.seq_len, cfg.batch_size, cfg.seed, transposer, mix, weights=cfg.mix
    )
    windows = batch_stream(maker, start=state["step"], workers=data_workers(cfg, device))
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    dtype = autocast_dtype(cfg.precision, device)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    tokens_per_step = cfg.batch_size * cfg.seq_len
    bar = tqdm(
        total=cfg.steps,
        initial=state["step"],
        disable=not progress or rank != 0,
        desc=f"train {cfg.arch}",
        file=sys.stderr,
    )
    window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
    model.train()
    try:
        while state["step"] < cfg.steps:
            step = state["step"]
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = torch.from_numpy(next(windows))[rank::world].to(device)  # (B/world, T+1)
            with autocast:
                logits = net(batch[:, :-1])  # (b, T, V)
            loss = F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            state["step"] = step + 1
            window_loss += loss.item()
            window_steps += 1
            bar.update(1)

            last = state["step"] == cfg.steps
            if state["step"] % cfg.eval_every and not last:
                continue
            elapsed = time.perf_counter() - window_start
            state["train_seconds"] += elapsed
            tok_s = window_steps * tokens_per_step / max(elapsed, 1e-9)
            stop = torch.zeros(1)
            if rank == 0:
                metrics = evaluate_model(model, tokenizer, val_arrays, limit=cfg.eval_tunes)
                improved = state["best"] is None or metrics["bits_per_note"] < state["best"]
                if improved:
                    state["best"], state["stale"] = metrics["bits_per_note"], 0
                    ckpt.save_checkpoint(
                        out,
                        model,
                        cfg.arch,
                        tokenizer,
                        training=_training_record(
                            cfg, state, params, device, dtype, corpora, init_record
                        ),
                        metrics={"validation": metrics},
                    )
                else:
                    state["stale"] += 1
                with open(out / LOG, "a", newline="") as f:
                    csv.writer(f).writerow(
                        [
                            state["step"],
                            state["step"] * tokens_per_step,
                            f"{lr:.3e}",
                            f"{window_loss / window_steps / math.log(2):.4f}",
                            f"{metrics['bits_per_note']:.4f}",
                            f"{metrics['pitch_bits_per_note']:.4f}",
                            f"{tok_s:.0f}",
                            f"{state['train_seconds']:.1f}",
                        ]
                    )
                write_curve(out)
                bar.set_postfix(
                    loss=f"{window_loss / window_steps:.3f}",
                    val_bpn=f"{metrics['bits_per_note']:.3f}",
                    tok_s=f"{tok_s:.0f}",
                )
                save_resume(out, model, optimizer, state)
                stop[0] = float(state["stale"] >= cfg.patience)
            if world > 1:
                torch.distributed.broadcast(stop, 0)
            window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
            if stop.item():
                break
    finally:
        windows.close()  # stops the worker processes, also when training fails
    bar.close()
    result = {
        "steps": state["step"],
        "best_val_bits_per_note": state["best"],
        "train_seconds": state["train_seconds"],
    }
    if rank == 0:
        result["best_val_bits_per_note"] = score_kept(out, val_arrays, device)
        ckpt.write_json(out / "train_result.json", result)
    _dist_done(started_group)
    return {**result, "rank": rank}


def score_kept(out: Path, val_arrays, device: torch.device) -> float:
    """Score the kept checkpoint on the whole validation split; record it in its config and card.

    During training every evaluation scores the same ``eval_tunes`` tunes, so the best is
    chosen among like figures; the whole split is scored once, for the weights that are kept.
    """
    model, tokenizer, _ = ckpt.load_checkpoint(out, device)
    metrics = evaluate_model(model, tokenizer, val_arrays)
    ckpt.record_metrics(out, "validation", metrics)
    return metrics["bits_per_note"]


def _training_record(
    cfg: TrainConfig,
    state: dict,
    params: int,
    device: torch.device,
    dtype: torch.dtype | None,
    corpora: list[dict],
    init: dict | None,
) -> dict:
    """The config.json record of a run; ``init``: the checkpoint it was fine-tuned from and
    that checkpoint's own record."""
    record = {
        "config": {k.name: getattr(cfg, k.name) for k in fields(cfg)},
        "corpora": corpora,  # name, dir, train tokens and window share of each --data
        "steps": state["step"],
        "planned_steps": cfg.steps,
        "tokens_seen": state["step"] * cfg.batch_size * cfg.seq_len,
        "train_seconds": round(state["train_seconds"], 1),
        "tokens_per_s": round(
            state["step"] * cfg.batch_size * cfg.seq_len / max(state["train_seconds"], 1e-9)
        ),
        "parameters": params,
        "device": device_text(device, dtype),
        "torch": torch.__version__,
    }
    return {**record, "init": init} if init else record


def device_text(device: torch.device, dtype: torch.dtype | None = None) -> str:
    """Where a run trained, for its model card: "cpu (2 threads)", "cpu (2 threads, bf16
    autocast)", "cuda (NVIDIA H200, bf16 autocast)"."""
    precision = ", bf16 autocast" if dtype == torch.bfloat16 else ""
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads{precision})"
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}{precision})"
    return str(device)
