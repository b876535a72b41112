"""`musegen.runtime.int8.to_int8` against a NumPy reference of the same arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from musegen.runtime.int8 import LIMIT, to_int8  # noqa: E402
from musegen.runtime.onnx_runtime import session_options  # noqa: E402


def _graph(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """x (3, 8) through: MatMul with Transpose(W1), Gemm with W2 and a bias (transB), W1
    again, and a MatMul of x with itself (not a weight: left alone)."""
    w = {
        "W1": rng.normal(size=(6, 8)).astype(np.float32),
        "W2": rng.normal(size=(5, 8)).astype(np.float32) * 0.1,
        "b2": rng.normal(size=5).astype(np.float32),
    }
    w["W2"][2] = 0.0  # an all-zero row: its scale must not be 0
    nodes = [
        helper.make_node("Transpose", ["W1"], ["W1t"], perm=[1, 0]),
        helper.make_node("MatMul", ["x", "W1t"], ["y1"]),
        helper.make_node("Gemm", ["x", "W2", "b2"], ["y2"], transB=1),
        helper.make_node("MatMul", ["x", "W1t"], ["y3"]),
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0]),
        helper.make_node("MatMul", ["x", "xt"], ["y4"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 8])],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, None) for y in "y1 y2 y3 y4".split()],
        [numpy_helper.from_array(v, k) for k, v in w.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    return model, w


def _reference(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """x @ weight.T as DynamicQuantizeMatMul computes it: x in uint8 (one scale and zero
    point for the tensor, ONNX DynamicQuantizeLinear), weights in int8 (one scale per output
    column, symmetric, 7 bits), integer products, scaled back."""
    lo, hi = min(x.min(), 0.0), max(x.max(), 0.0)
    x_scale = np.float32((hi - lo) / 255)
    zero = np.clip(np.round(-lo / x_scale), 0, 255)
    xq = np.clip(np.round(x / x_scale) + zero, 0, 255) - zero  # (M, K) integers
    wt = weight.T  # (K, N)
    w_scale = np.maximum(np.abs(wt).max(0), 1e-30) / LIMIT
    wq = np.round(wt / w_scale)  # (K, N) integers in -LIMIT..LIMIT
    return (xq @ wq) * x_scale * w_scale


def test_int8_products_match_their_numpy_reference():
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    model, w = _graph(rng)
    quantized = to_int8(model)
    ops = [n.op_type for n in quantized.graph.node]
    assert ops.count("DynamicQuantizeMatMul") == 3 and ops.count("MatMul") == 1
    assert ops.count("Cast") == 2, "each weight is quantized once, however often it is used"
    session = ort.InferenceSession(
        quantized.SerializeToString(), session_options(1), providers=["CPUExecutionProvider"]
    )
    x = rng.normal(size=(3, 8)).astype(np.float32)
    y1, y2, y3, y4 = session.run(None, {"x": x})
    np.testing.assert_allclose(y1, _reference(x, w["W1"]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y2, _reference(x, w["W2"]) + w["b2"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y3, y1)
    np.testing.assert_allclose(y4, x @ x.T, rtol=1e-5)
    assert np.all(y2[:, 2] == w["b2"][2])  # the zero row: only the bias
    exact = x @ w["W1"].T  # and 8 bits are close to float32
    assert np.abs(y1 - exact).max() < 0.05 * np.abs(exact).max()


def test_the_int8_graph_holds_no_int8_weights():
    """The int8 weights are made when ONNX Runtime opens the graph, not stored in it."""
    model, _ = _graph(np.random.default_rng(1))
    quantized = to_int8(model)
    stored = {i.name for i in quantized.graph.initializer}
    assert stored == {"W1", "W2", "b2", "int8.axes0", "int8.limit", "int8.tiny"}
    assert any(o.domain == "com.microsoft" for o in quantized.opset_import)
    assert len(model.graph.node) == 6, "the float32 graph given is left as it was"


def _lstm_graph(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """An ONNX LSTM (T 6, batch 1, input 8, hidden 5) with an initial state, as the
    LSTM's prefill graph holds three of."""
    hidden = 5
    w = {
        "W": rng.normal(size=(1, 4 * hidden, 8)).astype(np.float32) * 0.5,
        "R": rng.normal(size=(1, 4 * hidden, hidden)).astype(np.float32) * 0.5,
        "B": rng.normal(size=(1, 8 * hidden)).astype(np.float32) * 0.1,
    }
    w["R"][0, 3] = 0.0  # an all-zero gate column: its scale must not be 0
    node = helper.make_node(
        "LSTM", ["x", "W", "R", "B", "", "h0", "c0"], ["y", "h", "c"], hidden_size=hidden
    )
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("x", f, [6, 1, 8]),
            helper.make_tensor_value_info("h0", f, [1, 1, hidden]),
            helper.make_tensor_value_info("c0", f, [1, 1, hidden]),
        ],
        [helper.make_tensor_value_info(y, f, None) for y in "yhc"],
        [numpy_helper.from_array(v, k) for k, v in w.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), w


def test_an_lstm_runs_on_int8_weights_of_the_same_layout():
    """The rewritten LSTM gives what the float32 operator gives with the int8 weights put
    back in float32 (up to the on-the-fly quantizing of its inputs), and is close to the
    float32 LSTM: a wrong gate order or scale axis would be far from both."""
    import onnxruntime as ort

    rng = np.random.default_rng(2)
    model, w = _lstm_graph(rng)
    quantized = to_int8(model)
    ops = [n.op_type for n in quantized.graph.node]
    assert "LSTM" not in ops and ops.count("DynamicQuantizeLSTM") == 1
    assert {i.name for i in quantized.graph.initializer} == {
        *w,
        *(f"int8.{n}" for n in ("axes0", "axes1", "limit", "tiny")),
    }

    def run(m: onnx.ModelProto) -> list[np.ndarray]:
        session = ort.InferenceSession(
            m.SerializeToString(), session_options(1), providers=["CPUExecutionProvider"]
        )
        return session.run(None, feed)

    feed = {
        "x": rng.normal(size=(6, 1, 8)).astype(np.float32),
        "h0": rng.normal(size=(1, 1, 5)).astype(np.float32) * 0.5,
        "c0": rng.normal(size=(1, 1, 5)).astype(np.float32) * 0.5,
    }
    rounded = dict(w)
    for name in ("W", "R"):  # per gate column (4H), over the input axis, 7 bits
        scale = np.maximum(np.abs(w[name]).max(-1, keepdims=True), 1e-30) / LIMIT
        rounded[name] = (np.round(w[name] / scale) * scale).astype(np.float32)
    back, _ = _lstm_graph(np.random.default_rng(2))
    for init in back.graph.initializer:
        init.CopyFrom(numpy_helper.from_array(rounded[init.name], init.name))
    got, same_weights, exact = run(quantized), run(back), run(model)
    for a, b, c in zip(got, same_weights, exact, strict=True):
        assert np.abs(a - b).max() < 0.02 * np.abs(b).max()
        assert np.abs(a - c).max() < 0.05 * np.abs(c).max()
