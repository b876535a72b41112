"""The decoder registry: three interchangeable architectures, built from named presets.

>>> model = build("mamba", vocab_size=450, preset="small", dropout=0.0)
>>> config = dataclasses.asdict(model.config)          # JSON-ready
>>> same = build_from_config("mamba", config)           # rebuilds the architecture

Every decoder follows :class:`~musegen.models.base.Decoder`: ``forward(tokens, state=None,
return_state=False)``, ``init_state(batch)`` and ``step(token, state)``.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

import torch
from torch import nn

from musegen.errors import ConfigError
from musegen.models import lstm, mamba, transformer
from musegen.models.base import Decoder, DecoderState
from musegen.models.lstm import LSTMConfig, LSTMDecoder, LSTMState
from musegen.models.mamba import MambaConfig, MambaDecoder, MambaState
from musegen.models.transformer import TransformerConfig, TransformerDecoder, TransformerState
from musegen.options import ARCHITECTURES

# arch -> (module holding PRESETS, config class, decoder class)
_REGISTRY: dict[str, tuple[ModuleType, type, type[Decoder]]] = {
    "lstm": (lstm, LSTMConfig, LSTMDecoder),
    "transformer": (transformer, TransformerConfig, TransformerDecoder),
    "mamba": (mamba, MambaConfig, MambaDecoder),
}

__all__ = [
    "ARCHITECTURES",
    "Decoder",
    "DecoderState",
    "LSTMConfig",
    "LSTMDecoder",
    "LSTMState",
    "MambaConfig",
    "MambaDecoder",
    "MambaState",
    "TransformerConfig",
    "TransformerDecoder",
    "TransformerState",
    "build",
    "build_from_config",
    "config_for",
    "count_parameters",
    "grow_vocab",
    "presets",
]


def _entry(arch: str) -> tuple[ModuleType, type, type[Decoder]]:
    if arch not in _REGISTRY:
        allowed = ", ".join(ARCHITECTURES)
        raise ConfigError(f"unknown architecture {arch!r}; choose one of {allowed}")
    return _REGISTRY[arch]


def presets(arch: str) -> tuple[str, ...]:
    """Names of the presets of ``arch`` (each has at least "tiny" and "small")."""
    return tuple(_entry(arch)[0].PRESETS)


def _settable_fields(config_cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(config_cls) if f.init]


def _make_config(arch: str, config_cls: type, values: dict[str, Any]) -> Any:
    allowed = _settable_fields(config_cls)
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{arch}: unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )
    try:
        return config_cls(**values)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{arch}: {e}") from None


def config_for(arch: str, vocab_size: int, preset: str = "small", **overrides: Any) -> Any:
    """The config dataclass of preset ``preset`` of ``arch``, with ``overrides`` applied."""
    module, config_cls, _ = _entry(arch)
    if preset not in module.PRESETS:
        raise ConfigError(
            f"{arch}: unknown preset {preset!r}; choose one of {', '.join(module.PRESETS)}"
        )
    values = {**module.PRESETS[preset], **overrides, "vocab_size": vocab_size}
    return _make_config(arch, config_cls, values)


def build(arch: str, vocab_size: int, preset: str = "small", **overrides: Any) -> Decoder:
    """A freshly initialized decoder of architecture ``arch`` ("lstm", "transformer", "mamba")."""
    return _entry(arch)[2](config_for(arch, vocab_size, preset, **overrides))


def build_from_config(arch: str, config_dict: dict[str, Any]) -> Decoder:
    """Rebuild a decoder from ``dataclasses.asdict(model.config)`` (e.g. read from JSON).

    Derived fields in the dict (such as ``head_dim``) are recomputed, not read.
    """
    _, config_cls, decoder_cls = _entry(arch)
    derived = {f.name for f in dataclasses.fields(config_cls) if not f.init}
    values = {k: v for k, v in config_dict.items() if k not in derived}
    return decoder_cls(_make_config(arch, config_cls, values))


def grow_vocab(model: Decoder, arch: str, vocab_size: int) -> Decoder:
    """``model`` with a vocabulary grown to ``vocab_size`` (new ids at the end, as the
    tokenizer's optional tokens are): every weight is kept, the embedding's new rows start at
    the mean of the old ones plus a little noise (torch's generator), so the new tokens start
    as an average token and training tells them apart."""
    config = {f.name: getattr(model.config, f.name) for f in dataclasses.fields(model.config)}
    old = config["vocab_size"]
    if vocab_size < old:
        raise ConfigError(f"cannot shrink a vocabulary ({old} -> {vocab_size} ids)")
    grown = build_from_config(arch, {**config, "vocab_size": vocab_size})
    state = grown.state_dict()
    for name, tensor in model.state_dict().items():
        if state[name].shape == tensor.shape:
            state[name] = tensor
            continue
        rows = tensor.float()  # (V_old, D): the vocabulary is the first dimension
        extra = rows.mean(0, keepdim=True) + 0.02 * rows.std() * torch.randn(
            vocab_size - old, rows.shape[1]
        )
        state[name] = torch.cat([rows, extra]).to(tensor.dtype)
    grown.load_state_dict(state)
    return grown


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (a tied embedding and head count once)."""
    return sum(p.numel() for p in model.parameters())
