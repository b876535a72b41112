"""Fuzzing the MIDI reader and the tokenizer (bounded): damaged files raise only MuseGenErrors,
quickly. ``python tests/fuzz_midi.py`` runs the same mutations for longer."""

from __future__ import annotations

import random
import time
from functools import cache

from conftest import real_midi_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from midi_mutations import MUTATIONS, mutate

from musegen.errors import MuseGenError
from musegen.midi import read_score
from musegen.quantize import read_for_model
from musegen.tokens.tokenizer import Tokenizer

TIME_BOUND_S = 5.0  # per file, generous for a loaded CI machine; real files take milliseconds


@cache
def _corpus() -> tuple[bytes, ...]:
    return tuple(p.read_bytes() for p in real_midi_files())


def _read_and_encode(data: bytes) -> None:
    """What generation does with an upload: read it as played (quantized when off the grid,
    as ``prepare`` does) and tokenize it; also plain reading and tokenizing."""
    start = time.perf_counter()
    try:
        Tokenizer().encode_score(read_score(data))
        Tokenizer().encode_score(read_for_model(data, None, None, "auto")[1])
    except MuseGenError:
        pass
    assert time.perf_counter() - start < TIME_BOUND_S


@settings(
    max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(seed=st.integers(0, 2**32 - 1), index=st.integers(0, 10_000))
def test_mutated_real_files_raise_only_musegen_errors(seed, index):
    files = _corpus()
    data, _ = mutate(files[index % len(files)], random.Random(seed))
    _read_and_encode(data)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(body=st.binary(max_size=512), tracks=st.integers(0, 65535), division=st.integers(0, 65535))
def test_random_bytes_after_a_valid_header(body, tracks, division):
    header = (
        b"MThd\x00\x00\x00\x06\x00\x01" + tracks.to_bytes(2, "big") + division.to_bytes(2, "big")
    )
    _read_and_encode(header + b"MTrk" + len(body).to_bytes(4, "big") + body)


def test_every_mutation_is_exercised():
    data = _corpus()[0]
    rng = random.Random(1)
    for m in MUTATIONS:
        for _ in range(5):
            _read_and_encode(m(data, rng))
