"""musegen: continue melodies with LSTM, Transformer and Mamba decoders.

    import musegen
    m = musegen.load("mamba")
    out = m.continue_midi("clip.mid", bars=8)      # -> pretty_midi.PrettyMIDI

Heavy modules (torch) are imported on first use, so ``import musegen`` stays quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from musegen import errors
from musegen.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    MidiError,
    MuseGenError,
    TokenError,
)

__version__ = "0.1.0"

__all__ = [
    "load",
    "MuseGen",
    "Tokenizer",
    "errors",
    "MuseGenError",
    "MidiError",
    "TokenError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "__version__",
]

if TYPE_CHECKING:
    from musegen.generate.muse import MuseGen, load
    from musegen.tokens.tokenizer import Tokenizer


def __getattr__(name: str) -> Any:
    if name in ("load", "MuseGen"):
        from musegen.generate import muse as generate

        return getattr(generate, name)
    if name == "Tokenizer":
        from musegen.tokens.tokenizer import Tokenizer

        return Tokenizer
    raise AttributeError(f"module 'musegen' has no attribute {name!r}")
