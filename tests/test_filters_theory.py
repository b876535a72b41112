"""Sampling filters and key handling."""

import numpy as np
import pytest
import torch

from musegen.errors import ConfigError
from musegen.generate import filters
from musegen.generate.filters import filtered, min_p, top_k, top_p
from musegen.generate.theory import Key, detect_key, parse_key
from musegen.options import check_sampling

LOGITS = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.25, 0.25, 0.25, 0.25]]))


def kept(x):
    return torch.isfinite(x).tolist()


def test_top_k_keeps_k_best():
    assert kept(top_k(LOGITS, 2))[0] == [True, True, False, False]
    assert kept(top_k(LOGITS, 2))[1] == [True] * 4  # ties at the k-th value are kept
    assert torch.equal(top_k(LOGITS, None), LOGITS)


def test_top_p_keeps_smallest_nucleus():
    assert kept(top_p(LOGITS, 0.75))[0] == [True, True, False, False]
    assert kept(top_p(LOGITS, 0.5))[0] == [True, False, False, False]
    assert kept(top_p(LOGITS, 0.01))[0] == [True, False, False, False]  # never empty
    assert kept(top_p(LOGITS, 0.6))[1] == [True, True, True, False]


def test_min_p_relative_to_best():
    assert kept(min_p(LOGITS, 0.5))[0] == [True, True, False, False]
    assert kept(min_p(LOGITS, 0.5))[1] == [True] * 4


def test_mask_and_temperature_compose():
    allowed = torch.tensor([[False, True, True, True], [True, False, False, False]])
    out = filtered(LOGITS, allowed, t=0.5, p=0.9)
    probs = torch.softmax(out, -1)
    assert probs[0, 0] == 0 and probs[1].tolist() == [1.0, 0.0, 0.0, 0.0]
    # temperature 0.5 squares the odds between token 1 and 2 of row 0 (0.3/0.15 -> 4)
    assert (probs[0, 1] / probs[0, 2]).item() == pytest.approx(4.0, rel=1e-5)


@pytest.mark.parametrize(
    "args",
    [
        (0.0, None, None, None),
        (1.0, -1, None, None),
        (1.0, None, 1.5, None),
        (1.0, None, None, 1.0),
        (float("nan"), None, None, None),
    ],
)
def test_bad_settings_name_the_range(args):
    with pytest.raises(ConfigError, match="must be"):
        check_sampling(*args)


@pytest.mark.parametrize(
    "text,key",
    [
        ("D major", Key(2, "major")),
        ("F# minor", Key(6, "minor")),
        ("Bb dorian", Key(10, "dorian")),
        ("Am", Key(9, "minor")),
        ("c", Key(0, "major")),
        ("Eb", Key(3, "major")),
    ],
)
def test_parse_key(text, key):
    assert parse_key(text) == key


@pytest.mark.parametrize("text", ["", "H major", "C flat-ish", "D weird"])
def test_bad_key_names(text):
    with pytest.raises(ConfigError):
        parse_key(text)


def test_detect_key_on_scales():
    g_major = [67, 69, 71, 72, 74, 76, 78, 79, 74, 71, 67]
    assert detect_key((p, 24) for p in g_major) == Key(7, "major")
    a_minor = [69, 71, 72, 74, 76, 77, 80, 81, 76, 72, 69, 69]
    assert detect_key((p, 24) for p in a_minor) == Key(9, "minor")
    assert detect_key([(62, 24), (74, 12)]) == Key(2, "major")
    assert Key(2, "major").pitch_classes == {2, 4, 6, 7, 9, 11, 1}


def test_draw_matches_the_distribution_and_never_draws_masked_tokens():
    """`draw` (inverse CDF) against its reference, torch.multinomial, on 40,000 rows."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 50, generator=gen) * 2
    logits[0, ::3] = float("-inf")  # masked, including the first and the last token
    logits[0, -1] = float("-inf")
    rows = logits.expand(40_000, -1)
    fast = filters.draw(rows, torch.Generator().manual_seed(1))
    slow = torch.multinomial(
        torch.softmax(rows, -1), 1, generator=torch.Generator().manual_seed(2)
    )[:, 0]
    probs = torch.softmax(logits[0], -1)
    for drawn in (fast, slow):
        freq = torch.bincount(drawn, minlength=50).double() / len(drawn)
        assert (freq[probs == 0] == 0).all()
        assert (freq - probs).abs().max() < 0.01  # ~4 standard errors at p = 0.5
    one_hot = torch.full((3, 7), float("-inf"))
    one_hot[:, 4] = 0.0
    assert filters.draw(one_hot).tolist() == [4, 4, 4]


@pytest.mark.parametrize(
    "t, k, p, mp",
    [
        (1.0, None, None, None),
        (1.0, None, 0.95, None),
        (0.7, 5, 0.9, None),
        (1.3, None, 0.8, 0.05),
        (1.0, 3, None, None),
        (0.5, None, None, 0.2),
        (2.0, 40, 0.5, 0.01),
    ],
)
def test_sample_row_agrees_with_filtered_then_draw(t, k, p, mp):
    """The NumPy fast path picks the reference's token for the same uniform number: on random
    logits and masks, every draw lands in the CDF interval of the reference's token."""
    gen = torch.Generator().manual_seed(3)
    for _ in range(60):
        logits = torch.randn(1, 120, generator=gen) * 3  # (1, V)
        allowed = torch.rand(1, 120, generator=gen) < 0.4
        allowed[0, int(torch.randint(0, 120, (1,), generator=gen))] = True  # never empty
        scores = filtered(logits, allowed, t, k, p, mp)
        probs = torch.softmax(scores.double(), -1)[0]  # the reference distribution (V,)
        cdf = probs.cumsum(0)
        for u in torch.rand(20, generator=gen).tolist():
            u = 1.0 - u
            ids = np.flatnonzero(allowed[0].numpy())
            token = filters.sample_row(logits[0].numpy(), ids, u, t, k, p, mp)
            assert probs[token] > 0  # only tokens the reference could draw
            lo = 0.0 if token == 0 else float(cdf[token - 1])
            assert lo - 1e-6 <= u <= float(cdf[token]) + 1e-6  # the token `draw` gives for u


def test_sample_row_refuses_nan_and_empty_rows():
    logits = np.zeros(5, dtype=np.float32)
    with pytest.raises(ValueError):
        filters.sample_row(logits, np.array([], dtype=np.int64), 0.5)
    logits[2] = np.nan
    with pytest.raises(ValueError):
        filters.sample_row(logits, np.arange(5), 0.5)
    assert filters.sample_row(logits, np.array([4]), 0.5) == 4  # NaN masked away
