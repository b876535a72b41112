"""Runtimes: what runs a decoder's prefill and step for generation.

Generation needs two calls from a model (`musegen.runtime.base.Runtime`):

- ``prefill(ids)``: the primer in one call -> logits at every position and the state;
- ``step(tokens, state)``: one token per row -> logits and the new state.

Two runtimes implement them:

- ``"torch"``: the decoder's eager PyTorch code (the reference; needed to train, on a GPU,
  and for checkpoints without graphs);
- ``"onnx"``: the checkpoint's ``prefill.onnx`` and ``step.onnx`` run by ONNX Runtime, with
  no torch import (`musegen export` writes the graphs; the shipped models have them).

``"auto"`` (the default) picks ONNX Runtime when it is installed and the checkpoint has
graphs, else torch.

Precision (ONNX Runtime only): ``"float32"`` runs the graphs as the model was trained;
``"int8"`` runs the int8 graphs, whose weight products use 8-bit weights made at load
(`musegen.runtime.int8`): in `musegen bench` on the 2-core EPYC, steps 1.5x (Transformer) to
3.0x (LSTM) faster than float32, for at most +0.07% bits per note on held-out music
(`python -m musegen.bench_precision`).
``"auto"`` (the default) is int8 where the checkpoint has int8 graphs, else float32.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from musegen.errors import ConfigError
from musegen.runtime.base import Runtime

RUNTIMES: tuple[str, ...] = ("auto", "onnx", "torch")
DEFAULT_RUNTIME = "auto"
PRECISIONS: tuple[str, ...] = ("auto", "float32", "int8")
DEFAULT_PRECISION = "auto"

__all__ = [
    "DEFAULT_PRECISION",
    "DEFAULT_RUNTIME",
    "PRECISIONS",
    "RUNTIMES",
    "Runtime",
    "as_runtime",
    "choose_precision",
    "choose_runtime",
    "installed",
]


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module made unimportable (sys.modules[name] = None)
        return False


def has_graphs(directory: Path, precision: str = "float32") -> bool:
    """Whether a checkpoint directory holds exported graphs of a precision."""
    from musegen.runtime.onnx_runtime import graph_files

    return all((directory / name).is_file() for name in graph_files(precision))


def choose_runtime(runtime: str, directory: Path, device: str = "cpu") -> str:
    """ "onnx" or "torch" for a checkpoint: ``runtime`` checked, "auto" resolved.

    Raises `ConfigError` when the asked-for runtime cannot run here, saying what to do."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)} (got {runtime!r})")
    on_cpu = str(device).split(":")[0] == "cpu"
    if runtime == "auto":
        if on_cpu and installed("onnxruntime") and has_graphs(directory):
            return "onnx"
        if installed("torch"):
            return "torch"
        if not installed("onnxruntime"):
            raise ConfigError(
                "neither onnxruntime nor torch is installed: pip install onnxruntime "
                "(generation) or torch (training too)"
            )
        raise ConfigError(
            f"{directory} has no ONNX graphs and torch is not installed: run "
            f"`musegen export {directory}` where torch is installed, or install torch"
        )
    if runtime == "onnx":
        if not on_cpu:
            raise ConfigError("runtime 'onnx' runs on the CPU; use runtime='torch' for a GPU")
        if not installed("onnxruntime"):
            raise ConfigError("runtime 'onnx' needs onnxruntime: pip install onnxruntime")
        if not has_graphs(directory):
            raise ConfigError(
                f"{directory} has no ONNX graphs: run `musegen export {directory}` first"
            )
        return "onnx"
    if not installed("torch"):
        raise ConfigError(
            "runtime 'torch' needs PyTorch: pip install torch (or use runtime='onnx')"
        )
    return "torch"


def choose_precision(precision: str, runtime: str, directory: Path) -> str:
    """ "float32" or "int8" for a checkpoint on the chosen ``runtime`` ("onnx" or "torch"):
    ``precision`` checked, "auto" resolved.

    Raises `ConfigError` when the asked-for precision cannot run, saying what to do."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    if runtime == "torch":
        if precision == "int8":
            raise ConfigError(
                "precision 'int8' runs on ONNX Runtime: use runtime 'onnx' or 'auto' (or "
                "precision 'float32' with torch)"
            )
        return "float32"
    if precision == "auto":
        return "int8" if has_graphs(directory, "int8") else "float32"
    if not has_graphs(directory, precision):
        raise ConfigError(
            f"{directory} has no {precision} graphs: run `musegen export {directory}` "
            "(with this musegen version) first"
        )
    return precision


def as_runtime(model: object) -> Runtime:
    """``model`` if it is a runtime already, else a torch decoder wrapped in the torch runtime."""
    if all(hasattr(model, a) for a in ("prefill", "step", "repeat")):
        return model  # type: ignore[return-value]
    from musegen.runtime.torch_runtime import TorchRuntime

    return TorchRuntime(model)  # type: ignore[arg-type]
