"""What a user can set, with the library's defaults: generation options and the model names.

Importable without torch, so that `musegen --help` (which shows these defaults) starts at once.
The library's signatures take their defaults from here; nothing restates them.
"""

from __future__ import annotations

import numbers
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from musegen.errors import ConfigError

if TYPE_CHECKING:
    from musegen.generate.theory import Key

ARCHITECTURES: tuple[str, ...] = ("lstm", "transformer", "mamba")
DEFAULT_MODEL = "transformer"  # what load(), the CLI and the demo use unless told otherwise
DEFAULT_QUANTIZE = "auto"  # how played-in timing is read (musegen.quantize.MODES)
MAX_BARS = 256
MAX_VARIATIONS = 16
MAX_SEED = 2**63 - 1
# the order of the notes that start together in a token stream (musegen.tokens.tokenizer):
# lowest first, or highest (the melody) first
CHORD_ORDERS = ("bass", "top")
TRAIN_PRECISIONS = ("auto", "float32", "bfloat16")  # what `musegen train` computes in
INFILL_FORMS = ("spm", "psm")  # how an infilling example is arranged (musegen.tokens.infill)
MAX_GAP_BARS = 16  # the longest gap infilling writes (and its training examples hold)
BRIDGE_BARS = 4  # bars a bridge writes between two clips unless told otherwise
# Infilling samples this many fillings and keeps the one that leads best into the bar after the
# gap (MuseGen.infill_ids). On 80 gaps of the folk validation split, 4 took the jump into that
# bar from 4.0-5.2 semitones to 2.8-3.2 (the real tunes: 3.18); it costs 0.09-0.36 s more per
# variation regenerated on the 2-core CPU (bars 5-8 or 21-24 of a 30-bar air, ONNX int8).
INFILL_CANDIDATES = 4
# Batch-1 generation runs small kernels: one thread is as fast as two on a quiet 2-core CPU,
# and stays as fast when another process keeps a core busy, where two threads wait on each
# other (measured: 0.3-0.5 s either way quiet; 2.0-2.9x slower with two threads and a busy core).
GENERATION_THREADS = 1
# A primer's prefill is one large matrix product per layer, which two threads share well: on
# the 2-core CPU a 417-token primer took 62-88 ms with two threads against 114-136 ms with one,
# and 93-107 ms with two while another process kept a core busy (ONNX Runtime, no spinning).
PREFILL_THREADS = 2
THREADS_ENV = "MUSEGEN_THREADS"
CACHE_ENV = "MUSEGEN_CACHE"
SERVE_PORT = 7862  # where `musegen serve` listens (127.0.0.1) unless told otherwise


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_sampling(t: float, k: int | None, p: float | None, mp: float | None) -> None:
    """Validate sampling settings with messages that give the allowed range."""
    if not (_number(t) and 0 < t <= 10):
        raise ConfigError(f"temperature must be in (0, 10] (got {t}); 1.0 is the model's own")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 0):
        raise ConfigError(f"top_k must be a whole number >= 0 (got {k}); 0 turns it off")
    if p is not None and not (_number(p) and 0 < p <= 1):
        raise ConfigError(f"top_p must be in (0, 1] (got {p}); 1 turns it off")
    if mp is not None and not (_number(mp) and 0 <= mp < 1):
        raise ConfigError(f"min_p must be in [0, 1) (got {mp}); 0 turns it off")


def _whole(x: object) -> bool:
    """A whole number (Python or NumPy integer), not a bool."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def check_variations(n: object) -> None:
    if not _whole(n) or not 1 <= n <= MAX_VARIATIONS:
        raise ConfigError(
            f"variations must be a whole number from 1 to {MAX_VARIATIONS} (got {n!r})"
        )


def check_gap_bars(bars: object) -> None:
    """The number of bars infilling writes at once (a bridge's ``bars``)."""
    if not _whole(bars) or not 1 <= bars <= MAX_GAP_BARS:
        raise ConfigError(
            f"bars must be a whole number from 1 to {MAX_GAP_BARS}: infilling writes at most "
            f"{MAX_GAP_BARS} bars at a time (got {bars!r})"
        )


def check_seed(seed: object) -> None:
    if seed is not None and (not _whole(seed) or not 0 <= seed <= MAX_SEED):
        raise ConfigError(
            f"seed must be a whole number from 0 to 2**63-1, or None for a random one "
            f"(got {seed!r})"
        )


def generation_threads(threads: int | None = None) -> int:
    """The threads generation should use: ``threads`` if given, else $MUSEGEN_THREADS, else
    `GENERATION_THREADS`. 0 means "leave the runtime's own setting alone"."""
    source = "threads"
    if threads is None and os.environ.get(THREADS_ENV, "").strip():
        threads, source = os.environ[THREADS_ENV].strip(), THREADS_ENV
    if threads is None:
        return GENERATION_THREADS
    try:
        n = int(threads)
    except (TypeError, ValueError):
        n = -1
    if isinstance(threads, bool) or n < 0 or str(n) != str(threads).strip():
        raise ConfigError(
            f"{source} must be a whole number >= 0 (got {threads!r}); 1 suits batch-1 "
            "generation, 0 leaves the setting alone"
        )
    return n


def prefill_threads(threads: int | None = None) -> int:
    """Threads for the prefill: as `generation_threads` when set (argument or environment),
    else `PREFILL_THREADS`, at most the CPUs there are."""
    if threads is None and not os.environ.get(THREADS_ENV, "").strip():
        return min(PREFILL_THREADS, os.cpu_count() or 1)
    return generation_threads(threads)


def cache_dir(name: str) -> Path:
    """Where musegen keeps what it converted once (``name``: a subfolder):
    $MUSEGEN_CACHE, else ~/.cache/musegen."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "musegen"
    return Path(root) / name


def draw_seed(seed: int | None) -> int:
    """``seed``, or a new random one (to report, so that a result can be made again)."""
    return seed if seed is not None else secrets.randbelow(2**31)


@dataclass(frozen=True)
class Sampling:
    """How tokens are drawn. Defaults are the library's defaults everywhere."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = 0.95
    min_p: float | None = None

    def __post_init__(self) -> None:
        check_sampling(self.temperature, self.top_k, self.top_p, self.min_p)


@dataclass(frozen=True)
class Constraints:
    """What the continuation must respect."""

    bars: int = 8
    key: Key | None = None
    pitch_range: tuple[int, int] | None = None  # inclusive MIDI pitches
    allow_metre_change: bool = False
    max_tokens_per_bar: int = 96  # a safety net: then the bar is closed

    def __post_init__(self) -> None:
        if not _whole(self.bars) or not 1 <= self.bars <= MAX_BARS:
            raise ConfigError(
                f"bars must be a whole number from 1 to {MAX_BARS} (got {self.bars!r})"
            )
        if self.pitch_range is not None:
            pr = self.pitch_range
            if not (isinstance(pr, (tuple, list)) and len(pr) == 2 and all(map(_whole, pr))):
                raise ConfigError(
                    f"pitch range must be a pair (low, high) of MIDI pitches (got {pr!r})"
                )
            lo, hi = pr
            if not (0 <= lo <= hi <= 127):
                raise ConfigError(
                    f"pitch range must satisfy 0 <= low <= high <= 127 (got {lo}-{hi})"
                )
