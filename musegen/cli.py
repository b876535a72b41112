"""`musegen ...`: thin subcommands that parse arguments, call the library and print.

Exit status: 0 done; 2 bad usage or bad input (one line on stderr, no traceback).
Defaults come from the library (dataclass fields and signatures), never restated here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from musegen.errors import ConfigError, MidiError, MuseGenError
from musegen.options import (
    BRIDGE_BARS,
    CHORD_ORDERS,
    INFILL_CANDIDATES,
    INFILL_FORMS,
    MAX_GAP_BARS,
    MAX_VARIATIONS,
    SERVE_PORT,
    TRAIN_PRECISIONS,
    draw_seed,
)

USER_ERROR = 2
MIDI_SUFFIXES = (".mid", ".midi")
THREADS_HELP = (
    "CPU threads for generation (unset: $MUSEGEN_THREADS, else 1, which stays fast while "
    "other programs keep cores busy; 0: the runtime's own setting)"
)
QUANTIZE_HELP = (
    "how the model reads played-in timing: auto (snap an off-grid clip to the grid that fits "
    "it best), off, or a grid: 1/4 1/8 '1/8 swing' 1/8T 1/16 1/16T 1/32; your notes are kept"
)
KEY_HELP = "auto (the clip's) | a key such as 'D major' (unset: any note)"
RUNTIME_HELP = (
    "what runs the model: onnx (ONNX Runtime, no torch needed), torch, or auto (onnx when "
    "onnxruntime is installed and the model has graphs)"
)
PRECISION_HELP = (
    "ONNX Runtime's arithmetic: int8 (weight products in 8 bits: 1.5-3x faster steps, bits "
    "per note within 0.3%%), float32 (the model as trained), or auto (int8 "
    "when the model has int8 graphs)"
)
CANDIDATES_HELP = (
    "sample this many fillings and keep the one that leads best into the next bar (the "
    "model's likelihood of that bar after it); 1 takes the first sample, a little faster, "
    f"with rougher seams (default: {INFILL_CANDIDATES})"
)
TEMPERATURE_HELP = "randomness: below 1 safer and more repetitive, above 1 more adventurous"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except None and False: those mean "unset", which the
    option's own help explains."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(USER_ERROR)


def _defaults(cls) -> dict:
    return {
        f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING
    }


# ------------------------------------------------------------------ subcommands


def _output_path(output: str) -> Path:
    out = Path(output)
    if out.suffix.lower() not in MIDI_SUFFIXES:
        raise ConfigError(f"-o {output}: musegen writes MIDI; give a name ending in .mid")
    return out


def _write(outs: list, out: Path) -> str:
    """Write one file, or OUT_1.mid, OUT_2.mid ... for several; the names written."""
    from musegen.io.midi_out import write_pretty_midi  # here: --help stays light

    paths = (
        [out]
        if len(outs) == 1
        else [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(1, len(outs) + 1)]
    )
    for pm, path in zip(outs, paths, strict=True):
        write_pretty_midi(pm, path)
    return ", ".join(str(p) for p in paths)


def _sampling(args: argparse.Namespace, seed: int) -> dict:
    return dict(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        seed=seed,
        key=args.key,
        pitch_range=args.pitch_range,
    )


def _report_reading(model, primer, args: argparse.Namespace) -> None:
    """Say what was detected in the clip: key, tracks read, played-in timing."""
    if str(args.key).strip().lower() == "auto":
        print(f"key: {model.key_of(primer)} (detected in the primer; --key auto keeps it)")
    if len(primer.grid.tracks) > 1:
        names = ", ".join(t.name or "untitled" for t in primer.grid.tracks)
        print(f"read {len(primer.grid.tracks)} tracks as one part: {names} (--track N picks one)")
    if primer.quantized:
        print(
            f"played-in timing: the model read it on a {primer.quantized} grid "
            "(your notes are kept as played)"
        )


def _bars(n: int) -> str:
    return f"{n} bar" + ("s" if n != 1 else "")


def cmd_generate(args: argparse.Namespace) -> int:
    import time

    from musegen.generate.muse import load

    started = time.perf_counter()
    out = _output_path(args.output)
    model = load(args.model, runtime=args.runtime, threads=args.threads, precision=args.precision)
    seed = draw_seed(args.seed)
    primer = model.prepare(args.input, track=args.track, quantize=args.quantize)
    rows = model.generate_ids(primer, n=args.variations, bars=args.bars, **_sampling(args, seed))
    outs = [model.to_midi(primer, r, continuation_only=args.continuation_only) for r in rows]
    names = _write(outs, out)
    took = time.perf_counter() - started
    print(f"wrote {names} ({_bars(args.bars)}, {model.name}, seed {seed}, {took:.2f} s)")
    if args.input is not None:
        _report_reading(model, primer, args)
    return 0


def bar_range(text: str) -> tuple[int, int]:
    """An argparse type: "FIRST-LAST" bar numbers (or one bar number) -> (first, last)."""
    try:
        parts = [int(x) for x in text.split("-")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(
            f"use FIRST-LAST bar numbers from 1, both included, e.g. 5-8 (got {text!r})"
        )
    return parts[0], parts[1]


def cmd_infill(args: argparse.Namespace) -> int:
    import time

    from musegen.generate.muse import load

    started = time.perf_counter()
    out = _output_path(args.output)
    model = load(args.model, runtime=args.runtime, threads=args.threads, precision=args.precision)
    seed = draw_seed(args.seed)
    first, last = args.bars
    primer = model.prepare(args.input, track=args.track, quantize=args.quantize)
    gap = model.plan_infill(primer, first, last)
    rows = model.infill_ids(
        primer, gap, n=args.variations, candidates=args.candidates, **_sampling(args, seed)
    )
    names = _write([model.infill_to_midi(primer, gap, r) for r in rows], out)
    took = time.perf_counter() - started
    print(
        f"wrote {names} (bars {first}-{last} regenerated, {model.name}, seed {seed}, {took:.2f} s)"
    )
    _report_reading(model, primer, args)
    return 0


def cmd_bridge(args: argparse.Namespace) -> int:
    import time

    from musegen.generate.muse import load

    started = time.perf_counter()
    out = _output_path(args.output)
    model = load(args.model, runtime=args.runtime, threads=args.threads, precision=args.precision)
    seed = draw_seed(args.seed)
    outs = model.bridge(
        args.first,
        args.second,
        args.bars,
        n=args.variations,
        track=args.track,
        quantize=args.quantize,
        candidates=args.candidates,
        **_sampling(args, seed),
    )
    names = _write(outs, out)
    took = time.perf_counter() - started
    print(
        f"wrote {names} ({args.first}, {_bars(args.bars)} of bridge, {args.second}; "
        f"{model.name}, seed {seed}, {took:.2f} s)"
    )
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    from musegen.generate import live
    from musegen.generate.muse import load

    model = load(args.model, runtime=args.runtime, threads=args.threads, precision=args.precision)
    seed = draw_seed(args.seed)
    if args.listen is not None:
        return _call_and_response(model, args, seed)
    port = live.open_output(args.port)
    with port:
        sent = live.play(
            model.stream(
                args.input,
                args.bars,
                seed=seed,
                temperature=args.temperature,
                top_p=args.top_p,
                key=args.key,
                channel=args.channel,
                quantize=args.quantize,
            ),
            port,
        )
    print(f"played {sent} messages on {port.name} (seed {seed})")
    return 0


def _call_and_response(model, args: argparse.Namespace, seed: int) -> int:
    from musegen.generate import listen, live

    if args.input is not None:
        raise ConfigError("--listen answers what is played: give no INPUT file with it")
    if args.bpm is not None and not 20 <= args.bpm <= 400:
        raise ConfigError(f"--bpm must be 20-400 (got {args.bpm})")
    conversation = listen.Conversation(
        model,
        bars=args.bars,
        bpm=args.bpm,
        metre=args.metre,
        seed=seed,
        temperature=args.temperature,
        top_p=args.top_p,
        key=args.key,
    )
    with live.open_input(args.listen) as inport, live.open_output(args.port) as outport:
        print(
            f"listening on {inport.name}, answering on {outport.name} after a bar of rest "
            "(Ctrl+C stops)",
            file=sys.stderr,
        )
        listen.converse(conversation, inport, outport)
    return 0


def _metre(text: str) -> tuple[int, int]:
    try:
        num, den = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"use N/D such as 4/4 or 6/8 (got {text!r})") from None
    if num < 1 or den not in (1, 2, 4, 8, 16):
        raise argparse.ArgumentTypeError(f"use N/D such as 4/4 or 6/8 (got {text!r})")
    return num, den


def cmd_ports(args: argparse.Namespace) -> int:
    from musegen.generate import live

    outs, ins = live.output_names(), live.input_names()
    print("outputs:\n  " + ("\n  ".join(outs) if outs else "none"))
    print("inputs (for --listen):\n  " + ("\n  ".join(ins) if ins else "none"))
    return 0


def _pitch_range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError("use LOW-HIGH in MIDI numbers, e.g. 55-84") from None
    return lo, hi


def _threads(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"use a whole number >= 0 (got {text!r})")
    return n


def _quantize_mode(text: str) -> str:
    from musegen.quantize import parse_mode  # only when the option is parsed, not for --help

    try:
        parse_mode(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def cmd_tokenize(args: argparse.Namespace) -> int:
    from musegen.tokens.tokenizer import Tokenizer

    tok = Tokenizer()
    ids = tok.encode(args.input, track=args.track)
    if args.json:
        print(json.dumps({"ids": ids, "tokens": [tok.id_to_token(i) for i in ids]}))
    else:
        print(" ".join(tok.id_to_token(i) for i in ids))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from musegen.data import build_folk_corpus, corpus_counts
    from musegen.tokens.tokenizer import Tokenizer

    if args.corpus == "bass":
        from musegen.corpus.voices import build_bass_corpus

        manifest = build_bass_corpus(args.source, args.out)
        print(
            f"{len(manifest['tunes'])} bass lines from {manifest['pieces_read']} pieces in "
            f"{manifest['build_seconds']:.0f} s ({manifest['skipped']} without a single-line "
            f"lowest part, {manifest['duplicates_removed']} duplicates) -> {args.out}"
        )
    elif args.corpus == "art":
        from musegen.corpus.art import build_art_corpus

        manifest = build_art_corpus(args.out, progress=not args.quiet)
        print(
            f"{manifest['converted']} pieces from {manifest['files']} score files in "
            f"{manifest['build_seconds']:.0f} s, {manifest['duplicates_removed']} duplicates "
            f"removed -> {args.out}"
        )
    else:
        manifest = build_folk_corpus(args.out, progress=not args.quiet)
        print(
            f"{manifest['converted']} tunes converted, {manifest['duplicates_removed']} "
            f"duplicates removed -> {args.out}"
        )
    counts = corpus_counts(args.out, Tokenizer())
    print(f"{'split':<12}{'tunes':>8}{'notes':>10}{'tokens':>11}")
    for split, c in counts.items():
        print(f"{split:<12}{c['tunes']:>8}{c['notes']:>10}{c['tokens']:>11}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from musegen.train import train
    from musegen.train_config import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    if args.dropout is not None:
        values["overrides"] = {"dropout": args.dropout}
    cfg = TrainConfig(**values)
    result = train(cfg, resume=args.resume, progress=not args.quiet)
    if result["rank"] != 0:  # torchrun: the first process reports
        return 0
    print(
        f"trained {result['steps']} steps in {result['train_seconds']:.0f} s; best validation "
        f"{result['best_val_bits_per_note']:.3f} bits/note; checkpoint in {cfg.out}"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if (args.data is None) == (args.benchmark is None):
        raise ConfigError("give either --data DIR or --benchmark chorales")
    if not 1 <= args.music_samples <= MAX_VARIATIONS:
        raise ConfigError(
            f"--music-samples must be 1 to {MAX_VARIATIONS} (got {args.music_samples})"
        )
    if args.benchmark is not None:
        return _eval_benchmark(args)
    from musegen.evaluate import evaluate_named

    if args.record:
        from musegen.data import is_corpus

        if not is_corpus(args.data):
            raise ConfigError(
                "--record stores a corpus split's figures in the model card; "
                f"{args.data} is a plain folder (build a corpus with musegen data)"
            )
    result = evaluate_named(args.model, args.data, split=args.split, limit=args.limit)
    split = result["split"]
    if args.music and args.model != "ngram":
        from musegen.data import tokenize_split
        from musegen.evaluate import music_statistics
        from musegen.generate.muse import load

        generator = load(args.model, threads=0)  # batch generation: keep torch's threads
        arrays = tokenize_split(args.data, split, generator.tokenizer, progress=False)
        stats = music_statistics(generator, arrays, tunes=args.music, samples=args.music_samples)
        result.update({f"music_{k}": v for k, v in stats.items()})
    if args.record and args.model != "ngram":
        from musegen.checkpoint import metrics_key, record_metrics, resolve
        from musegen.data import corpus_name

        record_metrics(resolve(args.model), metrics_key(corpus_name(args.data), split), result)
    if args.json:
        print(json.dumps(result))
    else:
        _print_result(result)
    return 0


def _print_result(result: dict, indent: str = "") -> None:
    """Key-value lines; a dict value (figures per collection) as an indented block."""
    width = max([22, *(len(k) + 2 for k in result)])
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"{indent}{key}")
            _print_result(value, indent + "  ")
        elif isinstance(value, float):
            print(f"{indent}{key:<{width}}{value:.4f}")
        else:
            print(f"{indent}{key:<{width}}{value}")


def _eval_benchmark(args: argparse.Namespace) -> int:
    from musegen import chorales
    from musegen.generate.muse import load

    if args.model == "ngram":
        raise ConfigError("the n-gram baseline is fitted on a corpus: use --data with it")
    model = load(args.model, runtime=args.runtime, precision=args.precision)
    result = {"model": args.model, "arch": model.arch} | chorales.evaluate(
        model, progress=not args.json
    )
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:<37}{value:.4f}" if isinstance(value, float) else f"{key:<37}{value}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from musegen import bench

    if args.plot:  # fail now, not after minutes of measuring
        bench.new_figure((1, 1))
        if not Path(args.plot).resolve().parent.is_dir():
            raise ConfigError(f"--plot {args.plot}: its folder does not exist")
    if args.primer is not None and not Path(args.primer).is_file():
        raise MidiError(f"MIDI file not found: {args.primer!r}; check the path")
    positions = sorted(set(args.positions)) if args.positions else None
    if positions and positions[0] < 1:
        raise ConfigError(f"--positions must be >= 1 (got {positions[0]})")
    result = bench.run(
        quick=args.quick,
        threads=args.threads,
        progress=lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True),
        positions=positions,
        primer_file=args.primer,
    )
    print(json.dumps(result, indent=1) if args.json else bench.table(result), flush=True)
    if args.plot:
        bench.plot_step_costs(result["step_ms_at_position"], args.plot)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from musegen.app import launch

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be 1-65535 (got {args.port})")
    checkpoints = {}
    for folder in args.checkpoint or []:
        name = Path(folder).resolve().name
        if name in checkpoints or name in ("lstm", "transformer", "mamba"):
            raise ConfigError(f"--checkpoint {folder}: a model named {name!r} is already there")
        checkpoints[name] = folder
    launch(
        args.host,
        args.port,
        threads=args.threads,
        checkpoints=checkpoints,
        announce=lambda url: print(f"musegen demo: {url}  (Ctrl+C stops it)", file=sys.stderr),
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from musegen.generate.serve import HOST, make_server

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be 1-65535 (got {args.port})")
    server = make_server(args.port, threads=args.threads)
    for name in args.preload:  # the first request should not wait for loading
        server.RequestHandlerClass.engine.model(name)
    print(f"musegen serve: http://{HOST}:{args.port}  (Ctrl+C stops it)", file=sys.stderr)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from musegen.runtime import installed

    for module, package in (("torch", "torch"), ("onnx", "onnx")):
        if not installed(module):
            raise ConfigError(f"musegen export needs {package}: pip install 'musegen[export]'")
    from musegen.runtime.export import export

    written = export(args.checkpoint)
    print(f"wrote {', '.join(str(p) for p in written)} (weights read from model.safetensors)")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from musegen.checkpoint import CORPUS_TEXT, SHIPPED_DIR, corpus_metrics, read_config
    from musegen.options import ARCHITECTURES, DEFAULT_MODEL

    styles = tuple(CORPUS_TEXT)  # the corpora `musegen data` builds
    print("test bits per note (pitch bits per note) of each shipped model, per corpus")
    print(f"{'name':<13}{'parameters':>11}" + "".join(f"{s:>16}" for s in styles))
    for name in ARCHITECTURES:
        label = f"{name} *" if name == DEFAULT_MODEL else name
        try:
            cfg = read_config(SHIPPED_DIR / name)
        except MuseGenError:
            print(f"{label:<13}{'(missing)':>11}")
            continue
        cells = []
        for style in styles:
            m = corpus_metrics(cfg, style)
            cells.append(
                f"{m['bits_per_note']:.3f} ({m['pitch_bits_per_note']:.3f})"
                if "bits_per_note" in m and "pitch_bits_per_note" in m
                else "-"
            )
        print(f"{label:<13}{cfg['parameters']:>11,}" + "".join(f"{c:>16}" for c in cells))
    print("* the default (--model, musegen.load()); README, Results, says why")
    return 0


# ------------------------------------------------------------------ the parser


def _add_sampling(p: argparse.ArgumentParser, g: dict) -> None:
    """The sampling options of generate, infill and bridge."""
    p.add_argument("--variations", type=int, default=1, help="how many results")
    p.add_argument("--temperature", type=float, default=g["temperature"], help=TEMPERATURE_HELP)
    p.add_argument("--top-k", type=int, default=g["top_k"], help="0 or unset: off")
    p.add_argument("--top-p", type=float, default=g["top_p"], help="1: off")
    p.add_argument("--min-p", type=float, default=g["min_p"], help="0 or unset: off")
    p.add_argument(
        "--seed",
        type=int,
        default=g["seed"],
        help="same seed, same notes (unset: a new one, printed)",
    )
    p.add_argument("--key", default=g["key"], help=KEY_HELP)
    p.add_argument(
        "--pitch-range", type=_pitch_range, default=g["pitch_range"], help="LOW-HIGH MIDI pitches"
    )


def _add_model_options(
    p: argparse.ArgumentParser, g: dict, default_model: str, default_quantize: str
) -> None:
    """--model, the sampling options, --track, --quantize, --threads (infill and bridge)."""
    p.add_argument(
        "--model",
        default=default_model,
        help="lstm | transformer | mamba | checkpoint dir (trained with infilling)",
    )
    _add_sampling(p, g)
    p.add_argument(
        "--track",
        type=int,
        default=g["track"],
        help="track of a multi-track file (unset: all non-drum tracks)",
    )
    p.add_argument("--quantize", type=_quantize_mode, default=default_quantize, help=QUANTIZE_HELP)
    _add_runtime_options(p)


def _add_runtime_options(p: argparse.ArgumentParser) -> None:
    """--runtime, --precision and --threads."""
    from musegen.runtime import DEFAULT_PRECISION, DEFAULT_RUNTIME, PRECISIONS, RUNTIMES

    p.add_argument("--runtime", choices=RUNTIMES, default=DEFAULT_RUNTIME, help=RUNTIME_HELP)
    p.add_argument(
        "--precision", choices=PRECISIONS, default=DEFAULT_PRECISION, help=PRECISION_HELP
    )
    p.add_argument("--threads", type=_threads, default=None, help=THREADS_HELP)


def build_parser() -> argparse.ArgumentParser:
    from musegen import __version__
    from musegen.options import DEFAULT_MODEL, DEFAULT_QUANTIZE, Constraints, Sampling
    from musegen.train_config import TrainConfig

    parser = _Parser(
        prog="musegen",
        description="Continue melodies with LSTM, Transformer and Mamba models.",
    )
    parser.add_argument("--version", action="version", version=f"musegen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    fmt = _HelpFormatter

    def add(name: str, func: Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, formatter_class=fmt)
        p.set_defaults(func=func)
        return p

    # MuseGen.continue_midi's defaults, read without importing torch (a test checks they agree):
    # sampling and bars from their dataclasses; the rest are unset unless given.
    g = {**_defaults(Sampling), "bars": Constraints.bars}
    g |= dict.fromkeys(("seed", "key", "pitch_range", "track"))
    p = add("generate", cmd_generate, "continue a MIDI melody (or compose from scratch)")
    p.add_argument("input", nargs="?", default=None, help="MIDI primer (omit: from scratch)")
    p.add_argument("-o", "--output", required=True, help="output .mid (OUT_1.mid... if several)")
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="lstm | transformer | mamba | checkpoint dir",
    )
    p.add_argument("--bars", type=int, default=g["bars"], help="bars to add")
    _add_sampling(p, g)
    p.add_argument(
        "--track",
        type=int,
        default=g["track"],
        help="track of a multi-track file (unset: all non-drum tracks)",
    )
    p.add_argument("--continuation-only", action="store_true", help="write only the new bars")
    p.add_argument("--quantize", type=_quantize_mode, default=DEFAULT_QUANTIZE, help=QUANTIZE_HELP)
    _add_runtime_options(p)

    p = add("infill", cmd_infill, "regenerate bars inside a MIDI clip, leading into what follows")
    p.add_argument("input", help="MIDI clip")
    p.add_argument("-o", "--output", required=True, help="output .mid (OUT_1.mid... if several)")
    p.add_argument(
        "--bars",
        type=bar_range,
        required=True,
        help=f"FIRST-LAST bars to regenerate, numbered from 1, both included (at most "
        f"{MAX_GAP_BARS}), e.g. 5-8",
    )
    _add_model_options(p, g, DEFAULT_MODEL, DEFAULT_QUANTIZE)
    p.add_argument("--candidates", type=int, default=INFILL_CANDIDATES, help=CANDIDATES_HELP)

    p = add("bridge", cmd_bridge, "write the bars that lead from one MIDI clip into another")
    p.add_argument("first", help="MIDI clip the bridge starts from")
    p.add_argument("second", help="MIDI clip it leads into")
    p.add_argument("-o", "--output", required=True, help="output .mid (OUT_1.mid... if several)")
    p.add_argument(
        "--bars", type=int, default=BRIDGE_BARS, help=f"bars between the clips (1-{MAX_GAP_BARS})"
    )
    _add_model_options(p, g, DEFAULT_MODEL, DEFAULT_QUANTIZE)
    p.add_argument("--candidates", type=int, default=INFILL_CANDIDATES, help=CANDIDATES_HELP)

    p = add("play", cmd_play, "play a continuation live on a MIDI output port")
    p.add_argument("input", nargs="?", default=None, help="MIDI primer (omit: from scratch)")
    p.add_argument("--port", default=None, help="output port name (see musegen ports)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--bars", type=int, default=g["bars"], help="bars to add")
    p.add_argument("--temperature", type=float, default=g["temperature"], help=TEMPERATURE_HELP)
    p.add_argument("--top-p", type=float, default=g["top_p"], help="1: off")
    p.add_argument("--seed", type=int, default=g["seed"], help="same seed, same notes")
    p.add_argument("--key", default=g["key"], help=KEY_HELP)
    p.add_argument("--channel", type=int, default=0, help="MIDI channel 0-15")
    p.add_argument("--quantize", type=_quantize_mode, default=DEFAULT_QUANTIZE, help=QUANTIZE_HELP)
    p.add_argument(
        "--listen",
        default=None,
        metavar="PORT_IN",
        help="call and response: listen on this input port and answer each phrase after a "
        "bar of rest (see musegen ports)",
    )
    p.add_argument(
        "--bpm", type=float, default=None, help="--listen: the tempo (unset: read from the phrase)"
    )
    p.add_argument("--metre", type=_metre, default=(4, 4), help="--listen: the metre, e.g. 6/8")
    _add_runtime_options(p)

    add("ports", cmd_ports, "list MIDI output ports")

    p = add("tokenize", cmd_tokenize, "print the tokens of a MIDI file")
    p.add_argument("input", help="MIDI file")
    p.add_argument(
        "--track", type=int, default=None, help="track index (unset: all non-drum tracks)"
    )
    p.add_argument("--json", action="store_true", help="print ids and tokens as JSON")

    p = add("data", cmd_data, "build a training corpus")
    p.add_argument(
        "corpus",
        choices=["folk", "art", "bass"],
        help="folk: the ABC folk collections; art: the composers' scores (never bach/); "
        "bass: the single-line lowest part of each art piece (from --from)",
    )
    p.add_argument(
        "--from",
        dest="source",
        default="data/art",
        help="for bass: the art corpus to read (default data/art)",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    d = _defaults(TrainConfig)
    p = add("train", cmd_train, "train a model on a corpus or a folder of MIDI files")
    p.add_argument("--arch", required=True, help="lstm | transformer | mamba")
    p.add_argument(
        "--data",
        required=True,
        nargs="+",
        help="corpus dirs (musegen data) or MIDI folders; several train on their mix",
    )
    p.add_argument(
        "--mix",
        type=float,
        nargs="+",
        default=None,
        metavar="W",
        help="share of training windows per --data dir, e.g. --mix 1 1 (default: by tokens)",
    )
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--preset", default=d["preset"], help="model size preset")
    p.add_argument("--tokens", type=int, default=d["tokens"], help="training budget in tokens")
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--seq-len", type=int, default=d["seq_len"])
    p.add_argument("--lr", type=float, default=d["lr"], help="peak learning rate")
    p.add_argument("--warmup-steps", type=int, default=d["warmup_steps"])
    p.add_argument("--eval-every", type=int, default=d["eval_every"], help="steps")
    p.add_argument(
        "--eval-tunes",
        type=int,
        default=d["eval_tunes"],
        help="validation tunes scored at each evaluation, spread over the split",
    )
    p.add_argument("--patience", type=int, default=d["patience"], help="early stop, in evals")
    p.add_argument("--max-shift", type=int, default=d["max_shift"], help="transposition range")
    p.add_argument(
        "--octaves",
        type=int,
        default=d["octaves"],
        help="register augmentation: also move windows up to this many octaves each way",
    )
    p.add_argument(
        "--infill-rate",
        type=float,
        default=d["infill_rate"],
        help="share of training windows that teach infilling (0: continuation only)",
    )
    p.add_argument(
        "--infill-form",
        default=d["infill_form"],
        choices=INFILL_FORMS,
        help="how infilling examples are arranged (psm: prefix, suffix, gap; spm: suffix first)",
    )
    p.add_argument(
        "--chord-order",
        default=d["chord_order"],
        choices=CHORD_ORDERS,
        help="notes that start together, in the tokens: lowest first (bass) or highest (top)",
    )
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument("--dropout", type=float, default=None, help="override the preset's dropout")
    p.add_argument("--init", default=None, help="fine-tune from a checkpoint name or dir")
    p.add_argument("--device", default=d["device"], help="auto | cpu | cuda")
    p.add_argument(
        "--precision",
        default=d["precision"],
        choices=TRAIN_PRECISIONS,
        help="what the run computes in (auto: bfloat16 autocast on a GPU and on a CPU with "
        "bfloat16 instructions, AVX-512 BF16 or AMX; float32 elsewhere)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=d["workers"],
        help="processes that make training batches ahead; the batches are the same with any "
        "number (default: 0 on a CPU, up to 4 beside a GPU)",
    )
    p.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add("eval", cmd_eval, "bits per note of a model (or the n-gram baseline) on a corpus")
    from musegen.runtime import DEFAULT_RUNTIME, PRECISIONS, RUNTIMES

    p.add_argument("--model", required=True, help="lstm | transformer | mamba | ngram | DIR")
    p.add_argument("--data", default=None, help="corpus dir (musegen data) or MIDI folder")
    p.add_argument(
        "--benchmark",
        choices=["chorales"],
        default=None,
        help="instead of --data: the Bach chorale melodies BWV 253-438 (never trained on), "
        "against IDyOM's published pitch bits per note",
    )
    p.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=DEFAULT_RUNTIME,
        help="with --benchmark: " + RUNTIME_HELP,
    )
    p.add_argument(
        "--precision",
        choices=[p for p in PRECISIONS if p != "auto"],
        default="float32",
        help="with --benchmark and ONNX Runtime: float32 (the model as trained) or int8",
    )
    p.add_argument(
        "--split",
        default=None,
        choices=["train", "validation", "test", "all"],
        help="unset: a corpus's test split, or every file of a plain MIDI folder (the n-gram: "
        "its test split)",
    )
    p.add_argument(
        "--limit", type=int, default=None, help="score N tunes spread evenly over the split"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--record", action="store_true", help="store the result in the checkpoint")
    p.add_argument(
        "--music",
        type=int,
        default=0,
        metavar="N",
        help="also compare sampled continuations of N tunes with the real ones",
    )
    p.add_argument(
        "--music-samples",
        type=int,
        default=1,
        metavar="K",
        help="continuations sampled per tune for --music, averaged (default: 1; more even out "
        "the sampling noise of one draw per tune)",
    )

    p = add("bench", cmd_bench, "measure speed on this machine (and against Hugging Face)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true", help="a reduced run of a few seconds")
    p.add_argument("--threads", type=_threads, default=None, help=THREADS_HELP)
    p.add_argument(
        "--positions", type=int, nargs="+", default=None, help="step positions (default 64 4000)"
    )
    p.add_argument("--plot", default=None, metavar="PNG", help="plot step cost against position")
    p.add_argument(
        "--primer",
        default=None,
        metavar="MIDI",
        help="continue this clip (unset: a 16-bar melody the shipped Mamba composes)",
    )

    p = add("demo", cmd_demo, "start the web demo (Gradio) in your browser")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--threads", type=_threads, default=None, help=THREADS_HELP)
    p.add_argument(
        "--checkpoint",
        action="append",
        help="a checkpoint dir of your own to offer beside the shipped models, named by its "
        "folder (repeat for several)",
    )

    add("models", cmd_models, "list the shipped models")

    p = add("serve", cmd_serve, "keep models loaded for DAW scripts (HTTP on 127.0.0.1)")
    p.add_argument("--port", type=int, default=SERVE_PORT, help="port on 127.0.0.1")
    p.add_argument(
        "--preload",
        nargs="*",
        default=[DEFAULT_MODEL],
        metavar="MODEL",
        help="models to load before the first request",
    )
    p.add_argument("--threads", type=_threads, default=None, help=THREADS_HELP)

    p = add("export", cmd_export, "write ONNX graphs for a checkpoint (needs torch and onnx)")
    p.add_argument("checkpoint", help="checkpoint dir (or a shipped name, in a source checkout)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return USER_ERROR
    try:
        return args.func(args)
    except MuseGenError as e:
        print(f"musegen {args.command}: {e}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
