"""Speed of the three decoders on this machine: ``python -m musegen.bench_models``.

For each architecture's preset (default ``small``, vocab 450), in its own child process so that
peak memory is its own:

- training throughput: batch 16 x 512, forward + backward + AdamW step, median of a few
  iterations after one warm-up, in tokens per second;
- generation latency at batch 1: prefill to a position (in chunks of 512), then time single
  ``step`` calls under ``torch.inference_mode``; median ms per token at ~64 and ~4000, the
  two positions stepping in turns;
- peak resident set size of the child (``resource.getrusage(RUSAGE_SELF).ru_maxrss``),
  which includes the ~0.3 GB of the Python + torch runtime.

This is a benchmark program, not a test: absolute times on a shared machine drift, so compare
the architectures within one run. Targets: < 1 ms/token at batch 1; LSTM and Mamba step cost
flat with position (within 15% from 64 to 4000); Mamba training within 1.5x the Transformer's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from musegen.bench import STEP_SPAN
from musegen.models import ARCHITECTURES, build, count_parameters
from musegen.train import autocast_dtype

VOCAB = 450


def train_step_seconds(
    model: torch.nn.Module, batch: int, length: int, iters: int, dtype: torch.dtype | None = None
) -> list[float]:
    """Seconds of each of ``iters`` forward + backward + AdamW steps on random tokens (after
    one warm-up step), under autocast to ``dtype`` if given (as `musegen train` runs)."""
    model.train()
    vocab = model.config.vocab_size
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    times = []
    for i in range(iters + 1):  # the first iteration is warm-up
        toks = torch.randint(0, vocab, (batch, length + 1), generator=gen)
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            logits = model(toks[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, vocab), toks[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - start)
    return times


def train_tokens_per_s(
    model: torch.nn.Module, batch: int, length: int, iters: int, dtype: torch.dtype | None = None
) -> float:
    """Median tokens/s of forward + backward + AdamW step on random tokens."""
    seconds = train_step_seconds(model, batch, length, iters, dtype)
    return batch * length / statistics.median(seconds)


@torch.inference_mode()
def step_ms(model: torch.nn.Module, positions: list[int], steps: int) -> dict[int, float]:
    """Median ms of one ``step`` at batch 1 after prefilling each of ``positions`` tokens.

    Every `STEP_SPAN` steps the state goes back to a copy of the prefilled one (untimed), so
    the figure for p is a step at p .. p + 15 however many steps are timed (a Transformer's
    step costs more as its cache fills). The positions take turns step by step, so a burst
    of load elsewhere hits them alike.
    """
    model.eval()
    gen = torch.Generator().manual_seed(1)
    vocab = model.config.vocab_size
    toks = torch.randint(0, vocab, (1, max(positions) + steps), generator=gen)
    states = {}
    for p in positions:  # prefill in chunks of 512
        state = None
        for lo in range(0, p, 512):
            _, state = model(toks[:, lo : min(lo + 512, p)], state=state, return_state=True)
        states[p] = state
    prefilled, times = states, {p: [] for p in positions}
    for i in range(steps):
        if i % STEP_SPAN == 0:
            states = {p: s.select(0) for p, s in prefilled.items()}  # copies, untimed
        for p in positions:
            start = time.perf_counter()
            _, states[p] = model.step(toks[:, p + i % STEP_SPAN], states[p])
            times[p].append(time.perf_counter() - start)
    return {p: 1e3 * statistics.median(t) for p, t in times.items()}


def bench_one(
    arch: str, preset: str, iters: int, steps: int, positions: list[int], precision: str
) -> dict:
    torch.manual_seed(0)
    dtype = autocast_dtype(precision, torch.device("cpu"))
    model = build(arch, VOCAB, preset)
    result = {
        "arch": arch,
        "params": count_parameters(model),
        "train_tokens_per_s": train_tokens_per_s(model, 16, 512, iters, dtype),
    }
    for p, ms in step_ms(model, positions, steps).items():
        result[f"step_ms@{p}"] = ms
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--arch",
        choices=ARCHITECTURES,
        action="append",
        help="architecture to run (repeatable; default: all)",
    )
    parser.add_argument("--preset", default="small")
    parser.add_argument("--iters", type=int, default=5, help="timed training iterations")
    parser.add_argument("--steps", type=int, default=200, help="timed generation steps")
    parser.add_argument("--positions", type=int, nargs="+", default=[64, 4000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--precision",
        choices=["float32", "bfloat16"],
        default="float32",
        help="training under bfloat16 autocast, as `musegen train` does where the CPU runs it",
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines, no table")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    archs = args.arch or list(ARCHITECTURES)
    torch.set_num_threads(args.threads)

    if args.child:  # one architecture in this process
        result = bench_one(
            archs[0], args.preset, args.iters, args.steps, args.positions, args.precision
        )
        print(json.dumps(result))
        return

    load_before = os.getloadavg()[0]
    rows = []
    for arch in archs:
        cmd = [
            sys.executable,
            "-m",
            "musegen.bench_models",
            "--child",
            "--arch",
            arch,
            "--preset",
            args.preset,
            "--iters",
            str(args.iters),
            "--steps",
            str(args.steps),
            "--threads",
            str(args.threads),
            "--precision",
            args.precision,
            "--positions",
            *map(str, args.positions),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        if args.json:
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        return

    first, last = args.positions[0], args.positions[-1]
    print(
        f"musegen.bench_models: preset {args.preset}, vocab {VOCAB}, torch "
        f"{torch.__version__}, {args.threads} threads, training in {args.precision}; "
        f"load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after (other processes slow every number down)"
    )
    header = (
        f"{'arch':12} {'params':>9} {'train tok/s':>12} "
        + " ".join(f"{f'ms/tok@{p}':>12}" for p in args.positions)
        + f" {'@' + str(last) + '/@' + str(first):>11} {'peak RSS MiB':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = r[f"step_ms@{last}"] / r[f"step_ms@{first}"]
        print(
            f"{r['arch']:12} {r['params']:>9,} {r['train_tokens_per_s']:>12,.0f} "
            + " ".join(f"{r[f'step_ms@{p}']:>12.3f}" for p in args.positions)
            + f" {ratio:>11.2f} {r['peak_rss_mib']:>13,.0f}"
        )
    by_arch = {r["arch"]: r for r in rows}
    if {"mamba", "transformer"} <= by_arch.keys():
        tps = {arch: by_arch[arch]["train_tokens_per_s"] for arch in ("mamba", "transformer")}
        slower = tps["transformer"] / tps["mamba"]
        print(f"Mamba training time / Transformer training time: {slower:.2f}")
    print(
        "peak RSS: resource.getrusage(RUSAGE_SELF).ru_maxrss of each child process "
        "(includes the Python + torch runtime)"
    )


if __name__ == "__main__":
    main()
