"""The folk corpus: built offline from music21's ABC collections, de-duplicated, split by tune
with no melody (or transposition of it) on two sides, and fully accepted by the tokenizer."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from corpus_helpers import make_corpus

from musegen.data import (
    SPLITS,
    build_folk_corpus,
    melody_key,
    split_files,
    split_of,
    tokenize_split,
)
from musegen.errors import DataError
from musegen.midi import read_score
from musegen.tokens.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def folk(tmp_path_factory) -> tuple[Path, dict, float]:
    pytest.importorskip("music21")
    out = tmp_path_factory.mktemp("folk")
    started = time.perf_counter()
    manifest = build_folk_corpus(out, progress=False)
    return out, manifest, time.perf_counter() - started


@pytest.mark.slow
def test_corpus_counts_and_split_fractions(folk):
    root, manifest, seconds = folk
    counts = manifest["counts"]
    total = sum(c["tunes"] for c in counts.values())
    assert total > 11_000 and sum(c["notes"] for c in counts.values()) > 900_000
    assert 0.87 < counts["train"]["tunes"] / total < 0.93
    assert counts["validation"]["tunes"] > 400 and counts["test"]["tunes"] > 400
    assert manifest["duplicates_removed"] > 0
    assert "non-commercial" in manifest["licence"]
    assert seconds < 120  # typically ~10 s on 2 cores
    for split in SPLITS:
        files = list((root / "midi" / split).glob("*.mid"))
        assert len(files) == counts[split]["tunes"]


@pytest.mark.slow
def test_no_melody_or_transposition_on_two_sides(folk):
    root, manifest, _ = folk
    sides: dict[str, set[str]] = defaultdict(set)
    for record in manifest["tunes"]:
        score = read_score(root / record["file"])
        sides[melody_key(score)].add(record["split"])
        sides["opening:" + melody_key(score, 12)].add(record["split"])
    assert all(len(s) == 1 for s in sides.values())
    # de-duplicated: no two tunes are the same melody, in any key
    full_keys = [k for k in sides if not k.startswith("opening:")]
    assert len(full_keys) == len(manifest["tunes"])


@pytest.mark.slow
def test_every_tune_is_accepted_and_test_split_round_trips(folk):
    root, _, _ = folk
    tok = Tokenizer()
    grammar = tok.grammar()
    for split in SPLITS:
        arrays = tokenize_split(root, split, tok, progress=False)
        for i in range(len(arrays)):
            assert grammar.accepts(arrays.tune(i).tolist(), complete=True)
    for f in split_files(root, "test"):
        score = read_score(f)
        assert tok.decode_score(tok.encode_score(score)).notes == tok.quantize(score).notes


@pytest.mark.slow
def test_existing_corpus_is_not_overwritten(folk):
    root, _, _ = folk
    with pytest.raises(DataError, match="already holds a corpus"):
        build_folk_corpus(root, progress=False)


def test_token_cache_is_reused_and_matches(tmp_path):
    root = make_corpus(tmp_path)
    tok = Tokenizer()
    a = tokenize_split(root, "validation", tok, progress=False)
    b = tokenize_split(root, "validation", tok, progress=False)  # from the cache
    assert np.array_equal(np.asarray(a.ids), np.asarray(b.ids)) and a.files == b.files
    assert a.tune(0)[0] == tok.bos_id and a.tune(0)[-1] == tok.eos_id


def test_plain_midi_folder_is_split_by_name(tmp_path):
    from corpus_helpers import make_corpus

    make_corpus(tmp_path)
    (tmp_path / "manifest.json").unlink()
    files = {s: split_files(tmp_path, s) for s in SPLITS}
    assert sum(len(f) for f in files.values()) == 48
    assert not set(files["train"]) & set(files["test"])
    with pytest.raises(DataError, match="unknown split"):
        split_files(tmp_path, "dev")


def test_split_is_stable():
    assert split_of("0" * 40) == "train" and split_of("f" * 40) == "test"
    assert json.dumps([split_of(f"{i:040x}") for i in range(5)]) == json.dumps(["train"] * 5)


def test_transposing_token_ids_moves_pitches_only_and_stays_in_range():
    import numpy as np

    from musegen.bench_transpose import transposed
    from musegen.tokens.tokenizer import Tokenizer

    tok = Tokenizer()
    lo, hi = int(tok.pitch_ids[0]), int(tok.pitch_ids[-1])
    ids = np.array([tok.bos_id, tok.bar_id, lo + 10, 3, lo + 20, tok.eos_id])
    up = transposed(ids, 5, tok)
    assert up.tolist() == [tok.bos_id, tok.bar_id, lo + 15, 3, lo + 25, tok.eos_id]
    assert transposed(ids, -10, tok) is not None and transposed(ids, -11, tok) is None
    assert transposed(np.array([hi]), 1, tok) is None
