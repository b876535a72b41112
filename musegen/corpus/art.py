"""The art-music corpus: the composers' scores that ship in music21, as MIDI.

`build_art_corpus` converts every score of `ART_COLLECTIONS` (Palestrina, Monteverdi, the
Trecento, Josquin, Mozart, Haydn and Beethoven quartets, Schubert, the Schumanns, Chopin,
Joplin, Handel, Corelli, C. P. E. Bach, Verdi, Weber, lead sheets, ...) with music21, every
pitched part a track (`musegen.corpus.scores`), in parallel processes. Conversions are cached
under ``$MUSEGEN_CACHE/art`` (default ``~/.cache/musegen/art``), keyed by file, size and music21
version, so a second build takes seconds. Then, as the folk corpus: pieces with fewer than 8
notes are dropped, duplicates (a transposed copy included) removed, and pieces split into
train / validation / test by a key of their opening, so that the same music never sits on two
sides. ``manifest.json`` records every piece's collection, source file and licence.

music21's ``bach/`` directory is never read: the Bach chorales are the external benchmark
(`musegen.chorales`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from musegen.data import (
    MANIFEST,
    OPENING_NOTES,
    _write_json_atomic,
    collection_dir,
    melody_key,
    music21_corpus_dir,
    split_counts,
    split_of,
)
from musegen.errors import DataError, MidiError
from musegen.midi import read_score
from musegen.options import cache_dir

ART_COLLECTIONS = (
    "beach", "beethoven", "chopin", "ciconia", "corelli", "cpebach", "handel", "haydn",
    "johnson_j_r", "joplin", "josquin", "leadSheet", "liliuokalani", "luca", "lusitano",
    "monteverdi", "mozart", "palestrina", "schoenberg", "schubert", "schumann_clara",
    "schumann_robert", "trecento", "verdi", "weber", "webern",
)  # fmt: skip
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc")
LICENCE = "music21 corpus: for non-commercial use"
MIN_NOTES = 8


def score_files(corpus: Path, collections: tuple[str, ...] = ART_COLLECTIONS) -> list:
    """(collection, file) of every score to convert, in a fixed order."""
    out = []
    for collection in collections:
        folder = collection_dir(corpus, collection)
        files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in SCORE_SUFFIXES)
        out += [(collection, f) for f in files]
    return out


def _cache_key(path: Path, version: str) -> str:
    """The file's path, size and time, music21's version and the converter's."""
    from musegen.corpus.scores import CONVERTER_VERSION

    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{version}|{CONVERTER_VERSION}"
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def convert(path: Path, cache: Path) -> list[Path]:
    """The MIDI files of one score file (an opus gives several), converted once."""
    import music21

    folder = cache / _cache_key(path, music21.__version__)
    done = folder / "done"
    if done.is_file():
        return sorted(folder.glob("*.mid"))
    from musegen.corpus.scores import score_to_midi

    try:
        parsed = music21.converter.parse(path)
    except Exception:  # music21 cannot read it: nothing from this file
        parsed = None
    scores = [] if parsed is None else list(getattr(parsed, "scores", [])) or [parsed]
    tmp = folder.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i, score in enumerate(scores):
        try:
            (tmp / f"{i:03d}.mid").write_bytes(score_to_midi(score))
        except Exception:  # one unreadable piece of an opus
            continue
    (tmp / "done").write_text(path.name)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return sorted(folder.glob("*.mid"))


def _convert_job(job: tuple[str, str]) -> list[str]:  # in a worker process
    import warnings

    warnings.simplefilter("ignore")  # music21's notes on overfull bars and the like
    path, cache = job
    return [str(p) for p in convert(Path(path), Path(cache))]


def build_art_corpus(
    out_dir: str | Path,
    *,
    progress: bool = True,
    workers: int = 2,
    collections: tuple[str, ...] = ART_COLLECTIONS,
) -> dict:
    """Build the art-music corpus in ``out_dir`` (``midi/<split>/*.mid``, ``manifest.json``).

    Deterministic for a music21 version. Returns the manifest."""
    out = Path(out_dir)
    if (out / MANIFEST).exists():
        raise DataError(f"{out} already holds a corpus; remove it or choose another --out")
    started = time.perf_counter()
    files = score_files(music21_corpus_dir(), collections)
    cache = cache_dir("art")
    cache.mkdir(parents=True, exist_ok=True)
    jobs = [(str(f), str(cache)) for _, f in files]
    with ProcessPoolExecutor(workers) as pool:
        converted = list(
            tqdm(
                pool.map(_convert_job, jobs, chunksize=4),
                total=len(jobs),
                desc="music21",
                disable=not progress,
            )
        )
    pieces, seen, records = 0, set(), []
    unreadable = short = duplicates = 0
    for (collection, source), mids in zip(files, converted, strict=True):
        for i, mid in enumerate(mids):
            pieces += 1
            try:
                score = read_score(mid)
            except MidiError:
                unreadable += 1
                continue
            if len(score.notes) < MIN_NOTES:
                short += 1
                continue
            full = melody_key(score)
            if full in seen:
                duplicates += 1
                continue
            seen.add(full)
            opening = melody_key(score, OPENING_NOTES)
            split = split_of(opening)
            rel = source.relative_to(music21_corpus_dir() / collection).with_suffix("")
            stem = "_".join(rel.parts).replace(" ", "_")
            name = f"{collection}_{stem}" + (f"_{i}" if len(mids) > 1 else "") + ".mid"
            dest = out / "midi" / split / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(mid, dest)
            records.append(
                {
                    "file": f"midi/{split}/{name}",
                    "split": split,
                    "collection": collection,
                    "source": f"{collection}/{'/'.join(rel.parts)}{source.suffix}",
                    "piece": i,
                    "notes": len(score.notes),
                    "tracks": len(score.tracks),
                    "group": opening[:16],
                    "licence": LICENCE,
                }
            )
    counts = split_counts(records)
    manifest = {
        "name": "art",
        "collections": list(collections),
        "files": len(files),
        "converted": pieces,
        "unreadable": unreadable,
        "too_short": short,
        "duplicates_removed": duplicates,
        "counts": counts,
        "licence": LICENCE,
        "build_seconds": round(time.perf_counter() - started, 1),
        "tunes": records,
    }
    _write_json_atomic(out / MANIFEST, manifest)
    return manifest
