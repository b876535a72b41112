"""int8 graphs: the float32 prefill and step with their weight products done in 8 bits.

A batch-1 step reads every weight once per token, so on a CPU whose last-level cache cannot
hold the float32 weights (12-13 MB for the shipped models, 8 MB of L3 on the 2-core EPYC) the
products wait on memory. Weights in int8 are a quarter of that, and ONNX Runtime's
``DynamicQuantizeMatMul`` (com.microsoft) multiplies them with integer kernels, quantizing
each input on the fly with one scale for the whole tensor (so a row's result moves a little
with the other rows of its batch).

The int8 graphs hold no weights of their own either: ``to_int8`` rewrites each product of an
input with a weight matrix W (a ``MatMul`` against ``Transpose(W)``, or a ``Gemm`` with
``transB``) into

    scale = ReduceMax(|W^T|, over K) / 63                (N,) one scale per output column
    W8    = Cast(Round(W^T / scale), int8)               (K, N), in -63..63 (see LIMIT)
    y     = DynamicQuantizeMatMul(x, W8, scale[, bias])

Every node of the first two lines reads only initializers, so ONNX Runtime's constant folding
computes them when it opens the graph: the int8 weights are made from ``model.safetensors``
at load (up to 50 ms more per shipped model on the 2-core EPYC), and the float32 copies that
nothing else reads are dropped.

An ``LSTM`` node (the LSTM's prefill: ONNX's own operator, a float32 recurrence of one-row
products, one after another) becomes ``DynamicQuantizeLSTM``, its input and recurrence
weights made int8 the same way at load, per gate column: on the 2-core EPYC the 417-token
prefill of the shipped LSTM takes 52 ms instead of 72 with two threads, 79 instead of 120
with one.

The float32 graphs stay the reference (`musegen.runtime.onnx_runtime`); the difference in
bits per note is measured by ``python -m musegen.bench_precision``.
"""

from __future__ import annotations

from typing import Any

MS_DOMAIN = "com.microsoft"
# Weights go to -63..63, 7 bits. The AVX2 kernels (no VNNI) add pairs of uint8 x int8
# products in int16 with saturation: 2 x 255 x 127 overflows it, 2 x 255 x 63 does not, so
# the result is the exact integer product on every x86 CPU (ONNX Runtime's "reduce_range").
LIMIT = 63


def _weight_source(node: Any, initializers: set[str], producers: dict[str, Any]) -> str | None:
    """The (N, K) weight initializer whose transpose ``node`` multiplies by, or None."""
    if node.op_type == "Gemm":
        attrs = {a.name: a for a in node.attribute}
        plain = all(attrs[k].f == 1.0 for k in ("alpha", "beta") if k in attrs)
        trans_a = "transA" in attrs and attrs["transA"].i
        if plain and not trans_a and "transB" in attrs and attrs["transB"].i:
            return node.input[1] if node.input[1] in initializers else None
        return None
    if node.op_type != "MatMul":
        return None
    source = producers.get(node.input[1])
    if source is None or source.op_type != "Transpose" or source.input[0] not in initializers:
        return None
    perm = [a for a in source.attribute if a.name == "perm"]
    return source.input[0] if not perm or list(perm[0].ints) == [1, 0] else None


def _quantized(
    p: str, weight: str, perm: list[int], axis: str, nodes: list, helper: Any, TensorProto: Any
) -> tuple[str, str]:
    """Append to ``nodes`` the int8 copy of ``Transpose(weight, perm)`` and its scales, one
    per column: the maximum over axis ``axis`` (an initializer's name), over LIMIT."""
    nodes += [
        helper.make_node("Transpose", [weight], [f"{p}.t"], perm=perm),
        helper.make_node("Abs", [f"{p}.t"], [f"{p}.abs"]),
        helper.make_node("ReduceMax", [f"{p}.abs", axis], [f"{p}.max"], keepdims=0),
        helper.make_node("Max", [f"{p}.max", "int8.tiny"], [f"{p}.nonzero"]),
        helper.make_node("Div", [f"{p}.nonzero", "int8.limit"], [f"{p}.scale"]),
        helper.make_node("Div", [f"{p}.t", f"{p}.scale"], [f"{p}.steps"]),
        helper.make_node("Round", [f"{p}.steps"], [f"{p}.round"]),
        helper.make_node("Cast", [f"{p}.round"], [f"{p}.q"], to=TensorProto.INT8),
    ]
    return f"{p}.q", f"{p}.scale"


def _lstm(node: Any, nodes: list, helper: Any, TensorProto: Any) -> Any | None:
    """``node`` (an ONNX LSTM) as DynamicQuantizeLSTM, its weight-making nodes appended to
    ``nodes``; None where that operator cannot take it (batch-first layout)."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.pop("layout", 0):
        return None
    x, w, r, b, lengths, h0, c0, peep = [*node.input, *[""] * 8][:8]
    made = []
    for part, source in (("W", w), ("R", r)):  # (1, 4H, K) -> int8 (1, K, 4H), scales (1, 4H)
        p = f"int8.{node.name or node.output[0]}.{part}"
        q, scale = _quantized(p, source, [0, 2, 1], "int8.axes1", nodes, helper, TensorProto)
        zero = f"{p}.zero"  # symmetric: int8 zeros shaped as the scales
        nodes += [
            helper.make_node("Shape", [scale], [f"{p}.shape"]),
            helper.make_node(
                "ConstantOfShape",
                [f"{p}.shape"],
                [zero],
                value=helper.make_tensor("", TensorProto.INT8, [1], [0]),
            ),
        ]
        made += [q, scale, zero]
    (wq, w_scale, w_zero), (rq, r_scale, r_zero) = made[:3], made[3:]
    inputs = [x, wq, rq, b, lengths, h0, c0, peep, w_scale, w_zero, r_scale, r_zero]
    return helper.make_node(
        "DynamicQuantizeLSTM",
        inputs,
        list(node.output),
        name=node.name,
        domain=MS_DOMAIN,
        **attrs,
    )


def to_int8(model: Any) -> Any:
    """A copy of the ONNX ``model`` whose products with 2-D float32 weight initializers run
    as ``DynamicQuantizeMatMul``, and whose LSTM nodes as ``DynamicQuantizeLSTM``, on int8
    weights made at load (see the module's text)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    weights = {t.name for t in graph.initializer if len(t.dims) == 2}
    producers = {out: node for node in graph.node for out in node.output}
    graph.initializer.extend(
        [
            helper.make_tensor("int8.axes0", TensorProto.INT64, [1], [0]),
            helper.make_tensor("int8.limit", TensorProto.FLOAT, [], [float(LIMIT)]),
            helper.make_tensor("int8.tiny", TensorProto.FLOAT, [], [1e-30]),
        ]
    )
    if any(node.op_type == "LSTM" for node in graph.node):
        graph.initializer.append(helper.make_tensor("int8.axes1", TensorProto.INT64, [1], [1]))
    made: dict[str, tuple[str, str]] = {}  # weight -> (int8 weight, scale), made once each
    nodes: list = []
    for node in graph.node:
        if node.op_type == "LSTM":
            nodes.append(_lstm(node, nodes, helper, TensorProto) or node)
            continue
        weight = _weight_source(node, weights, producers)
        if weight is None:
            nodes.append(node)
            continue
        if weight not in made:
            made[weight] = _quantized(
                f"int8.{weight}", weight, [1, 0], "int8.axes0", nodes, helper, TensorProto
            )
        q, scale = made[weight]
        bias = [node.input[2]] if node.op_type == "Gemm" and len(node.input) > 2 else []
        inputs = [node.input[0], q, scale, *([""] + bias if bias else [])]
        nodes.append(
            helper.make_node(
                "DynamicQuantizeMatMul",
                inputs,
                list(node.output),
                name=node.name,
                domain=MS_DOMAIN,
            )
        )
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return model
