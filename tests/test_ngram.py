"""The Kneser-Ney baseline: a proper distribution, hand-computed values, order selection."""

import math

import numpy as np
import pytest

from musegen.errors import ConfigError
from musegen.ngram import KneserNey, fit_best_order

V = 8  # tiny vocabulary: 0 = PAD, 1 = BOS, 2 = EOS, 3.. symbols


def tunes_from(rows):
    return [np.array(r, dtype=np.int64) for r in rows]


TRAIN = tunes_from(
    [[1, 3, 4, 5, 3, 4, 5, 2], [1, 3, 4, 6, 3, 4, 5, 2], [1, 5, 4, 3, 2], [1, 3, 4, 5, 2]]
)


def prob(model, context, w):
    """p(w | context) read back through token_nll on a one-token continuation."""
    return math.exp(-model.token_nll(tunes_from([context + [w]]))[0][-1])


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_distribution_sums_to_one(order):
    model = KneserNey(order, V).fit(TRAIN)
    for context in ([1], [1, 3], [1, 3, 4], [1, 7, 7], [1, 3, 4, 5, 3]):
        total = sum(prob(model, context, w) for w in range(V))
        assert total == pytest.approx(1.0, abs=1e-9)


def test_unigram_matches_hand_computation():
    # order 1: p(w) = max(c(w) - D, 0) / N + D * types / N / V, with counts over the padded
    # stream (order 1 adds no padding) and D = n1 / (n1 + 2 n2).
    model = KneserNey(1, V).fit(TRAIN)
    stream = np.concatenate(TRAIN)
    counts = np.bincount(stream, minlength=V)
    n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
    d = n1 / (n1 + 2 * n2)
    n, types = counts.sum(), int((counts > 0).sum())
    for w in range(V):
        expected = max(counts[w] - d, 0) / n + d * types / n / V
        assert prob(model, [1], w) == pytest.approx(expected, rel=1e-12)


def discount(counts):
    n1 = sum(1 for c in counts if c == 1)
    n2 = sum(1 for c in counts if c == 2)
    return n1 / (n1 + 2 * n2)


def test_bigram_matches_hand_computation():
    from collections import Counter

    model = KneserNey(2, V).fit(TRAIN)
    stream = [t for tune in TRAIN for t in [0, *tune]]  # one PAD before each tune
    bigrams = Counter(zip(stream, stream[1:], strict=False))
    # lower order: continuation counts N1+(. w), the number of distinct left neighbours
    cont = Counter(w for (_, w) in bigrams)
    d1, d2 = discount(cont.values()), discount(bigrams.values())
    total1 = sum(cont.values())

    def p1(w):
        return max(cont[w] - d1, 0) / total1 + d1 * len(cont) / total1 / V

    after3 = {w: c for (h, w), c in bigrams.items() if h == 3}
    c3 = sum(after3.values())
    for w in range(V):
        expected = max(after3.get(w, 0) - d2, 0) / c3 + d2 * len(after3) / c3 * p1(w)
        assert prob(model, [1, 3], w) == pytest.approx(expected, rel=1e-12)
    assert prob(model, [1, 3], 4) > 0.7  # 3 is followed by 4 five times out of six
    # an unseen context (7 never occurs) backs off entirely to the lower order
    assert prob(model, [1, 7], 4) == pytest.approx(p1(4), rel=1e-12)


def test_each_tune_scored_on_its_own():
    model = KneserNey(3, V).fit(TRAIN)
    a, b = tunes_from([[1, 3, 4, 5, 2]])[0], tunes_from([[1, 5, 4, 3, 2]])[0]
    together = model.token_nll([a, b])
    assert np.allclose(together[0], model.token_nll([a])[0])
    assert np.allclose(together[1], model.token_nll([b])[0])
    assert [len(x) for x in together] == [4, 4]


def test_order_selection_prefers_context_on_repetitive_data():
    rng = np.random.default_rng(0)
    pattern = [3, 4, 5, 6, 7, 6, 5, 4]
    rows = [[1] + pattern * int(rng.integers(2, 5)) + [2] for _ in range(40)]
    model, scores = fit_best_order(
        tunes_from(rows[:30]), tunes_from(rows[30:]), V, orders=(1, 2, 4)
    )
    assert model.order > 1
    assert scores[model.order] == min(scores.values())


def test_bad_order_is_a_config_error():
    with pytest.raises(ConfigError):
        KneserNey(0, V)
    with pytest.raises(ConfigError):
        KneserNey(40, 512)
