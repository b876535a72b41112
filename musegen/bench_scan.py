"""Mamba-2's scan on a GPU: mamba_ssm's fused Triton kernel against musegen's own.

    python -m musegen.bench_scan --data data/folk            # needs CUDA and mamba_ssm

On CUDA with ``mamba_ssm`` installed, ``Mamba2.forward`` runs mamba_ssm's fused SSD scan
(``mamba_chunk_scan_combined``) instead of ``ssd_chunked``. This program loads a Mamba-2
checkpoint (the shipped one by default), takes ``--batch`` windows of ``--seq-len`` tokens
from the start of a corpus's validation split and prints, for both scans:

- the loss, the largest logit difference and the worst relative gradient difference, in
  float32 and under bfloat16 autocast;
- the logits of a sequence continued from a carried state against the whole sequence;
- the time of a training step's forward and backward (median of ``--steps``).

``--device cpu`` runs the reference against itself (no kernel there): a check that the
program works, not a measurement. A program that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from musegen.errors import ConfigError


def loss_and_grads(model, x: torch.Tensor, y: torch.Tensor, amp: bool):
    """(logits (B, T, V) as float32, loss, {name: gradient}) of one forward and backward."""
    model.zero_grad(set_to_none=True)
    device = x.device.type
    with torch.autocast(device, torch.bfloat16, enabled=amp):
        logits = model(x)  # (B, T, V)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
    loss.backward()
    grads = {n: p.grad.detach().float().clone() for n, p in model.named_parameters()}
    return logits.detach().float(), loss.item(), grads


def compare(model, x: torch.Tensor, y: torch.Tensor) -> None:
    """Print how far the fused scan is from the reference, in float32 and bf16 autocast."""
    for amp in (False, True):
        model.use_fused_scan(False)
        ref_logits, ref_loss, ref_grads = loss_and_grads(model, x, y, amp)
        model.use_fused_scan(True)
        logits, loss, grads = loss_and_grads(model, x, y, amp)
        worst = max(
            ((grads[n] - g).norm() / g.norm().clamp_min(1e-12)).item() for n, g in ref_grads.items()
        )
        print(
            f"{'bf16 autocast' if amp else 'float32'}: loss {ref_loss:.6f} (reference) "
            f"{loss:.6f} (fused); largest logit difference "
            f"{(logits - ref_logits).abs().max().item():.2e}; worst gradient difference "
            f"{worst:.2%}"
        )


@torch.no_grad()
def carried_state(model, x: torch.Tensor, split: int) -> None:
    """Print how far logits continued from a carried state are from the whole sequence's."""
    for fused in (False, True):
        model.use_fused_scan(fused)
        whole = model(x)  # (B, T, V)
        _, state = model(x[:, :split], return_state=True)
        rest = model(x[:, split:], state)  # (B, T - split, V)
        diff = (rest - whole[:, split:]).abs().max().item()
        print(f"state carried at token {split} ({'fused' if fused else 'reference'}): {diff:.2e}")


def step_ms(model, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Median ms of a training step's forward and backward under bf16 autocast."""
    cuda = x.is_cuda
    times = []
    for i in range(steps + 5):  # the first 5 warm up (and compile the kernels)
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(x.device.type, torch.bfloat16):
            loss = F.cross_entropy(model(x).float().flatten(0, 1), y.flatten())
        loss.backward()
        if cuda:
            torch.cuda.synchronize()
        if i >= 5:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mamba", help="a Mamba-2 checkpoint (default: shipped)")
    p.add_argument("--data", default="data/folk", help="corpus whose validation split is read")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    args = p.parse_args(argv)

    from musegen.checkpoint import load_checkpoint, resolve
    from musegen.data import tokenize_split
    from musegen.models.mamba import _mamba_ssm_scan

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("bench_scan needs a CUDA GPU (or --device cpu to check the program)")
    if args.device == "cuda" and _mamba_ssm_scan() is None:
        raise ConfigError("bench_scan needs mamba_ssm: pip install mamba-ssm")
    model, tokenizer, config = load_checkpoint(resolve(args.model), device=args.device)
    if config["arch"] != "mamba":
        raise ConfigError(f"{args.model} is a {config['arch']} model; give a Mamba-2 one")
    ids = tokenize_split(args.data, "validation", tokenizer, progress=False).ids
    need = args.batch * (args.seq_len + 1)
    if len(ids) < need:
        raise ConfigError(f"{args.data}'s validation split has {len(ids)} tokens; {need} needed")
    windows = torch.as_tensor(ids[:need].astype("int64")).view(args.batch, args.seq_len + 1)
    windows = windows.to(args.device)  # (B, T + 1)
    x, y = windows[:, :-1], windows[:, 1:]  # (B, T) each
    where = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"{args.model} on {where}, torch {torch.__version__}; {args.batch} x {args.seq_len}")
    if args.device == "cpu":
        print("(no fused kernel on a CPU: both sides below are the reference)")
    compare(model, x, y)
    carried_state(model, x, split=args.seq_len * 3 // 5)
    model.train()
    for fused in (False, True):
        model.use_fused_scan(fused)
        ms = step_ms(model, x, y, args.steps)
        print(
            f"{'fused' if fused else 'reference'}: forward + backward {ms:.2f} ms "
            f"(median of {args.steps}), {x.numel() / ms * 1e3:,.0f} tokens/s"
        )


if __name__ == "__main__":
    main()
