"""The folk corpus, its split, and token datasets for training.

`build_folk_corpus` converts the ABC collections that ship inside music21 to MIDI with the
abc2midi binary from the symusic wheel, removes duplicates (a transposed copy is a duplicate),
and splits by tune into train / validation / test. Tunes that share an opening (the same
melody filed twice, possibly transposed or with a different ending) are grouped and always
land in the same split, so no melody is on two sides. The split is recorded in
``manifest.json``.

`tokenize_split` tokenizes a split (or any folder of MIDI files) once and caches the ids as a
packed array; `WindowMaker` cuts training windows from one corpus or a weighted mix of
several, with transposition augmentation that keeps every pitch in range, and `batch_stream`
makes them ahead in worker processes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import multiprocessing.connection
import os
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from musegen.errors import DataError, MidiError
from musegen.midi import Score, read_score
from musegen.tokens.infill import MAX_GAP_BARS, arrange, split_bars

FOLK_COLLECTIONS = ("essenFolksong", "oneills1850", "ryansMammoth", "miscFolk")
# music21's bach/ holds the Bach chorales: the external benchmark (`musegen.chorales`), which no
# model may train on; the corpus builder refuses it whatever the collections say.
RESERVED_COLLECTIONS = ("bach",)
SPLITS = ("train", "validation", "test")
ALL = "all"  # every file of a corpus or folder, whatever its split
SPLIT_FRACTIONS = {"train": 0.90, "validation": 0.05, "test": 0.05}
OPENING_NOTES = 12  # tunes with the same first 12 (interval, rhythm) events are one group
MANIFEST = "manifest.json"
MIDI_SUFFIXES = (".mid", ".midi", ".MID", ".MIDI")


# ---------------------------------------------------------------- locating the tools


def music21_corpus_dir() -> Path:
    """The ``corpus`` folder of the installed music21 package."""
    try:
        import music21
    except ImportError as e:
        raise DataError(
            "building the folk corpus needs music21: pip install 'musegen[train]'"
        ) from e
    return Path(music21.__file__).parent / "corpus"


def abc2midi_binary() -> Path:
    """The abc2midi program shipped inside the symusic wheel (or one on PATH)."""
    try:
        import symusic

        candidate = Path(symusic.__file__).parent / "bin" / "abc2midi"
        if candidate.is_file():
            return candidate
    except ImportError:
        pass
    found = shutil.which("abc2midi")
    if found:
        return Path(found)
    raise DataError("abc2midi not found: pip install 'musegen[train]' (symusic ships it)")


# ---------------------------------------------------------------- ABC -> MIDI


def _convert_abc_file(abc2midi: Path, abc_file: Path, out_dir: Path) -> list[Path]:
    """Convert every tune of one ABC file; abc2midi names them <stem><X number>.mid."""
    out_dir.mkdir(parents=True, exist_ok=True)
    local = out_dir / abc_file.name  # abc2midi writes next to its input
    shutil.copyfile(abc_file, local)
    subprocess.run(
        [str(abc2midi), local.name, "-silent", "-quiet"],
        cwd=out_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    local.unlink()
    return sorted(out_dir.glob("*.mid"))


def _abc_files(corpus: Path) -> list[tuple[str, Path]]:
    files = []
    for collection in FOLK_COLLECTIONS:
        folder = collection_dir(corpus, collection)
        files += [(collection, f) for f in sorted(folder.glob("*.abc"))]
    return files


# ---------------------------------------------------------------- de-duplication keys


def melody_key(score: Score, limit: int | None = None) -> str:
    """A transposition-invariant fingerprint: intervals, inter-onset times and durations."""
    notes = sorted(score.notes)[:limit]
    if not notes:
        return ""
    first = notes[0]
    events = [(n.pitch - first.pitch, n.start - first.start, n.duration) for n in notes]
    return hashlib.sha1(repr(events).encode()).hexdigest()


def split_of(group_key: str) -> str:
    """Deterministic split from a group key (stable across machines and runs)."""
    u = int(group_key[:8], 16) / 0x100000000
    if u < SPLIT_FRACTIONS["train"]:
        return "train"
    if u < SPLIT_FRACTIONS["train"] + SPLIT_FRACTIONS["validation"]:
        return "validation"
    return "test"


@dataclass
class _Tune:
    collection: str
    source: str  # ABC file name
    ref: str  # X: reference number (from abc2midi's file name)
    path: Path  # converted MIDI, in the temporary folder
    notes: int
    full_key: str
    opening_key: str


def _read_tune(collection: str, abc_name: str, midi_path: Path) -> _Tune | None:
    stem = abc_name[: -len(".abc")]
    ref = midi_path.stem[len(stem) :]
    try:
        score = read_score(midi_path)
    except MidiError:
        return None
    if len(score.notes) < 8:
        return None
    return _Tune(
        collection,
        abc_name,
        ref,
        midi_path,
        len(score.notes),
        melody_key(score),
        melody_key(score, OPENING_NOTES),
    )


# ---------------------------------------------------------------- the corpus


def build_folk_corpus(out_dir: str | Path, *, progress: bool = True, workers: int = 2) -> dict:
    """Build the folk corpus in ``out_dir``: ``midi/<split>/*.mid`` and ``manifest.json``.

    Returns the counts per split (tunes, notes) that are also stored in the manifest.
    Deterministic: the same music21 version gives the same files and the same split.
    """
    out = Path(out_dir)
    if (out / MANIFEST).exists():
        raise DataError(f"{out} already holds a corpus; remove it or choose another --out")
    corpus = music21_corpus_dir()
    abc2midi = abc2midi_binary()
    abc_files = _abc_files(corpus)

    with tempfile.TemporaryDirectory(prefix="musegen-abc-") as tmp:
        tmp_dir = Path(tmp)

        def convert(item: tuple[int, tuple[str, Path]]) -> list[tuple[str, str, Path]]:
            i, (collection, abc_file) = item
            mids = _convert_abc_file(abc2midi, abc_file, tmp_dir / f"{i:04d}")
            return [(collection, abc_file.name, m) for m in mids]

        with ThreadPoolExecutor(workers) as pool:
            converted = [
                m
                for ms in tqdm(
                    pool.map(convert, enumerate(abc_files)),
                    total=len(abc_files),
                    desc="abc2midi",
                    disable=not progress,
                )
                for m in ms
            ]
        tunes = [
            t
            for t in (
                _read_tune(c, a, m)
                for c, a, m in tqdm(converted, desc="reading", disable=not progress)
            )
            if t is not None
        ]

        seen: set[str] = set()
        unique = []
        for t in tunes:  # abc files in sorted order, so the kept copy is deterministic
            if t.full_key not in seen:
                seen.add(t.full_key)
                unique.append(t)

        records = []
        for t in unique:
            split = split_of(t.opening_key)
            name = f"{t.collection}_{Path(t.source).stem}_{t.ref}.mid"
            dest = out / "midi" / split / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(t.path, dest)
            records.append(
                {
                    "file": f"midi/{split}/{name}",
                    "split": split,
                    "collection": t.collection,
                    "abc": t.source,
                    "ref": t.ref,
                    "notes": t.notes,
                    "group": t.opening_key[:16],
                }
            )

    counts = split_counts(records)
    manifest = {
        "name": "folk",
        "collections": list(FOLK_COLLECTIONS),
        "converted": len(converted),
        "readable": len(tunes),
        "duplicates_removed": len(tunes) - len(unique),
        "counts": counts,
        "licence": "music21 corpus: for non-commercial use",
        "tunes": records,
    }
    _write_json_atomic(out / MANIFEST, manifest)
    return manifest


def split_counts(records: list[dict]) -> dict:
    """Pieces ("tunes") and notes per split of a manifest's records."""
    return {
        s: {
            "tunes": sum(r["split"] == s for r in records),
            "notes": sum(r["notes"] for r in records if r["split"] == s),
        }
        for s in SPLITS
    }


def collection_dir(corpus: Path, collection: str) -> Path:
    """The folder of one music21 corpus collection; refuses the ones no model may train on
    (`RESERVED_COLLECTIONS`) and says when one is missing."""
    if collection.strip("/").lower() in RESERVED_COLLECTIONS:
        raise DataError(
            f"music21's {collection}/ is the chorale benchmark (musegen eval --benchmark "
            "chorales): it is never used for training"
        )
    folder = corpus / collection
    if not folder.is_dir():
        raise DataError(f"music21 corpus collection missing: {folder}")
    return folder


def _write_json_atomic(path: Path, obj: object) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def split_files(data_dir: str | Path, split: str) -> list[Path]:
    """MIDI files of one split: from a corpus manifest, or any folder of MIDI files.

    A folder without a manifest is split deterministically by file name hash
    (train 90% / validation 5% / test 5%). ``split="all"`` gives every file.
    """
    root = Path(data_dir)
    if split not in (*SPLITS, ALL):
        raise DataError(f"unknown split {split!r}; choose one of {', '.join((*SPLITS, ALL))}")
    if not root.is_dir():
        raise DataError(f"data directory not found: {root}")
    manifest = root / MANIFEST
    if manifest.exists():
        records = json.loads(manifest.read_text())["tunes"]
        return [root / r["file"] for r in records if split in (ALL, r["split"])]
    files = sorted(p for p in root.rglob("*") if p.suffix in MIDI_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"no MIDI files (.mid/.midi) under {root}")
    if split == ALL:
        return files
    key = lambda p: hashlib.sha1(str(p.relative_to(root)).encode()).hexdigest()  # noqa: E731
    return [p for p in files if split_of(key(p)) == split]


def corpus_name(data_dir: str | Path) -> str:
    """A corpus's name from its manifest ("folk", "art"), else the folder's name."""
    manifest = Path(data_dir) / MANIFEST
    if manifest.is_file():
        name = json.loads(manifest.read_text()).get("name")
        if isinstance(name, str) and name:
            return name
    return Path(data_dir).resolve().name


def is_corpus(data_dir: str | Path) -> bool:
    """Whether ``data_dir`` is a corpus built by `musegen data` (it has a split manifest)."""
    return (Path(data_dir) / MANIFEST).is_file()


# ---------------------------------------------------------------- token datasets


@dataclass
class TokenArrays:
    """Every tune of a split as one packed id array plus per-tune offsets."""

    ids: np.ndarray  # (N,) int16, tunes back to back, each BOS ... EOS
    offsets: np.ndarray  # (tunes + 1,) int64, tune i is ids[offsets[i]:offsets[i+1]]
    notes: np.ndarray  # (tunes,) int64, notes per tune
    files: list[str]

    def tune(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    def __len__(self) -> int:
        return len(self.files)

    def __reduce__(self):
        """Pickled for a worker process: ids memory-mapped from the token cache are opened
        there again from the file (shared pages), not copied."""
        if isinstance(self.ids, np.memmap) and self.ids.filename:
            return (_open_arrays, (str(self.ids.filename), self.offsets, self.notes, self.files))
        return (TokenArrays, (np.asarray(self.ids), self.offsets, self.notes, self.files))


def _open_arrays(ids_path: str, offsets, notes, files) -> TokenArrays:
    return TokenArrays(np.load(ids_path, mmap_mode="r"), offsets, notes, files)


def tokenize_split(
    data_dir: str | Path, split: str, tokenizer, *, progress: bool = True
) -> TokenArrays:
    """Token ids of a split, cached under ``<data_dir>/tokens/<tokenizer hash>/``.

    Files that cannot be read are skipped (and counted in the cache's info file).
    """
    root = Path(data_dir)
    config = json.dumps(tokenizer.to_dict(), sort_keys=True)
    cache = root / "tokens" / hashlib.sha1(config.encode()).hexdigest()[:12]
    files = split_files(root, split)
    fingerprint = hashlib.sha1("\n".join(str(f) for f in files).encode()).hexdigest()
    stem = cache / split
    meta_path = stem.with_suffix(".json")
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("fingerprint") == fingerprint:
            return TokenArrays(
                np.load(f"{stem}.ids.npy", mmap_mode="r"),
                np.load(f"{stem}.offsets.npy"),
                np.load(f"{stem}.notes.npy"),
                meta["files"],
            )
    chunks, notes, kept, skipped = [], [], [], 0
    for f in tqdm(files, desc=f"tokenizing {split}", disable=not progress):
        try:
            score = read_score(f)
            ids = tokenizer.encode_score(score)
        except MidiError:
            skipped += 1
            continue
        if not score.notes:
            skipped += 1
            continue
        chunks.append(np.asarray(ids, dtype=np.int16))
        notes.append(len(score.notes))
        kept.append(str(f.relative_to(root)) if f.is_relative_to(root) else str(f))
    if not chunks:
        raise DataError(f"no readable MIDI files in split {split!r} of {root}")
    lengths = np.array([len(c) for c in chunks], dtype=np.int64)
    arrays = TokenArrays(
        np.concatenate(chunks),
        np.concatenate([[0], np.cumsum(lengths)]),
        np.array(notes, dtype=np.int64),
        kept,
    )
    cache.mkdir(parents=True, exist_ok=True)
    for name, arr in (("ids", arrays.ids), ("offsets", arrays.offsets), ("notes", arrays.notes)):
        tmp = Path(f"{stem}.{name}.tmp.npy")
        np.save(tmp, arr)
        os.replace(tmp, f"{stem}.{name}.npy")
    (cache / "tokenizer.json").write_text(config)
    _write_json_atomic(
        meta_path,
        {"fingerprint": fingerprint, "files": kept, "skipped": skipped, "tokens": len(arrays.ids)},
    )
    return arrays


class Transposer:
    """Shift PITCH tokens by a random interval, keeping every pitch in range.

    The interval is up to ``max_shift`` semitones each way (another key) plus up to
    ``octaves`` octaves each way (another register: a melody an octave or two down is a bass
    line), drawn uniformly among the intervals that keep the window's pitches in range.
    """

    def __init__(self, pitch_id_lo: int, pitch_id_hi: int, max_shift: int = 6, octaves: int = 0):
        self.lo = pitch_id_lo  # id of the lowest PITCH token
        self.hi = pitch_id_hi  # id of the highest PITCH token
        self.max_shift = max_shift
        self.octaves = octaves
        semitones = np.arange(-max_shift, max_shift + 1)
        registers = 12 * np.arange(-octaves, octaves + 1)
        self._shifts = (registers[:, None] + semitones[None, :]).ravel()  # every (octave, key)

    def __call__(self, window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        is_pitch = (window >= self.lo) & (window <= self.hi)
        if (self.max_shift == 0 and self.octaves == 0) or not is_pitch.any():
            return window
        pitches = window[is_pitch]
        down = self.lo - int(pitches.min())
        up = self.hi - int(pitches.max())
        if self.octaves == 0:  # (one draw from a range: the stream of runs before octaves)
            shift = int(rng.integers(max(-self.max_shift, down), min(self.max_shift, up) + 1))
        else:
            fits = self._shifts[(self._shifts >= down) & (self._shifts <= up)]
            shift = int(fits[rng.integers(0, len(fits))])
        out = window.copy()
        out[is_pitch] += shift
        return out


class InfillMix:
    """Turns a share of training windows into fill-in-the-middle examples.

    Each such window holds one arranged example (`musegen.tokens.infill`): consecutive bars
    of one tune (the whole tune when it fits), a gap of 1 to ``max_gap`` bars at a random
    place inside them, and after it the plain stream from a random place to fill the window.
    """

    def __init__(self, tokenizer, rate: float, form: str, max_gap: int = MAX_GAP_BARS):
        if not 0.0 <= rate <= 1.0:
            raise DataError(f"the infilling rate must be between 0 and 1 (got {rate})")
        self.tok = tokenizer
        self.rate = rate
        self.form = form
        self.max_gap = max_gap

    def window(self, arrays: TokenArrays, length: int, rng: np.random.Generator) -> np.ndarray:
        """One window (length + 1,) int64 holding an infilling example, or None if the tune
        drawn has a bar too long for the window."""
        stream = arrays.ids
        where = int(rng.integers(0, len(stream)))
        tune = int(np.searchsorted(arrays.offsets, where, side="right")) - 1
        bars = split_bars(self.tok, arrays.tune(tune))
        sizes = np.array([len(b) for b in bars.bars])
        room = length + 1 - 8 - self.max_gap  # BOS, SEP, EOS, metres and FILLs
        # the first bar: any bar from which the rest of the tune still fills the window
        tail = np.cumsum(sizes[::-1])[::-1]  # tokens from bar i to the end
        first = int(rng.integers(0, max(1, int((tail >= room).sum()))))
        last = first + int(np.searchsorted(np.cumsum(sizes[first:]), room, side="right"))
        if last <= first:
            return None
        part = bars.slice(first, last)
        gap = int(rng.integers(1, min(self.max_gap, len(part)) + 1))
        start = int(rng.integers(0, len(part) - gap + 1))
        seq = arrange(self.tok, part, start, start + gap, self.form).training_sequence(
            self.tok.eos_id
        )
        rest = length + 1 - len(seq)  # filled with the stream from a tune's start (its BOS)
        starts = arrays.offsets[:-1]
        at = int(starts[rng.integers(0, int(np.searchsorted(starts, len(stream) - rest, "right")))])
        return np.concatenate([np.asarray(seq, np.int64), np.asarray(stream[at : at + rest])])


def training_windows(
    sources: TokenArrays | Sequence[TokenArrays],
    length: int,
    batch: int,
    rng: np.random.Generator,
    transposer: Transposer | None = None,
    infill: InfillMix | None = None,
    weights: Sequence[float] | None = None,
) -> Iterator[np.ndarray]:
    """Endless batches (batch, length + 1) of windows cut from the packed stream, all drawn
    from one generator ``rng`` (training draws each batch from its own: `WindowMaker`).

    A window starts at a random token of the stream and may cross from one tune into the
    next (packing, as every tune is framed by BOS ... EOS). With ``infill``, each window is an
    infilling example instead with probability ``infill.rate``. Deterministic given ``rng``.

    ``sources``: one tokenized split, or several (a corpus mix): each window then comes from
    one of them, drawn with probability ``weights`` (default: in proportion to their tokens,
    as if they were one stream).
    """
    maker = WindowMaker(sources, length, batch, 0, transposer, infill, weights)
    while True:
        yield maker.draw(rng)


class WindowMaker:
    """The training batches of a run: batch ``i`` is ``maker(i)``, a pure function of the
    data, the settings, the seed and ``i`` (its own generator, seeded with (seed, i)). So a
    run resumes at any step without a generator state, and worker processes can make
    batches ahead in any order (`batch_stream`) with the same result as one process."""

    def __init__(
        self,
        sources: TokenArrays | Sequence[TokenArrays],
        length: int,
        batch: int,
        seed: int,
        transposer: Transposer | None = None,
        infill: InfillMix | None = None,
        weights: Sequence[float] | None = None,
    ):
        self.sources = [sources] if isinstance(sources, TokenArrays) else list(sources)
        for arrays in self.sources:
            if len(arrays.ids) < length + 1:
                raise DataError(
                    f"the data has {len(arrays.ids)} tokens; need at least {length + 1}"
                )
        self.share = mix_shares(self.sources, weights)
        self.ends = np.array([len(a.ids) - length for a in self.sources], dtype=np.int64)
        self.length, self.batch, self.seed = length, batch, seed
        self.transposer, self.infill = transposer, infill

    def __call__(self, index: int) -> np.ndarray:
        """Batch ``index`` (batch, length + 1) int64 of the run."""
        return self.draw(np.random.default_rng((self.seed, index)))

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One batch (batch, length + 1) int64 drawn with ``rng``."""
        sources, length, batch = self.sources, self.length, self.batch
        if len(sources) == 1:
            which = np.zeros(batch, dtype=np.int64)
        else:
            which = rng.choice(len(sources), size=batch, p=self.share)
        starts = rng.integers(0, self.ends[which])  # starts < ends: a whole window fits
        rows = [
            np.asarray(sources[k].ids[s : s + length + 1], dtype=np.int64)
            for k, s in zip(which, starts, strict=True)
        ]
        if self.infill is not None and self.infill.rate > 0:
            for i in np.flatnonzero(rng.random(batch) < self.infill.rate):
                example = self.infill.window(sources[which[i]], length, rng)
                if example is not None:
                    rows[i] = example
        if self.transposer is not None:
            rows = [self.transposer(r, rng) for r in rows]
        return np.stack(rows)


_worker_maker: WindowMaker | None = None  # the maker of a `batch_stream` worker process


def _set_worker_maker(maker: WindowMaker) -> None:
    """A worker's start: keep the maker, and end the worker when its parent ends, however it
    ends (a killed training run leaves no workers behind)."""
    global _worker_maker
    _worker_maker = maker
    parent = multiprocessing.parent_process()
    if parent is not None:

        def exit_with_parent() -> None:
            multiprocessing.connection.wait([parent.sentinel])
            os._exit(0)

        threading.Thread(target=exit_with_parent, daemon=True).start()


def _worker_batch(index: int) -> np.ndarray:
    if _worker_maker is None:
        raise RuntimeError("a batch_stream worker was started without its WindowMaker")
    return _worker_maker(index)


def batch_stream(maker: WindowMaker, start: int = 0, workers: int = 0) -> Iterator[np.ndarray]:
    """Batches ``maker(start)``, ``maker(start + 1)``, ... in order. With ``workers`` > 0,
    that many processes make them ahead (a GPU outruns one core's windows): the batches are
    the same as with none."""
    if workers <= 0:
        for index in itertools.count(start):
            yield maker(index)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process running threads
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_set_worker_maker, initargs=(maker,)
    )
    try:
        ahead = deque(pool.submit(_worker_batch, i) for i in range(start, start + 2 * workers))
        for index in itertools.count(start + 2 * workers):
            try:
                batch = ahead.popleft().result()
            except BrokenProcessPool as e:
                raise DataError(
                    "a worker process making training batches failed to start or died. A "
                    "script that calls train() must do so under `if __name__ == '__main__':` "
                    "(the workers import it again); or train with workers=0 (--workers 0)"
                ) from e
            yield batch
            ahead.append(pool.submit(_worker_batch, index))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def mix_shares(sources: Sequence[TokenArrays], weights: Sequence[float] | None) -> np.ndarray:
    """The probability that a training window comes from each source (they sum to 1)."""
    if weights is None:
        sizes = np.array([len(a.ids) for a in sources], dtype=np.float64)
        return sizes / sizes.sum()
    w = np.asarray(weights, dtype=np.float64)
    if len(w) != len(sources) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise DataError(
            f"--mix needs one non-negative weight per --data folder ({len(sources)}), not all "
            f"zero (got {list(weights)})"
        )
    return w / w.sum()


def join_arrays(parts: Sequence[TokenArrays], names: Sequence[str]) -> TokenArrays:
    """Several tokenized splits as one (the validation split of a corpus mix); each file name
    is prefixed with the name of the data it came from."""
    if len(parts) == 1:
        return parts[0]
    lengths = np.concatenate([np.diff(a.offsets) for a in parts])
    return TokenArrays(
        np.concatenate([np.asarray(a.ids) for a in parts]),
        np.concatenate([[0], np.cumsum(lengths)]),
        np.concatenate([a.notes for a in parts]),
        [f"{name}/{f}" for a, name in zip(parts, names, strict=True) for f in a.files],
    )


def corpus_counts(data_dir: str | Path, tokenizer) -> dict:
    """Tunes, notes and tokens per split (for the README and `musegen data folk`)."""
    out = {}
    for split in SPLITS:
        if not split_files(data_dir, split):  # (a small corpus may have an empty split)
            out[split] = {"tunes": 0, "notes": 0, "tokens": 0}
            continue
        arrays = tokenize_split(data_dir, split, tokenizer, progress=False)
        out[split] = {
            "tunes": len(arrays),
            "notes": int(arrays.notes.sum()),
            "tokens": int(len(arrays.ids)),
        }
    return out


def spread(n: int, limit: int | None = None) -> np.ndarray:
    """Indices of ``limit`` of ``n`` items spaced evenly over them (all of them for ``None``).

    A split lists its tunes collection by collection, so its first 250 tunes are all Essen
    songs; evenly spaced indices keep every collection in its share, the same ones every time.
    """
    if limit is None or limit >= n:
        return np.arange(n)
    return np.arange(limit) * n // limit


def eval_tunes(arrays: TokenArrays, limit: int | None = None) -> Sequence[np.ndarray]:
    """The tunes of a split as separate id arrays (evaluation scores whole tunes).

    With ``limit``, the tunes at ``spread(len(arrays), limit)``.
    """
    return [np.asarray(arrays.tune(i), dtype=np.int64) for i in spread(len(arrays), limit)]
