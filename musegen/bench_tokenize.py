"""Tokenizing speed: musegen's tokenizer against MidiTok's REMI on the same MIDI files.

    python -m musegen.bench_tokenize [FILES_OR_DIRS ...] [--repeats 5] [--folk 300] [--json]

With no files: music21's ``midi/testPrimitive`` files, ``tests/data/thirdparty`` and
``--folk`` Essen folk tunes converted from ABC with symusic's ``abc2midi`` into a temporary
folder. Each system encodes every file (from its path, parsing included) once per repeat; the
median repeat gives files/s and notes/s. Notes are counted once per file (all tracks), the
same number for both systems. MidiTok runs only when installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from musegen.data import abc2midi_binary
from musegen.data import music21_corpus_dir as data_corpus_dir
from musegen.errors import DataError, MidiError, MuseGenError
from musegen.midi import list_tracks, using_symusic
from musegen.tokens.tokenizer import SUPPORTED_TIME_SIGNATURES, Tokenizer

REPO_ROOT = Path(__file__).resolve().parent.parent


def abc2midi_path() -> Path | None:
    """The ``abc2midi`` binary (see `musegen.data.abc2midi_binary`), or None if missing."""
    try:
        return abc2midi_binary()
    except DataError:
        return None


def music21_corpus_dir() -> Path | None:
    """The installed music21 package folder, or None if music21 is missing."""
    try:
        return data_corpus_dir().parent
    except DataError:
        return None


def make_folk_midis(n: int, out_dir: str | os.PathLike) -> list[Path]:
    """Convert the first ``n`` tunes of music21's ``essenFolksong`` ABC files to MIDI.

    Each ABC file goes through ``abc2midi`` once (it writes one MIDI per tune). Returns the
    MIDI paths (fewer than ``n`` when the corpus or abc2midi is missing).
    """
    exe, m21 = abc2midi_path(), music21_corpus_dir()
    if exe is None or m21 is None or n <= 0:
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    for abc in sorted((m21 / "corpus" / "essenFolksong").glob("*.abc")):
        refs = re.findall(r"^X:\s*(\d+)", abc.read_text(encoding="latin-1"), flags=re.M)
        for ref in refs:
            if len(made) >= n:
                return made
            dst = out / f"{abc.stem}_{ref}.mid"
            subprocess.run(
                [str(exe), str(abc), ref, "-o", str(dst)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
                check=False,
            )
            if dst.is_file():
                made.append(dst)
    return made


def default_files(folk: int, tmp: str) -> list[Path]:
    files: list[Path] = []
    m21 = music21_corpus_dir()
    if m21 is not None:
        files += sorted((m21 / "midi" / "testPrimitive").glob("*.mid"))
    files += sorted((REPO_ROOT / "tests" / "data" / "thirdparty").glob("*.mid"))
    files += make_folk_midis(folk, tmp)
    return files


def _expand(paths: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out += (
            sorted(q for q in p.rglob("*") if q.suffix.lower() in (".mid", ".midi"))
            if p.is_dir()
            else [p]
        )
    return out


def miditok_remi(tokenizer: Tokenizer) -> Any | None:
    """MidiTok REMI configured like ``tokenizer`` (grid, pitches, metres, no velocity)."""
    try:
        from miditok import REMI, TokenizerConfig
    except ImportError:
        return None
    q = tokenizer.ticks_per_quarter
    ts_range: dict[int, list[int]] = {}
    for n, d in SUPPORTED_TIME_SIGNATURES:
        ts_range.setdefault(d, []).append(n)
    cfg = TokenizerConfig(
        pitch_range=(tokenizer.pitch_range[0], min(tokenizer.pitch_range[1] + 1, 127)),
        beat_res={(0, 4): q, (4, 8): q // 4, (8, 16): 1},
        use_velocities=tokenizer.use_velocity,
        use_time_signatures=True,
        time_signature_range=ts_range,
        use_tempos=tokenizer.use_tempo,
        use_programs=False,
        special_tokens=["PAD", "BOS", "EOS"],
    )
    return REMI(cfg)


def _time_passes(encode: Callable[[Path], Any], files: Sequence[Path], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for f in files:
            encode(f)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def tokenize_speed(
    files: Sequence[str | os.PathLike],
    repeats: int = 5,
    *,
    tokenizer: Tokenizer | None = None,
    compare_miditok: bool = True,
    python_parser: bool = False,
) -> dict[str, Any]:
    """Median files/s and notes/s of musegen (and MidiTok REMI when installed) on ``files``.

    Files that either system cannot read are left out for both (and listed), so the two
    encode exactly the same set. ``python_parser`` also times musegen with its pure-Python
    MIDI parser (what runs when symusic is not installed). The result also holds the
    grammar's cost per generated token (``grammar``: allowed + advance, microseconds).
    """
    tok = tokenizer or Tokenizer()
    paths = [Path(f) for f in files]
    remi = miditok_remi(tok) if compare_miditok else None
    usable, notes, skipped = [], 0, {}
    for f in paths:
        try:
            tok.encode(f)
            count = sum(t.notes for t in list_tracks(f))
        except MuseGenError as e:
            skipped[str(f)] = f"musegen: {e}"
            continue
        if remi is not None:
            try:
                remi.encode(f)
            except Exception as e:  # MidiTok raises many kinds
                skipped[str(f)] = f"miditok: {type(e).__name__}: {e}"
                continue
        usable.append(f)
        notes += count
    result: dict[str, Any] = {
        "files": len(usable),
        "notes": notes,
        "repeats": repeats,
        "skipped": skipped,
        "parser": "symusic" if using_symusic() else "python",
        "systems": {},
    }
    if not usable:
        return result

    def record(name: str, seconds: float) -> None:
        result["systems"][name] = {
            "seconds": seconds,
            "files_per_s": len(usable) / seconds,
            "notes_per_s": notes / seconds,
        }

    record("musegen", _time_passes(tok.encode, usable, repeats))
    if python_parser and using_symusic():
        from musegen import midi

        saved, midi._symusic = midi._symusic, None
        try:
            record("musegen_python_parser", _time_passes(tok.encode, usable, repeats))
        finally:
            midi._symusic = saved
    result["grammar"] = grammar_speed(tok, usable[:50])
    if remi is not None:
        record("miditok_remi", _time_passes(remi.encode, usable, repeats))
        result["speedup_vs_miditok"] = (
            result["systems"]["miditok_remi"]["seconds"] / result["systems"]["musegen"]["seconds"]
        )
    return result


def grammar_speed(tok: Tokenizer, files: Sequence[Path]) -> dict[str, float]:
    """Microseconds per call of ``allowed`` (fresh and cached) and ``advance``, replaying the
    token sequences of ``files`` as a sampler would (one call of each per token)."""
    seqs = [tok.encode(f) for f in files]
    n = sum(len(s) for s in seqs)

    def replay(g: Any, with_mask: bool) -> float:
        t0 = time.perf_counter()
        for seq in seqs:
            st = g.start()
            for t in seq:
                if with_mask:
                    g.allowed(st)
                st = g.advance(st, t)
        return time.perf_counter() - t0

    cold = Tokenizer.from_dict(tok.to_dict()).grammar()
    first = replay(cold, True)
    warm = replay(cold, True)
    advance = replay(cold, False)
    return {
        "tokens": n,
        "allowed_first_us": (first - advance) / n * 1e6,
        "allowed_cached_us": (warm - advance) / n * 1e6,
        "advance_us": advance / n * 1e6,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m musegen.bench_tokenize", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("files", nargs="*", help="MIDI files or folders (default: the built-in set)")
    ap.add_argument("--repeats", type=int, default=5, help="passes over the files (median)")
    ap.add_argument("--folk", type=int, default=300, help="Essen tunes made with abc2midi")
    ap.add_argument("--no-miditok", action="store_true", help="time musegen only")
    ap.add_argument(
        "--python-parser", action="store_true", help="also time musegen without symusic"
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        files = _expand(args.files) if args.files else default_files(args.folk, tmp)
        if not files:
            print("no MIDI files to time; give some paths", file=sys.stderr)
            return 2
        try:
            res = tokenize_speed(
                files,
                args.repeats,
                compare_miditok=not args.no_miditok,
                python_parser=args.python_parser,
            )
        except MidiError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"{res['files']} files, {res['notes']:,} notes, median of {res['repeats']} passes")
    print(f"{'system':22s} {'seconds':>9s} {'files/s':>10s} {'notes/s':>12s}")
    for name, r in res["systems"].items():
        print(f"{name:22s} {r['seconds']:9.3f} {r['files_per_s']:10.0f} {r['notes_per_s']:12,.0f}")
    if "speedup_vs_miditok" in res:
        print(f"musegen is {res['speedup_vs_miditok']:.1f}x MidiTok REMI's speed")
    if "grammar" in res:
        g = res["grammar"]
        print(
            f"grammar per token ({g['tokens']:,} tokens replayed): allowed "
            f"{g['allowed_first_us']:.2f} us first time, {g['allowed_cached_us']:.2f} us cached; "
            f"advance {g['advance_us']:.2f} us"
        )
    if res["skipped"]:
        print(f"left out {len(res['skipped'])} files:")
        for f, why in res["skipped"].items():
            print(f"  {Path(f).name}: {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
