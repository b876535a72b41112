"""`musegen export DIR`: write a checkpoint's prefill and step graphs for ONNX Runtime.

The graphs (``prefill.onnx``, ``step.onnx``, and their int8 variants ``prefill.int8.onnx``,
``step.int8.onnx`` (`musegen.runtime.int8`), a few tens of KB each) hold no weights of their
own: every parameter is an ONNX external-data reference into the checkpoint's
``model.safetensors`` (a safetensors file is a JSON header and then the raw little-endian
tensors, which is exactly what ONNX external data points at). So the weights stay in one file,
and ONNX Runtime reads them from it when it opens a graph. Each graph records a hash of the
safetensors header it was written against; a checkpoint whose weights file was replaced with
another layout is refused at load (export again).

Needs torch and the ``onnx`` package (``pip install 'musegen[export]'``).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from musegen import checkpoint as ckpt
from musegen.errors import CheckpointError, ConfigError
from musegen.models.transformer import TransformerDecoder
from musegen.runtime.graphs import GRAPHS, PREFILL_CHUNK, empty_state, state_spec
from musegen.runtime.int8 import to_int8
from musegen.runtime.onnx_runtime import (
    GRAPH_VERSION,
    PREFILL,
    STEP,
    WEIGHTS,
    graph_files,
    model_config_hash,
    safetensors_header,
)

OPSET = 20
INLINE_LIMIT = 64 * 1024  # bytes of constants a graph may hold itself (tables, not weights)


def _rms_norm_symbolic(g, x, shape, weight, eps):  # noqa: ANN001 - torch.onnx's signature
    """aten::rms_norm over the last dimension, as plain ONNX ops (opset 20 has no RMSNorm),
    in the pattern ONNX Runtime fuses into one SimplifiedLayerNormalization kernel."""
    from torch.onnx import symbolic_helper

    eps = symbolic_helper._get_const(eps, "f", "eps")
    axes = g.op("Constant", value_t=torch.tensor([-1], dtype=torch.long))
    two = g.op("Constant", value_t=torch.tensor(2.0, dtype=torch.float32))
    mean_sq = g.op("ReduceMean", g.op("Pow", x, two), axes, keepdims_i=1)
    eps_t = g.op("Constant", value_t=torch.tensor(eps, dtype=torch.float32))
    y = g.op("Div", x, g.op("Sqrt", g.op("Add", mean_sq, eps_t)))
    return y if symbolic_helper._is_none(weight) else g.op("Mul", y, weight)


def _export(module, args, path: Path, inputs, outputs, dynamic) -> None:  # noqa: ANN001
    torch.onnx.register_custom_op_symbolic("aten::rms_norm", _rms_norm_symbolic, OPSET)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            do_constant_folding=False,  # keep every parameter as itself: it lives in WEIGHTS
        )


def _point_at_weights(path: Path, header: dict, data_start: int, meta: dict) -> None:
    """Turn every parameter initializer of the graph at ``path`` into a reference into the
    safetensors file, and record ``meta`` in the graph."""
    import onnx

    graph = onnx.load(str(path))
    inline = 0
    for init in graph.graph.initializer:
        name = init.name.removeprefix("model.")
        entry = header.get(name)
        if entry is None or not init.name.startswith("model."):
            inline += len(init.raw_data) or 4 * len(init.float_data) or 8 * len(init.int64_data)
            continue
        if entry["dtype"] != "F32" or list(entry["shape"]) != list(init.dims):
            raise CheckpointError(
                f"{name} is stored as {entry['dtype']} {entry['shape']}; ONNX export needs the "
                "float32 weights that training saves"
            )
        begin, end = entry["data_offsets"]
        init.ClearField("raw_data")
        init.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (
            ("location", WEIGHTS),
            ("offset", str(data_start + begin)),
            ("length", str(end - begin)),
        ):
            init.external_data.add(key=key, value=value)
    if inline > INLINE_LIMIT:
        raise CheckpointError(f"{path.name} would hold {inline} bytes of constants of its own")
    for key, value in meta.items():
        graph.metadata_props.add(key=f"musegen.{key}", value=json.dumps(value))
    onnx.save(graph, str(path))


def _write_int8(path: Path, out: Path) -> None:
    """The int8 variant of the graph at ``path`` (weights still pointing into WEIGHTS)."""
    import onnx

    graph = to_int8(onnx.load(str(path), load_external_data=False))
    for prop in graph.metadata_props:
        if prop.key == "musegen.precision":
            prop.value = json.dumps("int8")
    onnx.save(graph, str(out))


def export(directory: str | Path) -> list[Path]:
    """Write ``prefill.onnx`` and ``step.onnx`` next to the checkpoint's weights, and their
    int8 variants ``prefill.int8.onnx`` and ``step.int8.onnx``.

    Returns the paths written. Raises `CheckpointError` for a checkpoint it cannot export."""
    path = ckpt.resolve(directory)
    if not os.access(path, os.W_OK):
        raise ConfigError(f"{path} is not writable; copy the checkpoint somewhere you can write")
    model, _, config = ckpt.load_checkpoint(path)
    model.eval()
    arch = config["arch"]
    header, data_start, header_hash = safetensors_header(path / WEIGHTS)
    prefill, step = (cls(model) for cls in GRAPHS[type(model)])
    spec = state_spec(model)
    names = [n for n, _ in spec]
    initial = empty_state(model)  # what prefill starts from ([]: it starts empty)
    window = model.context_window
    # The Transformer's keys and values live in ring buffers that the runtime writes: its
    # step returns one row per cache, the others return the whole new state. Each ring's
    # slot axis: keys (1, H, Dh, T), values (1, H, T, Dh).
    is_transformer = isinstance(model, TransformerDecoder)
    ring = {n: 3 if n.startswith("k") else 2 for n in names if n != "pos"} if is_transformer else {}
    meta = {
        "graph_version": GRAPH_VERSION,
        "arch": arch,
        "state": spec,
        "window": window,
        "ring_axis": ring,
        "prefill_state": [list(t.shape) for t in initial] if initial else None,
        "prefill_chunk": PREFILL_CHUNK.get(arch),
        "weights_header_sha256": header_hash,
        "model_config_sha256": model_config_hash(path),
        "precision": "float32",
    }
    # Dynamic axes: T (prefill length) and B (rows).
    outputs = ["logits", *(f"{n}_out" for n in names)]
    p_dyn = {"tokens": {1: "T"}, "logits": {1: "T"}}
    p_dyn |= {f"{n}_out": {axis: "T"} for n, axis in ring.items()}
    s_dyn: dict[str, dict[int, str]] = {"token": {0: "B"}, "logits": {0: "B"}}
    for n, dim in spec:
        if dim is not None:
            s_dyn[n] = s_dyn[f"{n}_out"] = {dim: "B"}
    for n, axis in ring.items():  # the slots a ring has: fewer than W while it fills
        s_dyn[n] = s_dyn[n] | {axis: "S"}
    tokens = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():  # a state to trace the step with, two rows
        state = list(prefill(tokens, *initial)[1:])
    for i, name in enumerate(names):
        if name in ring:  # T positions into slots 0.. of W
            pad = window - tokens.size(1)
            state[i] = F.pad(state[i], (0, pad) if ring[name] == 3 else (0, 0, 0, pad))
    state = [
        t if dim is None else t.repeat_interleave(2, dim).contiguous()
        for t, (_, dim) in zip(state, spec, strict=True)
    ]
    step_outputs = ["logits", *(f"{n}_out" for n in (ring or names))]
    written = []
    with tempfile.TemporaryDirectory(dir=path) as tmp:  # renamed into place when both are done
        tmp = Path(tmp)
        prefill_inputs = ["tokens", *(names if initial else [])]
        _export(prefill, (tokens, *initial), tmp / PREFILL, prefill_inputs, outputs, p_dyn)
        example = (torch.tensor([1, 2]), *state)
        _export(step, example, tmp / STEP, ["token", *names], step_outputs, s_dyn)
        for name in (PREFILL, STEP):
            _point_at_weights(tmp / name, header, data_start, meta | {"graph": name[:-5]})
        for name, int8_name in zip((PREFILL, STEP), graph_files("int8"), strict=True):
            _write_int8(tmp / name, tmp / int8_name)
        for name in (*graph_files("float32"), *graph_files("int8")):
            os.replace(tmp / name, path / name)
            written.append(path / name)
    return written
