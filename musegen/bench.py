"""`musegen bench`: how fast musegen is on this machine, next to what users would pick instead.

One run measures, at batch 1 unless said otherwise:

- ``generate_tokens_per_s``: the sampling loop of each shipped model (grammar masks, top-p,
  everything a real continuation does), and ``hf_generate_tokens_per_s``: Hugging Face
  ``generate()`` with top-p on randomly initialised GPT-2 and Mamba-2 of the same size as the
  shipped Transformer and Mamba (when ``transformers`` is installed: ``musegen[bench]``);
  both continue the same 16-bar primer;
- ``step_ms_at_position``: one decoder step after ~64 and ~4000 tokens (`bench_models.step_ms`);
- ``continue_ms``: an 8-bar continuation of a 16-bar primer end to end (parse the file,
  generate, write the output file), per model, and 4 variations at once;
- ``train_tokens_per_s``: forward + backward + AdamW step at batch 16 x 512;
- ``tokenize_files_per_s``: musegen and MidiTok REMI on the same files (MidiTok when installed).

Every figure is the median of several runs with its spread (min, max). The 16-bar primer is
composed by the shipped Mamba model from a fixed seed, so the benchmark needs no corpus. This is
a program, not a test: absolute numbers depend on the machine and its load.
"""

from __future__ import annotations

import io
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from musegen.models import ARCHITECTURES

PRIMER_BARS = 16
CONTINUE_BARS = 8


def spread(values: list[float]) -> dict[str, float]:
    """Median and range of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls, after one warm-up call."""
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def make_primer(model, bars: int = PRIMER_BARS) -> bytes:
    """A ``bars``-bar melody composed by ``model`` (a `MuseGen`; seed 0), as MIDI bytes."""
    pm = model.continue_midi(None, bars=bars, seed=0, key="D major")
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def generate_speed(models: dict, primer: bytes, bars: int, repeats: int) -> dict:
    """Tokens/s of musegen's sampling loop (prefill included) per model."""
    out = {}
    for name, m in models.items():
        prepared = m.prepare(primer)
        rates = []
        for r in range(repeats + 1):
            t0 = time.perf_counter()
            ids = m.generate_ids(prepared, bars=bars, seed=r)[0]
            if r:  # the first run is warm-up
                rates.append(len(ids) / (time.perf_counter() - t0))
        out[name] = spread(rates)
    return out


def hf_models(like: dict) -> dict[str, torch.nn.Module]:
    """Randomly initialised Hugging Face models shaped like the shipped ones (or {})."""
    try:
        from transformers import GPT2Config, GPT2LMHeadModel, Mamba2Config, Mamba2ForCausalLM
        from transformers.utils import logging
    except ImportError:
        return {}
    logging.set_verbosity_error()
    torch.manual_seed(0)
    out: dict[str, torch.nn.Module] = {}
    if "transformer" in like:
        c = like["transformer"].model.config
        out["gpt2"] = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=c.vocab_size,
                n_positions=1024,
                n_embd=c.d_model,
                n_layer=c.n_layers,
                n_head=c.n_heads,
            )
        )
    if "mamba" in like:
        c = like["mamba"].model.config
        out["mamba2"] = Mamba2ForCausalLM(
            Mamba2Config(
                vocab_size=c.vocab_size,
                hidden_size=c.d_model,
                num_hidden_layers=c.n_layers,
                state_size=c.d_state,
                expand=c.expand,
                head_dim=c.headdim,
                num_heads=c.nheads,
                n_groups=c.ngroups,
                conv_kernel=c.d_conv,
                chunk_size=c.chunk_size,
                tie_word_embeddings=True,
            )
        )
    return {k: v.eval() for k, v in out.items()}


def hf_generate_speed(hf: dict, prompt: list[int], new_tokens: int, repeats: int) -> dict:
    """Tokens/s of ``generate()`` with top-p 0.95 for exactly ``new_tokens`` new tokens."""
    ids = torch.tensor([prompt])
    out = {}
    for name, model in hf.items():

        def run(model=model) -> None:
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=new_tokens,
                    min_new_tokens=new_tokens,
                    do_sample=True,
                    top_p=0.95,
                    top_k=0,
                    pad_token_id=0,
                )

        out[name] = spread([new_tokens / s for s in _timed(run, repeats)])
        out[name]["parameters"] = sum(p.numel() for p in model.parameters())
    return out


def continue_time(models: dict, primer: bytes, bars: int, repeats: int, tmp: Path) -> dict:
    """End-to-end ms: MIDI file in, ``bars``-bar continuation written out; and 4 variations."""
    path = tmp / "primer.mid"
    path.write_bytes(primer)
    out = {}
    for name, m in models.items():
        seeds = iter(range(10**6))

        def one(m=m, seeds=seeds) -> None:
            m.continue_midi(path, bars=bars, seed=next(seeds)).write(str(tmp / "out.mid"))

        def four(m=m, seeds=seeds) -> None:
            for i, pm in enumerate(m.variations(path, n=4, bars=bars, seed=next(seeds))):
                pm.write(str(tmp / f"out_{i}.mid"))

        out[name] = {
            "one": spread([1e3 * s for s in _timed(one, repeats)]),
            "four_variations": spread([1e3 * s for s in _timed(four, repeats)]),
        }
    return out


def step_costs(models: dict, positions: list[int], steps: int) -> dict:
    """Median ms of one decoder step at each position, per model (runs in turns)."""
    from musegen.bench_models import step_ms

    return {
        name: {str(p): ms for p, ms in step_ms(m.model, positions, steps).items()}
        for name, m in models.items()
    }


def plot_step_costs(costs: dict, path: str | Path) -> None:
    """Step ms against position, one line per model, as a PNG (needs matplotlib)."""
    from musegen.render import new_figure

    fig = new_figure((6, 3.6))
    ax = fig.subplots()
    for name, by_pos in costs.items():
        xs = [int(p) for p in by_pos]
        ax.plot(xs, list(by_pos.values()), marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("position (tokens already in context)")
    ax.set_ylabel("ms per step, batch 1")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Cost of one generation step against position", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def train_speed(archs: list[str], batch: int, length: int, iters: int, vocab: int) -> dict:
    """Training tokens/s of each architecture's small preset, median of ``iters`` steps."""
    from musegen.bench_models import train_step_seconds
    from musegen.models import build

    out = {}
    for arch in archs:
        torch.manual_seed(0)
        model = build(arch, vocab, "small")
        seconds = train_step_seconds(model, batch, length, iters)
        out[arch] = spread([batch * length / s for s in seconds])
    return out


def tokenize_speed(files: list[Path], repeats: int) -> dict:
    """Files/s of musegen and MidiTok REMI (when installed) on the same files."""
    from musegen.bench_tokenize import tokenize_speed as measure

    r = measure(files, repeats)
    return {name: s["files_per_s"] for name, s in r["systems"].items()} | {"files": r["files"]}


def _tokenize_files(tmp: Path, quick: bool) -> list[Path]:
    """The bench_tokenize file set when music21 is installed, else the example melodies."""
    from musegen.bench_tokenize import default_files

    files = default_files(40 if quick else 300, str(tmp))  # [] without music21 or abc2midi
    if not files:
        from musegen.checkpoint import examples_dir

        ex = examples_dir()
        files = sorted(ex.glob("*.mid")) if ex else []
    return files


def run(
    quick: bool = False,
    threads: int | None = None,
    progress: Callable = print,
    positions: list[int] | None = None,
) -> dict:
    """Every measurement; ``quick`` is a reduced run (a few seconds) for tests.

    ``positions``: where to time the decoder step (default ~64 and ~4000)."""
    import musegen

    if threads:
        torch.set_num_threads(threads)
    repeats = 2 if quick else 5
    bars = 1 if quick else CONTINUE_BARS
    result: dict[str, Any] = {
        "machine": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
        },
        "quick": quick,
    }
    progress("loading the shipped models")
    models = {name: musegen.load(name, threads=0) for name in ARCHITECTURES}  # as set above
    primer = make_primer(models["mamba"], 2 if quick else PRIMER_BARS)
    with tempfile.TemporaryDirectory(prefix="musegen-bench-") as tmp_name:
        tmp = Path(tmp_name)
        progress("generation speed")
        gen_bars = 2 if quick else 16
        result["generate_tokens_per_s"] = generate_speed(models, primer, gen_bars, repeats)
        hf = hf_models(models)
        if hf:
            prompt = models["mamba"].prepare(primer).context
            new = 16 if quick else 256
            result["hf_generate_tokens_per_s"] = hf_generate_speed(hf, prompt, new, repeats)
        else:
            result["hf_generate_tokens_per_s"] = None
        progress("step cost against position")
        positions = positions or ([64, 256] if quick else [64, 4000])
        result["step_ms_at_position"] = step_costs(models, positions, 10 if quick else 200)
        progress("end-to-end continuation")
        result["continue_ms"] = continue_time(models, primer, bars, repeats, tmp)
        progress("training speed")
        batch, length = (2, 64) if quick else (16, 512)
        vocab = models["mamba"].tokenizer.vocab_size
        result["train_tokens_per_s"] = train_speed(
            list(ARCHITECTURES), batch, length, repeats, vocab
        )
        result["train_tokens_per_s"]["batch"] = [batch, length]
        progress("tokenizing speed")
        files = _tokenize_files(tmp, quick)
        result["tokenize_files_per_s"] = tokenize_speed(files, 1 if quick else 5)
    return result


def _fmt(s: dict, digits: int = 0) -> str:
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}-{s['max']:,.{digits}f})"


def table(r: dict) -> str:
    """The result as a plain-text report (medians with min-max)."""
    lines = [
        f"musegen bench: torch {r['machine']['torch']}, {r['machine']['threads']} threads"
        + (" (quick mode)" if r["quick"] else ""),
        "",
        "generation tokens/s at batch 1 (median, min-max)",
    ]
    hf = r["hf_generate_tokens_per_s"] or {}
    rivals = {"lstm": "gpt2", "transformer": "gpt2", "mamba": "mamba2"}
    for name, s in r["generate_tokens_per_s"].items():
        rival = hf.get(rivals[name])
        vs = f"   {s['median'] / rival['median']:.1f}x HF {rivals[name]}" if rival else ""
        lines.append(f"  {name:<12} {_fmt(s):>24}{vs}")
    for name, s in hf.items():
        lines.append(f"  HF {name:<9} {_fmt(s):>24}   ({s['parameters']:,} parameters)")
    if not hf:
        lines.append("  (Hugging Face: pip install 'musegen[bench]' to compare)")
    lines += ["", "step ms at position"]
    for name, by_pos in r["step_ms_at_position"].items():
        cells = "  ".join(f"@{p}: {ms:.3f}" for p, ms in by_pos.items())
        lines.append(f"  {name:<12} {cells}")
    lines += ["", "continuation end to end, ms (parse, generate, write)"]
    for name, c in r["continue_ms"].items():
        lines.append(
            f"  {name:<12} one: {_fmt(c['one'])}   4 variations: {_fmt(c['four_variations'])}"
        )
    b, t = r["train_tokens_per_s"]["batch"]
    lines += ["", f"training tokens/s (batch {b} x {t})"]
    for name, s in r["train_tokens_per_s"].items():
        if name != "batch":
            lines.append(f"  {name:<12} {_fmt(s):>24}")
    tk = r["tokenize_files_per_s"]
    lines += ["", f"tokenizing files/s ({tk['files']} files)"]
    for name, v in tk.items():
        if name != "files":
            lines.append(f"  {name:<12} {v:>10,.0f}")
    return "\n".join(lines)
