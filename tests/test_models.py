"""The three decoders: one protocol, equivalent forward/step paths, states, registry, learning.

Every test loops over the registry with the ``tiny`` presets (dropout off) and is seeded.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from musegen.errors import ConfigError
from musegen.models import (
    ARCHITECTURES,
    build,
    build_from_config,
    config_for,
    count_parameters,
    presets,
)
from musegen.models.mamba import ssd_chunked, ssd_sequential

VOCAB = 40
TOL = {torch.float64: 1e-9, torch.float32: 1e-4}  # relative to the largest logit


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a busy machine threads contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(arch: str, dtype: torch.dtype = torch.float64, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return build(arch, VOCAB, "tiny", **overrides).to(dtype).eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    scale = expected.abs().max().item()
    err = (actual - expected).abs().max().item()
    assert err <= TOL[dtype] * scale, f"max error {err:.3g} for logits up to {scale:.3g}"


def step_all(model, toks: torch.Tensor, state) -> torch.Tensor:
    logits = []
    for t in toks.unbind(1):
        out, state = model.step(t, state)
        logits.append(out)
    return torch.stack(logits, dim=1)  # (B, T, V)


def test_tiny_mamba_spans_several_chunks():
    assert config_for("mamba", VOCAB, "tiny").chunk_size < 70 / 2


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_forward_equals_prefill_then_step(arch, dtype):
    model, toks = tiny(arch, dtype), tokens(3, 70)  # 70: not a multiple of the chunk
    with torch.inference_mode():
        full = model(toks)
        assert full.shape == (3, 70, VOCAB)
        prefill, state = model(toks[:, :37], return_state=True)
        assert_close(prefill, full[:, :37], dtype)
        assert_close(step_all(model, toks[:, 37:], state), full[:, 37:], dtype)
        assert_close(step_all(model, toks, model.init_state(3)), full, dtype)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_step_follows_weight_changes(arch):
    """`step` reads weights gathered once (`step_weights`): an optimizer-style in-place update
    shows through, and `.to(dtype)` and `load_state_dict(assign=True)` gather them again."""
    model, toks = tiny(arch, torch.float64), tokens(2, 12)
    other = tiny(arch, torch.float64, seed=5).state_dict()

    def check(dtype: torch.dtype) -> None:
        with torch.inference_mode():
            assert_close(step_all(model, toks, model.init_state(2)), model(toks), dtype)

    check(torch.float64)  # gathers the weights
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    check(torch.float64)
    model.to(torch.float32)
    check(torch.float32)
    model.load_state_dict(other, assign=True)  # new parameter objects, float64 again
    check(torch.float64)
    with torch.inference_mode():
        assert_close(model(toks), tiny(arch, torch.float64, seed=5)(toks), torch.float64)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_forward_in_chunks_equals_one_forward(arch):
    model, toks = tiny(arch), tokens(2, 100)
    with torch.inference_mode():
        full = model(toks)
        parts, state = [], None
        for lo, hi in [(0, 1), (1, 3), (3, 50), (50, 100)]:  # chunks shorter than the conv too
            out, state = model(toks[:, lo:hi], state=state, return_state=True)
            parts.append(out)
    assert_close(torch.cat(parts, dim=1), full, torch.float64)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_gradients_through_state_equal_one_forward(arch):
    """Truncated BPTT: a loss over two chunks joined by the state has the same gradients."""
    model, toks = tiny(arch), tokens(2, 60)
    model(toks).sum().backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    first, state = model(toks[:, :25], return_state=True)
    second = model(toks[:, 25:], state=state)
    (first.sum() + second.sum()).backward()
    for p, g in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_select_continues_like_its_row(arch):
    model, toks = tiny(arch), tokens(3, 50)
    with torch.inference_mode():
        _, state = model(toks[:, :30], return_state=True)
        row = state.select(1)
        copies = state.select(torch.tensor([2, 2, 0]))
        assert row.batch_size == 1 and copies.batch_size == 3
        batch_logits = step_all(model, toks[:, 30:], state)
        row_logits = step_all(model, toks[1:2, 30:], row)
        copies_logits = step_all(model, toks[[2, 2, 0], 30:], copies)
    assert_close(row_logits, batch_logits[1:2], torch.float64)
    assert_close(copies_logits, batch_logits[[2, 2, 0]], torch.float64)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_state_to_casts_floats(arch):
    model = tiny(arch)
    state = model.init_state(2).to(dtype=torch.float32)
    assert all(t.dtype == torch.float32 for _, t, _ in state.tensors())
    assert state.to("cpu").batch_size == 2


def test_ssd_chunked_matches_sequential_values_and_gradients():
    g = torch.Generator().manual_seed(0)
    b, t, h, p, groups, n = 2, 45, 4, 3, 2, 5  # 45 = 2 chunks of 16 and a partial one

    def leaf(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).requires_grad_()

    x, B, C = leaf(b, t, h, p), leaf(b, t, groups, n), leaf(b, t, groups, n)
    dt = F.softplus(leaf(b, t, h)).detach().requires_grad_()
    A = (-torch.rand(h, generator=g, dtype=torch.float64) * 2).requires_grad_()
    init = leaf(b, h, p, n)
    inputs = (x, dt, A, B, C)
    y_ref, s_ref = ssd_sequential(*inputs, initial_state=init)
    y, s = ssd_chunked(*inputs, chunk_size=16, initial_state=init)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s, s_ref, rtol=1e-10, atol=1e-12)
    wy, ws = torch.randn_like(y), torch.randn_like(s)
    grads_ref = torch.autograd.grad((y_ref * wy).sum() + (s_ref * ws).sum(), (*inputs, init))
    grads = torch.autograd.grad((y * wy).sum() + (s * ws).sum(), (*inputs, init))
    for got, want in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_mamba_ssm_fused_scan_matches_reference():
    """On CUDA with mamba_ssm installed, Mamba2.forward runs mamba_ssm's fused Triton scan:
    it must agree with musegen's own chunked scan in logits, in a carried state and in
    gradients. The kernel multiplies in TF32, so the bounds are TF32's, not float32's (on an
    H200 the shipped weights agreed to 2e-5 in loss and 0.9% in the worst gradient)."""
    pytest.importorskip("mamba_ssm.ops.triton.ssd_combined", reason="needs mamba_ssm")
    torch.manual_seed(0)
    model = build("mamba", VOCAB, "small", dropout=0.0).cuda()  # the shipped shapes
    toks = tokens(4, 200).cuda()  # three chunks of 64 and a partial one

    def run(fused: bool):
        model.use_fused_scan(fused)
        model.zero_grad(set_to_none=True)
        logits = model(toks)  # (4, 200, V)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), toks[:, 1:].flatten())
        loss.backward()
        with torch.no_grad():
            _, state = model(toks[:, :130], return_state=True)
            rest = model(toks[:, 130:], state)  # (4, 70, V), from the carried state
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        return logits.detach(), rest, loss.item(), grads

    ref_logits, ref_rest, ref_loss, ref_grads = run(fused=False)
    logits, rest, loss, grads = run(fused=True)
    scale = ref_logits.abs().max().item()
    assert (logits - ref_logits).abs().max().item() <= 1e-2 * scale
    assert (rest - ref_rest).abs().max().item() <= 1e-2 * scale
    assert (rest - logits[:, 130:]).abs().max().item() <= 1e-2 * scale
    assert abs(loss - ref_loss) <= 1e-3 * ref_loss
    for name, want in ref_grads.items():
        err = (grads[name] - want).norm() / want.norm().clamp_min(1e-12)
        assert err <= 3e-2, f"{name}: gradients differ by {err:.2%}"


def test_transformer_slides_past_its_window():
    """Stepping past max_seq_len works, equals the sliding-window forward, and for a single
    layer equals a fresh forward over the last window (RoPE only sees offsets)."""
    window, length = 16, 50
    toks = tokens(2, length)
    for n_layers in (1, 2):
        model = tiny("transformer", n_layers=n_layers, max_seq_len=window)
        with torch.inference_mode():
            stepped = step_all(model, toks, model.init_state(2))
            assert_close(stepped, model(toks), torch.float64)  # forward longer than the window
            first, state = model(toks[:, :10], return_state=True)  # prefill crossing the edge
            rest = model(toks[:, 10:], state=state)
            assert_close(torch.cat([first, rest], dim=1), stepped, torch.float64)
            if n_layers == 1:
                fresh = [
                    model(toks[:, t + 1 - window : t + 1])[:, -1] for t in range(window, length)
                ]
                assert_close(stepped[:, window:], torch.stack(fresh, dim=1), torch.float64)


def test_transformer_steps_across_rotary_tables():
    """The step's RoPE angles come from tables of 1024 positions: crossing table boundaries
    (and evicting old tables) gives what the forward computes."""
    from musegen.models.transformer import Rotary

    model = tiny("transformer", max_seq_len=16)
    toks = tokens(1, Rotary.TABLE * 2 + 40)
    with torch.inference_mode():
        state = model.init_state(1)
        _, state = model(toks[:, : Rotary.TABLE - 20], state=state, return_state=True)
        tail = toks[:, Rotary.TABLE - 20 :]
        model.rotary.TABLES_KEPT = 1  # evict at every table boundary
        stepped = step_all(model, tail, state)
        assert len(model.rotary._tables) == 1
        full = model(toks)[:, Rotary.TABLE - 20 :]
    assert_close(stepped, full, torch.float64)


def repeating_batch(batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """Crops of one fixed cycle of 12 tokens over 6 symbols (symbols repeat inside the cycle,
    so predicting the next one needs a few tokens of context)."""
    cycle = torch.tensor([0, 1, 2, 3, 1, 4, 2, 5, 0, 3, 4, 5])
    starts = torch.randint(0, len(cycle), (batch, 1), generator=generator)
    return cycle[(starts + torch.arange(length)) % len(cycle)]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_learns_a_repeating_pattern(arch):
    """From chance (ln 6 = 1.79 nats) to < 0.05 nats in 300 steps; the LSTM is the slowest
    (about 0.01 at step 200 over seeds), the others get there within 50 steps."""
    torch.manual_seed(0)
    model = build(arch, 8, "tiny")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        toks = repeating_batch(16, 33, gen)
        logits = model(toks[:, :-1])
        loss = F.cross_entropy(logits[:, 3:].reshape(-1, 8), toks[:, 4:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05, f"{arch}: loss {loss.item():.3f} after 300 steps"


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_dropout_only_in_training(arch):
    model = build(arch, VOCAB, "tiny", dropout=0.5)
    toks = tokens(2, 20)
    model.train()
    assert not torch.equal(model(toks), model(toks))
    model.eval()
    assert torch.equal(model(toks), model(toks))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_bfloat16_autocast(arch):
    model = build(arch, VOCAB, "tiny")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(tokens(2, 40))
    logits.float().sum().backward()
    assert torch.isfinite(logits.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("onednn", [True, False], ids=["cpu-decides", "no-onednn-bf16"])
def test_lstm_bfloat16_runs_on_any_cpu(onednn, monkeypatch):
    """AVX2-only CPUs have no oneDNN bfloat16 LSTM: the plain kernel must take over (forced
    here with ``onednn=False``, so every CPU runs that path), with logits close to float32's."""
    from musegen.models import lstm

    if not onednn:
        monkeypatch.setattr(lstm, "onednn_runs", lambda dtype: dtype == torch.float32)
    torch.manual_seed(0)
    model = build("lstm", VOCAB, "tiny")
    toks = tokens(2, 40)
    with torch.no_grad():
        reference = model(toks)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(toks)
    logits.float().sum().backward()
    assert logits.dtype == torch.bfloat16
    assert (logits.float() - reference).abs().max() < 0.05 * reference.abs().max()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_onednn_runs_float32_everywhere():
    from musegen.models.lstm import onednn_runs

    assert onednn_runs(torch.float32) and onednn_runs(torch.float64)
    assert onednn_runs(torch.bfloat16) == torch.ops.mkldnn._is_mkldnn_bf16_supported()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_config_round_trips_through_json(arch):
    model = build(arch, VOCAB, "tiny", dropout=0.2)
    config = json.loads(json.dumps(dataclasses.asdict(model.config)))
    rebuilt = build_from_config(arch, config)
    assert rebuilt.config == model.config
    assert type(rebuilt) is type(model)
    rebuilt.load_state_dict(model.state_dict())  # same parameter names and shapes


def test_registry_errors_list_the_allowed_values():
    with pytest.raises(ConfigError, match="lstm, transformer, mamba"):
        build("gru", VOCAB)
    with pytest.raises(ConfigError, match="tiny"):
        build("mamba", VOCAB, preset="huge")
    with pytest.raises(ConfigError, match="d_model"):
        build("transformer", VOCAB, "tiny", width=3)
    with pytest.raises(ConfigError, match="n_layers"):
        build_from_config("lstm", {"vocab_size": VOCAB, "layers": 2})
    with pytest.raises(ConfigError):
        build("transformer", VOCAB, "tiny", n_heads=3)


def test_every_arch_has_tiny_and_small():
    for arch in ARCHITECTURES:
        assert {"tiny", "small"} <= set(presets(arch))


def test_small_presets_have_about_the_same_size():
    counts = {arch: count_parameters(build(arch, 450)) for arch in ARCHITECTURES}
    assert all(2.5e6 < c < 3.5e6 for c in counts.values()), counts
    assert max(counts.values()) <= 1.1 * min(counts.values()), counts


def test_mamba_keeps_mamba_ssm_parameter_layout():
    model = build("mamba", VOCAB, "tiny")
    c = model.config
    shapes = {k: tuple(v.shape) for k, v in model.layers[0].mixer.state_dict().items()}
    assert shapes == {
        "in_proj.weight": (2 * c.d_inner + 2 * c.ngroups * c.d_state + c.nheads, c.d_model),
        "conv1d.weight": (c.conv_dim, 1, c.d_conv),
        "conv1d.bias": (c.conv_dim,),
        "dt_bias": (c.nheads,),
        "A_log": (c.nheads,),
        "D": (c.nheads,),
        "norm.weight": (c.d_inner,),
        "out_proj.weight": (c.d_model, c.d_inner),
    }
