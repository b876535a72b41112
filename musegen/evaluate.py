"""Evaluation: bits per note, pitch-only bits per note, and the n-gram baseline.

Bits per note of a tune = (sum over its tokens after BOS of -log2 p(token | past)) / notes.
Pitch bits per note counts only the PITCH tokens (the model still sees every token as
context, so a pitch is predicted knowing its onset but not its duration). This is the figure
comparable to IDyOM's pitch prediction on folk songs (Pearce 2005: 2.1-2.7 on Essen subsets).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from musegen.data import ALL, MANIFEST, eval_tunes, is_corpus, spread, tokenize_split
from musegen.errors import DataError
from musegen.metrics import LN2, bits_per_note
from musegen.models.base import Decoder
from musegen.tokens.tokenizer import Tokenizer

__all__ = ["LN2", "bits_per_note", "evaluate_model", "evaluate_named", "token_nll"]


@torch.inference_mode()
def token_nll(
    model: Decoder, tunes: Sequence[np.ndarray], *, batch_size: int = 16
) -> list[np.ndarray]:
    """Per-token negative log-likelihood (nats) of tokens 1.. of each tune, in input order.

    Tunes are batched by length; padding sits at the end, where a causal model cannot see it.
    A tune longer than a Transformer's window is scored with a sliding window whose stride
    is half the window (every token gets at least half a window of context).
    """
    device = next(model.parameters()).device
    window = model.context_window  # None: unbounded (recurrent)
    order = sorted(range(len(tunes)), key=lambda i: len(tunes[i]))
    out: list[np.ndarray | None] = [None] * len(tunes)
    short = [i for i in order if window is None or len(tunes[i]) <= window]
    for b in range(0, len(short), batch_size):
        idx = short[b : b + batch_size]
        longest = max(len(tunes[i]) for i in idx)
        x = torch.zeros(len(idx), longest, dtype=torch.long)
        for row, i in enumerate(idx):
            x[row, : len(tunes[i])] = torch.as_tensor(tunes[i], dtype=torch.long)
        x = x.to(device)
        logits = model(x[:, :-1]).float()  # (B, T-1, V)
        nll = F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")  # (B, T-1)
        for row, i in enumerate(idx):
            out[i] = nll[row, : len(tunes[i]) - 1].cpu().numpy()
    for i in order:
        if out[i] is None:
            out[i] = _sliding_nll(model, tunes[i], window, device)
    return out  # type: ignore[return-value]


def _sliding_nll(model, tune: np.ndarray, window: int, device) -> np.ndarray:
    ids = torch.as_tensor(tune, dtype=torch.long, device=device)
    result = np.zeros(len(tune) - 1, dtype=np.float32)
    stride = window // 2
    done = 0  # targets 1..done are scored
    start = 0
    while done < len(tune) - 1:
        chunk = ids[start : start + window]
        logits = model(chunk[None, :-1]).float()[0]  # (W-1, V)
        nll = F.cross_entropy(logits, chunk[1:], reduction="none").cpu().numpy()
        first = done - start  # first target in this chunk not yet scored
        result[done : start + len(chunk) - 1] = nll[first:]
        done = start + len(chunk) - 1
        start += stride
    return result


def evaluate_model(
    model,
    tokenizer: Tokenizer,
    arrays,
    *,
    limit: int | None = None,
    groups: Sequence[str] | None = None,
) -> dict:
    """Bits per note of a model over a tokenized split (`data.TokenArrays`).

    ``limit`` scores that many tunes spread evenly over the split (`data.spread`).
    ``groups``: a name per tune of ``arrays`` (its collection or style); with two or more,
    the result also has ``by_collection``: the same figures per group.
    """
    tunes, notes = _scored(arrays, limit)
    was_training = model.training
    model.eval()
    nlls = token_nll(model, tunes)
    model.train(was_training)
    result = bits_per_note(nlls, tunes, notes, tokenizer)
    if groups is not None and len(set(groups)) > 1:
        picked = [groups[i] for i in spread(len(arrays), limit)]
        result["by_collection"] = {
            g: bits_per_note(*_members(g, picked, nlls, tunes, notes), tokenizer)
            for g in sorted(set(picked))
        }
    return result


def _members(group: str, groups: Sequence[str], *columns: Sequence) -> list[list]:
    """The items of each column that belong to ``group``."""
    return [[c[i] for i, g in enumerate(groups) if g == group] for c in columns]


def _scored(arrays, limit: int | None) -> tuple[Sequence[np.ndarray], np.ndarray]:
    """The tunes an evaluation scores (all, or ``limit`` spread over the split) and their notes."""
    return eval_tunes(arrays, limit), arrays.notes[spread(len(arrays), limit)]


def evaluate_ngram(data_dir, tokenizer: Tokenizer, *, split: str = "test", limit=None) -> dict:
    """Fit the Kneser-Ney baseline on the train split, choose its order on validation."""
    from musegen.ngram import fit_best_order

    train = eval_tunes(tokenize_split(data_dir, "train", tokenizer, progress=False))
    validation = eval_tunes(tokenize_split(data_dir, "validation", tokenizer, progress=False))
    arrays = tokenize_split(data_dir, split, tokenizer, progress=False)
    tunes, notes = _scored(arrays, limit)
    model, scores = fit_best_order(train, validation, tokenizer.vocab_size, tokenizer.pad_id)
    result = bits_per_note(model.token_nll(tunes), tunes, notes, tokenizer)
    return {"model": "ngram", "order": model.order, **result}


def default_split(data_dir) -> str:
    """What `musegen eval` scores when no split is named: a corpus's test split, or every
    file of a plain folder of MIDI files."""
    if not Path(data_dir).is_dir():
        raise DataError(f"data directory not found: {data_dir}")
    return "test" if is_corpus(data_dir) else ALL


def collections_of(data_dir, files: Sequence[str]) -> list[str]:
    """The collection of each file: from a corpus manifest, else the first folder under
    ``data_dir`` (a folder of MIDI files sorted into style folders is scored per style)."""
    manifest = Path(data_dir) / MANIFEST
    by_file = {}
    if manifest.is_file():
        tunes = json.loads(manifest.read_text())["tunes"]
        by_file = {r["file"]: r.get("collection", "-") for r in tunes}
    out = []
    for f in files:  # as `data.TokenArrays` names them: relative to data_dir
        parts = Path(f).parts
        out.append(by_file.get(str(f)) or (parts[0] if len(parts) > 1 else "."))
    return out


def evaluate_named(name: str, data_dir, *, split: str | None = None, limit=None) -> dict:
    """`musegen eval`: a shipped name, a checkpoint directory, or ``ngram``.

    ``split``: train, validation, test, or all (None: `default_split`; for the n-gram, which
    is fitted on the train split, "test"). The result names the split it scored."""
    from musegen.checkpoint import load_checkpoint, resolve

    if name == "ngram":
        split = split or "test"  # it is fitted on the train split: never score all of it
        if split == ALL:
            raise DataError(
                "the n-gram baseline is fitted on the data's train split, so it cannot score "
                "all of it; choose --split test"
            )
        return {**evaluate_ngram(data_dir, Tokenizer(), split=split, limit=limit), "split": split}
    split = split or default_split(data_dir)
    model, tokenizer, config = load_checkpoint(resolve(name))
    arrays = tokenize_split(data_dir, split, tokenizer, progress=False)
    groups = collections_of(data_dir, arrays.files)
    result = evaluate_model(model, tokenizer, arrays, limit=limit, groups=groups)
    info = {"model": name, "arch": config["arch"], "parameters": config["parameters"]}
    return {**info, "split": split, **result}


# ------------------------------------------------------------------ music statistics


def _histogram(values, bins: int, offset: int = 0) -> np.ndarray:
    h = np.bincount(
        np.clip(np.asarray(values, dtype=np.int64) + offset, 0, bins - 1), minlength=bins
    )
    return h / max(h.sum(), 1)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Histogram intersection of two normalised histograms: 1 = identical, 0 = disjoint."""
    return float(np.minimum(a, b).sum())


def texture(notes: Sequence, bars: int) -> dict:
    """How a stretch of music is laid out: notes per bar, voices per onset (notes sounding
    together at each onset), and its register (median pitch, and the 10th and 90th
    percentiles: the bass and the top of a chordal part, both hands of a piano part)."""
    pitches = np.array([n.pitch for n in notes], dtype=np.float64)
    if not len(pitches):
        return {"notes_per_bar": 0.0, "voices_per_onset": 0.0, "median": None}
    low, median, high = np.percentile(pitches, [10, 50, 90])
    return {
        "notes_per_bar": len(notes) / max(bars, 1),
        "voices_per_onset": len(notes) / len({n.start for n in notes}),
        "low": float(low),
        "median": float(median),
        "high": float(high),
    }


def music_statistics(
    generator,
    arrays,
    *,
    tunes: int = 50,
    primer_bars: int = 4,
    bars: int = 4,
    seed: int = 0,
    samples: int = 1,
) -> dict:
    """Compare sampled continuations with the real ones on a split.

    Of the tunes with at least ``primer_bars + bars`` bars, ``tunes`` spread evenly over the
    split (`data.spread`, so every collection is in its share) are used. For each, the model
    (a `musegen.MuseGen`) continues the first ``primer_bars`` bars by ``bars`` bars,
    ``samples`` times (in one batch; the continuation figures average over all of them, which
    evens out the sampling noise of one draw per tune); the real next ``bars`` bars are the
    reference. Reported: pitch-class histogram overlap and melodic
    interval histogram overlap (generated vs real, pooled over tunes, 1 = identical), the
    in-key rate of both (notes in the primer's detected key), and the texture of the primer,
    the continuation and the real bars (`texture`, averaged over tunes): notes per bar, voices
    per onset, and how far the register moved from the primer's (semitones between medians,
    and between the 10th and the 90th percentiles).
    """
    from musegen.generate.theory import detect_key
    from musegen.midi import Score, midi_bytes

    tok = generator.tokenizer
    gen_pc, real_pc, gen_iv, real_iv = [], [], [], []
    gen_in_key = real_in_key = gen_notes = real_notes = used = 0
    layout: dict[str, list[dict]] = {"primer": [], "generated": [], "real": []}
    usable = []  # (tune index, score, primer notes, real continuation notes)
    for i in range(len(arrays)):
        score = tok.decode_score(np.asarray(arrays.tune(i)).tolist())
        starts = tok.bar_starts(
            tok.metre_changes(score.time_signatures), max(n.start for n in score.notes)
        )
        if len(starts) < primer_bars + bars + 1:
            continue
        cut, stop = int(starts[primer_bars]), int(starts[primer_bars + bars])
        primer = [n for n in score.notes if n.start < cut]
        real = [n for n in score.notes if cut <= n.start < stop]
        if len(primer) >= 4 and len(real) >= 2:
            usable.append((i, score, primer, real))
    for j in spread(len(usable), tunes):
        i, score, primer, real = usable[j]
        clipped = Score(
            tok.ticks_per_quarter, primer, score.tracks, score.time_signatures, score.tempos
        )
        prepared = generator.prepare(midi_bytes(clipped))
        key = detect_key((n.pitch, n.duration) for n in primer).pitch_classes
        _add_notes(real, primer, real_pc, real_iv)
        real_in_key += sum(n.pitch % 12 in key for n in real)
        real_notes += len(real)
        used += 1
        primer_layout, real_layout = texture(primer, primer_bars), texture(real, bars)
        for ids in generator.generate_ids(prepared, n=samples, bars=bars, seed=seed + i):
            decoded = tok.decode_score(prepared.context + ids)
            made = [n for n in decoded.notes if n.start >= prepared.start]
            _add_notes(made, primer, gen_pc, gen_iv)
            gen_in_key += sum(n.pitch % 12 in key for n in made)
            gen_notes += len(made)
            # one entry per continuation on every side, so that the register moves pair up
            layout["primer"].append(primer_layout)
            layout["generated"].append(texture(made, bars))
            layout["real"].append(real_layout)
    return {
        "tunes": used,
        "samples": samples,
        "pitch_class_overlap": _overlap(_histogram(gen_pc, 12), _histogram(real_pc, 12)),
        "interval_overlap": _overlap(_histogram(gen_iv, 49, 24), _histogram(real_iv, 49, 24)),
        "in_key_generated": gen_in_key / max(gen_notes, 1),
        "in_key_real": real_in_key / max(real_notes, 1),
        **_layout_summary(layout),  # notes per bar, voices per onset, register moves
    }


def _add_notes(notes: list, primer: list, pitch_classes: list, intervals: list) -> None:
    """Pool the pitch classes of ``notes`` and their intervals, from the primer's last note on."""
    pitches = [n.pitch for n in notes]
    pitch_classes += [p % 12 for p in pitches]
    intervals += list(np.diff([primer[-1].pitch, *pitches]))


def _layout_summary(layout: dict[str, list[dict]]) -> dict:
    """Mean texture of primer, continuation and real bars; mean register moves from the primer."""
    out = {}
    for side, items in layout.items():
        out[f"notes_per_bar_{side}"] = float(np.mean([t["notes_per_bar"] for t in items] or [0.0]))
        out[f"voices_per_onset_{side}"] = float(
            np.mean([t["voices_per_onset"] for t in items] or [0.0])
        )
    for side in ("generated", "real"):
        for where in ("low", "median", "high"):
            moves = [
                abs(t[where] - p[where])
                for t, p in zip(layout[side], layout["primer"], strict=True)
                if t["median"] is not None
            ]
            out[f"register_move_{where}_{side}"] = float(np.mean(moves)) if moves else None
    return out
