"""`musegen bench`: how fast musegen is on this machine, next to what users would pick instead.

One run measures, at batch 1 unless said otherwise, each figure per runtime (`musegen.runtime`:
ONNX Runtime in int8 and in float32, and torch eager, those installed) side by side:

- ``generate_tokens_per_s``: the sampling loop of each shipped model (grammar masks, top-p,
  everything a real continuation does), and ``hf_generate_tokens_per_s``: Hugging Face
  ``generate()`` with top-p on randomly initialised GPT-2 and Mamba-2 of the same size as the
  shipped Transformer and Mamba (when ``transformers`` is installed: ``musegen[bench]``);
  both continue the same 16-bar primer;
- ``step_ms_at_position``: one decoder step after ~64 and ~4000 tokens (`bench_models.step_ms`);
- ``continue_ms``: an 8-bar continuation of a 16-bar primer end to end (parse the file,
  generate, write the output file), per model: of a clip new to the model, of the same clip
  again (ONNX Runtime keeps its last prefills), and 4 variations at once; and
  ``continue_ms_busy_core``: the single continuation again while another process keeps one
  core busy (a DAW playing, a second job);
- ``fresh_process_s``: a new process running ``musegen --help``, and ``musegen generate``
  (process start to file written, the default model);
- ``train_tokens_per_s``: forward + backward + AdamW step at batch 16 x 512;
- ``tokenize_files_per_s``: musegen and MidiTok REMI on the same files (MidiTok when installed);
- ``installed_mb``: what ``pip install musegen`` puts on disk, musegen and every package its
  own requirements pull in (no extras: no torch), per package as installed here.

Every figure is the median of several runs with its spread (min, max). The 16-bar primer is
composed by the shipped Mamba model from a fixed seed, so the benchmark needs no corpus. This is
a program, not a test: absolute numbers depend on the machine and its load.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from musegen.errors import ConfigError
from musegen.io.midi_out import pretty_midi_bytes, write_pretty_midi
from musegen.options import ARCHITECTURES
from musegen.runtime import installed

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
    return pretty_midi_bytes(model.continue_midi(None, bars=bars, seed=0, key="D major"))


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


def hf_models(like: dict) -> dict[str, Any]:
    """Randomly initialised Hugging Face models shaped like the shipped ones (or {})."""
    try:
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel, Mamba2Config, Mamba2ForCausalLM
        from transformers.utils import logging
    except ImportError:
        return {}
    logging.set_verbosity_error()
    torch.manual_seed(0)
    out: dict[str, Any] = {}
    if "transformer" in like:
        c = like["transformer"].config["model"]
        out["gpt2"] = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=c["vocab_size"],
                n_positions=1024,
                n_embd=c["d_model"],
                n_layer=c["n_layers"],
                n_head=c["n_heads"],
            )
        )
    if "mamba" in like:
        c = like["mamba"].config["model"]
        out["mamba2"] = Mamba2ForCausalLM(
            Mamba2Config(
                vocab_size=c["vocab_size"],
                hidden_size=c["d_model"],
                num_hidden_layers=c["n_layers"],
                state_size=c["d_state"],
                expand=c["expand"],
                head_dim=c["headdim"],
                num_heads=c["d_model"] * c["expand"] // c["headdim"],
                n_groups=c["ngroups"],
                conv_kernel=c["d_conv"],
                chunk_size=c["chunk_size"],
                tie_word_embeddings=True,
            )
        )
    return {k: v.eval() for k, v in out.items()}


def hf_generate_speed(hf: dict, prompt: list[int], new_tokens: int, repeats: int) -> dict:
    """Tokens/s of ``generate()`` with top-p 0.95 for exactly ``new_tokens`` new tokens."""
    import torch

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


def continue_time(
    models: dict, primer: bytes, bars: int, repeats: int, tmp: Path, four: bool = True
) -> dict:
    """End-to-end ms: MIDI file in, ``bars``-bar continuation written out, the clip new to
    the model (``one``); and (``four``) the same clip again, its prefill kept by ONNX
    Runtime (``again``), and 4 variations at once of a new clip."""
    path = tmp / "primer.mid"
    path.write_bytes(primer)
    out = {}
    for name, m in models.items():
        seeds = iter(range(10**6))
        forget = getattr(m.runtime, "forget", lambda: None)

        def one(m=m, seeds=seeds, forget=forget) -> None:
            forget()
            write_pretty_midi(m.continue_midi(path, bars=bars, seed=next(seeds)), tmp / "out.mid")

        def again(m=m, seeds=seeds) -> None:
            write_pretty_midi(m.continue_midi(path, bars=bars, seed=next(seeds)), tmp / "out.mid")

        def four_at_once(m=m, seeds=seeds, forget=forget) -> None:
            forget()
            for i, pm in enumerate(m.variations(path, n=4, bars=bars, seed=next(seeds))):
                write_pretty_midi(pm, tmp / f"out_{i}.mid")

        out[name] = {"one": spread([1e3 * s for s in _timed(one, repeats)])}
        if four:
            out[name]["again"] = spread([1e3 * s for s in _timed(again, repeats)])
            out[name]["four_variations"] = spread([1e3 * s for s in _timed(four_at_once, repeats)])
    return out


STEP_SPAN = 16  # a step "at position p" is timed at p .. p + STEP_SPAN - 1


def step_costs(models: dict, positions: list[int], steps: int) -> dict:
    """Median ms of one decoder step at each position, per model (runs in turns)."""
    out = {}
    for name, m in models.items():
        if m.runtime.name == "torch":
            from musegen.bench_models import step_ms

            out[name] = {str(p): ms for p, ms in step_ms(m.model, positions, steps).items()}
        else:
            out[name] = {str(p): ms for p, ms in runtime_step_ms(m.runtime, positions, steps)}
    return out


def runtime_step_ms(runtime, positions: list[int], steps: int) -> list[tuple[int, float]]:
    """`bench_models.step_ms` for an ONNX runtime: (position, median ms) pairs, each a step
    at p .. p + `STEP_SPAN` - 1 (the state goes back to the prefilled one between spans).

    A Transformer past its window holds the window's keys whatever the position, so it is
    prefilled with a window and its position counter set (the cost depends on the keys)."""
    import numpy as np

    rng = np.random.default_rng(1)
    prefilled = {}
    for p in positions:
        ids = [int(i) for i in rng.integers(1, 400, min(p, runtime.window or p))]
        _, prefilled[p] = runtime.prefill(ids)
        if "pos" in prefilled[p]:
            prefilled[p]["pos"] = np.array([p], dtype=np.int64)
    times: dict[int, list[float]] = {p: [] for p in positions}
    token = np.array([5], dtype=np.int64)
    for first in range(0, steps, STEP_SPAN):  # the positions in turn, a span each, as a
        for p in positions:  # generation steps one state (the runtime binds to it)
            state = {k: a.copy() for k, a in prefilled[p].items()}  # untimed
            for _ in range(min(STEP_SPAN, steps - first)):
                start = time.perf_counter()
                _, state = runtime.step(token, state)
                times[p].append(time.perf_counter() - start)
    return [(p, 1e3 * statistics.median(t)) for p, t in times.items()]


def new_figure(size: tuple[float, float], dpi: int = 100):
    """A matplotlib Figure not tied to pyplot (it leaves the user's backend alone).

    Raises `ConfigError` without matplotlib, saying what to install."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ConfigError("--plot needs matplotlib: pip install matplotlib") from e
    return Figure(figsize=size, dpi=dpi)


def plot_step_costs(costs: dict, path: str | Path) -> None:
    """Step ms against position, one line per model, as a PNG (needs matplotlib)."""
    fig = new_figure((8, 3.6))
    ax = fig.subplots()
    for runtime, by_model in costs.items():
        for i, (name, by_pos) in enumerate(by_model.items()):
            xs = [int(p) for p in by_pos]
            style = {"onnx int8": "-", "onnx fp32": ":"}.get(runtime, "--")  # colour: model
            ax.plot(
                xs,
                list(by_pos.values()),
                style,
                color=f"C{i}",
                marker="o",
                label=f"{name} ({runtime})",
            )
    ax.set_xscale("log")
    ax.set_xlabel("position (tokens already in context)")
    ax.set_ylabel("ms per step, batch 1")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the lines
    ax.set_title("Cost of one generation step against position", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def train_speed(archs: list[str], batch: int, length: int, iters: int, vocab: int) -> dict:
    """Training tokens/s of each architecture's small preset, median of ``iters`` steps."""
    import torch

    from musegen.bench_models import train_step_seconds
    from musegen.models import build

    out = {}
    generation_threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)  # training uses every core
    for arch in archs:
        torch.manual_seed(0)
        model = build(arch, vocab, "small")
        seconds = train_step_seconds(model, batch, length, iters)
        out[arch] = spread([batch * length / s for s in seconds])
    torch.set_num_threads(generation_threads)
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


# What the bench's columns are: label -> (runtime, precision) for `musegen.load`.
RUNTIME_COLUMNS: dict[str, tuple[str, str]] = {
    "onnx int8": ("onnx", "int8"),
    "onnx fp32": ("onnx", "float32"),
    "torch": ("torch", "float32"),
}


def installed_size() -> dict[str, float]:
    """MB on disk of musegen and every distribution its requirements pull in, extras left
    out, as installed here (files listed in each distribution's RECORD; musegen itself: its
    package and shipped models, however it was installed), largest first."""
    import re
    from importlib import metadata

    from packaging.requirements import Requirement  # onnxruntime's and mido's requirement

    found: dict[str, Any] = {}
    todo = ["musegen"]
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in found:
            continue
        try:
            found[name] = dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for text in dist.requires or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or marker.evaluate({"extra": ""}):  # a plain install, here
                todo.append(requirement.name)

    def megabytes(dist: Any) -> float:
        total = 0
        for f in dist.files or []:
            with contextlib.suppress(OSError):
                total += dist.locate_file(f).stat().st_size
        return total / 1e6

    sizes = {name: megabytes(dist) for name, dist in found.items()}
    from musegen.checkpoint import SHIPPED_DIR

    folders = [Path(__file__).parent, SHIPPED_DIR]
    files = [
        f for d in folders for f in d.rglob("*") if f.is_file() and "__pycache__" not in f.parts
    ]
    sizes["musegen"] = sum(f.stat().st_size for f in files) / 1e6
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


def available_runtimes() -> list[str]:
    """The runtime columns installed here (`RUNTIME_COLUMNS`), ONNX Runtime first."""
    modules = {"onnx": "onnxruntime", "torch": "torch"}
    return [c for c, (rt, _) in RUNTIME_COLUMNS.items() if installed(modules[rt])]


def cpu_model() -> str:
    """The CPU's model name (Linux), else what the platform module says."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextlib.contextmanager
def busy_core() -> Iterator[None]:
    """Another process spinning on one core for the duration of the block."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it get going
        yield
    finally:
        spinner.kill()
        spinner.wait()


def _musegen_command() -> list[str]:
    """How a user starts musegen: the console script if installed, else ``python -m``."""
    script = shutil.which("musegen")
    return [script] if script else [sys.executable, "-m", "musegen"]


def fresh_process(primer: Path, bars: int, repeats: int, tmp: Path) -> dict:
    """Seconds for a new process: ``musegen --help``, and ``musegen generate`` from process
    start to the file written (default model and runtime, one warm-up run each)."""
    cmd = _musegen_command()
    out_file = tmp / "fresh.mid"
    generate = [*cmd, "generate", str(primer), "-o", str(out_file), "--bars", str(bars)]

    def run(args: list[str]) -> None:
        subprocess.run(args, check=True, capture_output=True)

    return {
        "help": spread(_timed(lambda: run([*cmd, "--help"]), repeats)),
        "generate": spread(_timed(lambda: run([*generate, "--seed", "1"]), repeats)),
    }


def run(
    quick: bool = False,
    threads: int | None = None,
    progress: Callable = print,
    positions: list[int] | None = None,
    primer_file: str | Path | None = None,
) -> dict:
    """Every measurement; ``quick`` is a reduced run (a few seconds) for tests.

    ``threads``: generation threads (None: musegen's default, `musegen.load`).
    ``positions``: where to time the decoder step (default ~64 and ~4000).
    ``primer_file``: a MIDI clip to continue instead of the composed 16-bar primer."""
    import musegen
    from musegen.options import generation_threads

    runtimes = available_runtimes()
    repeats = 2 if quick else 5
    bars = 1 if quick else CONTINUE_BARS
    result: dict[str, Any] = {
        "machine": {
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "threads": generation_threads(threads),
            "runtimes": {rt: _version(RUNTIME_COLUMNS[rt][0]) for rt in runtimes},
        },
        "quick": quick,
    }
    progress(f"loading the shipped models ({', '.join(runtimes)})")
    models = {
        column: {
            name: musegen.load(name, runtime=rt, precision=bits, threads=threads)
            for name in ARCHITECTURES
        }
        for column, (rt, bits) in ((c, RUNTIME_COLUMNS[c]) for c in runtimes)
    }
    first = models[runtimes[0]]
    if primer_file is not None:
        primer = Path(primer_file).read_bytes()
        first["mamba"].prepare(primer)  # a file that cannot be read fails now
    else:
        primer = make_primer(first["mamba"], 2 if quick else PRIMER_BARS)
    result["primer"] = str(primer_file) if primer_file else f"composed, {PRIMER_BARS} bars"
    positions = positions or ([64, 256] if quick else [64, 4000])
    with tempfile.TemporaryDirectory(prefix="musegen-bench-") as tmp_name:
        tmp = Path(tmp_name)
        gen_bars = 2 if quick else 16
        for key in ("generate_tokens_per_s", "step_ms_at_position", "continue_ms"):
            result[key] = {}
        result["continue_ms_busy_core"] = {}
        for rt in runtimes:
            progress(f"{rt}: generation speed, step cost, end-to-end continuation")
            result["generate_tokens_per_s"][rt] = generate_speed(
                models[rt], primer, gen_bars, repeats
            )
            result["step_ms_at_position"][rt] = step_costs(
                models[rt], positions, 10 if quick else 200
            )
            result["continue_ms"][rt] = continue_time(models[rt], primer, bars, repeats, tmp)
            with busy_core():
                busy = continue_time(models[rt], primer, bars, repeats, tmp, four=False)
            result["continue_ms_busy_core"][rt] = {n: c["one"] for n, c in busy.items()}
        hf = hf_models(first)
        if hf:
            progress("Hugging Face generate()")
            prompt = first["mamba"].prepare(primer).context
            new = 16 if quick else 256
            result["hf_generate_tokens_per_s"] = hf_generate_speed(hf, prompt, new, repeats)
        else:
            result["hf_generate_tokens_per_s"] = None
        progress("fresh processes")
        (tmp / "primer.mid").write_bytes(primer)
        result["fresh_process_s"] = fresh_process(tmp / "primer.mid", bars, repeats, tmp)
        if installed("torch"):
            progress("training speed")
            batch, length = (2, 64) if quick else (16, 512)
            vocab = first["mamba"].tokenizer.vocab_size
            result["train_tokens_per_s"] = train_speed(
                list(ARCHITECTURES), batch, length, repeats, vocab
            )
            result["train_tokens_per_s"]["batch"] = [batch, length]
        else:
            result["train_tokens_per_s"] = None
        result["installed_mb"] = installed_size()
        progress("tokenizing speed")
        files = _tokenize_files(tmp, quick)
        result["tokenize_files_per_s"] = tokenize_speed(files, 1 if quick else 5)
    return result


def _version(runtime: str) -> str:
    from importlib.metadata import version

    return version("onnxruntime" if runtime == "onnx" else "torch")


def _fmt(s: dict, digits: int = 0) -> str:
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}-{s['max']:,.{digits}f})"


def table(r: dict) -> str:
    """The result as a plain-text report (medians with min-max)."""
    m = r["machine"]
    versions = ", ".join(sorted({f"{rt.split()[0]} {v}" for rt, v in m["runtimes"].items()}))
    lines = [
        f"musegen bench: {m['cpu']}, {m['cpus']} CPUs; {versions}; {m['threads']} generation "
        "thread(s)" + (" (quick mode)" if r["quick"] else ""),
        f"primer: {r['primer']}",
        "",
        "generation tokens/s at batch 1 (median, min-max)",
    ]
    hf = r["hf_generate_tokens_per_s"] or {}
    rivals = {"lstm": "gpt2", "transformer": "gpt2", "mamba": "mamba2"}
    for rt, by_model in r["generate_tokens_per_s"].items():
        for name, s in by_model.items():
            rival = hf.get(rivals[name])
            vs = f"   {s['median'] / rival['median']:.1f}x HF {rivals[name]}" if rival else ""
            lines.append(f"  {name:<12} {rt:<9} {_fmt(s):>24}{vs}")
    for name, s in hf.items():
        lines.append(f"  HF {name:<19} {_fmt(s):>24}   ({s['parameters']:,} parameters)")
    if not hf:
        lines.append("  (Hugging Face: pip install 'musegen[bench]' to compare)")
    lines += ["", "step ms at position"]
    for rt, by_model in r["step_ms_at_position"].items():
        for name, by_pos in by_model.items():
            cells = "  ".join(f"@{p}: {ms:.3f}" for p, ms in by_pos.items())
            lines.append(f"  {name:<12} {rt:<9} {cells}")
    lines += [
        "",
        "continuation end to end, ms (parse, generate, write): a new clip; the same clip "
        "again; 4 variations; a new clip with a core busy",
    ]
    for rt, by_model in r["continue_ms"].items():
        for name, c in by_model.items():
            busy = r["continue_ms_busy_core"][rt][name]
            lines.append(
                f"  {name:<12} {rt:<9} new: {_fmt(c['one'])}   again: {_fmt(c['again'])}   "
                f"4 variations: {_fmt(c['four_variations'])}   busy: {_fmt(busy)}"
            )
    f = r["fresh_process_s"]
    lines += [
        "",
        "a fresh process, s",
        f"  musegen --help     {_fmt(f['help'], 3)}",
        f"  musegen generate   {_fmt(f['generate'], 3)}   (start to file written)",
    ]
    if r["train_tokens_per_s"]:
        b, t = r["train_tokens_per_s"]["batch"]
        lines += ["", f"training tokens/s (batch {b} x {t}, torch, every core)"]
        for name, s in r["train_tokens_per_s"].items():
            if name != "batch":
                lines.append(f"  {name:<12} {_fmt(s):>24}")
    sizes = r["installed_mb"]
    top = ", ".join(f"{n} {mb:.1f}" for n, mb in list(sizes.items())[:4])
    lines += [
        "",
        f"installed without torch: {sum(sizes.values()):.0f} MB in {len(sizes)} packages "
        f"({top}, ...)",
    ]
    tk = r["tokenize_files_per_s"]
    lines += ["", f"tokenizing files/s ({tk['files']} files)"]
    for name, v in tk.items():
        if name != "files":
            lines.append(f"  {name:<12} {v:>10,.0f}")
    return "\n".join(lines)
