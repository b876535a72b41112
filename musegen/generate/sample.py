"""The generation loop: prefill the primer once, branch it into rows, then step.

Every step composes masks and filters on the logits:

1. the tokenizer's grammar (always on, so every output decodes),
2. musical constraints: exactly ``bars`` new bars (no early end, no extra bar), the metre of
   the primer (no time-signature change), a key/scale and a pitch range on PITCH tokens,
3. the sampling filters of `musegen.generate.filters` (temperature, top-k, top-p, min-p).

Rows of a batch are independent samples (variations). A seeded NumPy generator makes the
result reproducible, the same on every runtime (`musegen.runtime`): the loop is NumPy only and
drives the model through its runtime's ``prefill`` and ``step``.
"""

from __future__ import annotations

from collections.abc import Iterator
from threading import Event
from typing import Any

import numpy as np

from musegen.errors import Cancelled
from musegen.generate.filters import sample_row
from musegen.options import Constraints, Sampling, check_seed, check_variations
from musegen.runtime import as_runtime
from musegen.tokens.grammar import GrammarState
from musegen.tokens.tokenizer import Tokenizer

UNIFORM_BLOCK = 64  # steps of uniform numbers drawn at once


def static_mask(tokenizer: Tokenizer, constraints: Constraints) -> np.ndarray:
    """Tokens the constraints forbid whatever the state: (V,) bool, True = may be drawn."""
    keep = np.ones(tokenizer.vocab_size, dtype=bool)
    ids = tokenizer.pitch_ids
    pitches = tokenizer.pitch_of_id[ids]
    ok = np.ones(len(pitches), dtype=bool)
    if constraints.key is not None:
        ok &= np.isin(pitches % 12, sorted(constraints.key.pitch_classes))
    if constraints.pitch_range is not None:
        ok &= (pitches >= constraints.pitch_range[0]) & (pitches <= constraints.pitch_range[1])
    keep[ids] = ok
    if not constraints.allow_metre_change:
        keep[list(tokenizer.timesig_ids)] = False
    return keep


class _Row:
    """The grammar state and bar count of one generated row."""

    def __init__(self, grammar, state, bars_to_open: int):
        self.grammar = grammar
        self.state = state
        self.bars_left = bars_to_open  # BAR tokens still to generate before the end
        self.tokens_in_bar = 0
        self.ids: list[int] = []
        self.done = False

    def allowed(self, tok: Tokenizer, keep: np.ndarray, max_tokens_per_bar: int) -> np.ndarray:
        """Boolean mask (V,) of the ids this row may draw next (grammar, then constraints)."""
        if self.done:  # finished rows keep stepping with the batch; what they draw is unused
            mask = np.zeros(len(keep), dtype=bool)
            mask[tok.pad_id] = True
            return mask
        grammar_ok = self.grammar.allowed(self.state)
        mask = grammar_ok & keep
        if self.state.timesig < 0:  # from scratch: the first bar must name its metre
            mask[list(tok.timesig_ids)] = grammar_ok[list(tok.timesig_ids)]
        boundary = grammar_ok[tok.bar_id]
        # No early end; the bar that would start past the last asked-for bar becomes EOS.
        mask[tok.eos_id] = boundary and self.bars_left == 0
        mask[tok.bar_id] = boundary and self.bars_left > 0
        if boundary and self.tokens_in_bar >= max_tokens_per_bar:
            mask[:] = False
            mask[tok.bar_id if self.bars_left > 0 else tok.eos_id] = True
        if not mask.any():  # the constraints left nothing: fall back to the grammar
            mask = grammar_ok.copy()
            mask[tok.eos_id] &= self.bars_left == 0
        return mask

    def candidates(
        self, tok: Tokenizer, keep: np.ndarray, max_tokens_per_bar: int, cache: dict
    ) -> np.ndarray:
        """The ids of ``allowed``, ascending, from ``cache`` (one dict per generation: the same
        ``keep`` and limit) when this row's situation has been seen before."""
        key = (
            self.done,
            self.grammar.situation(self.state),
            self.state.timesig < 0,
            self.bars_left == 0,
            self.tokens_in_bar >= max_tokens_per_bar,
        )
        ids = cache.get(key)
        if ids is None:
            ids = cache[key] = np.flatnonzero(self.allowed(tok, keep, max_tokens_per_bar))
            ids.setflags(write=False)  # shared by every row and step in this situation
        return ids

    def push(self, tok: Tokenizer, token: int) -> None:
        self.state = self.grammar.advance(self.state, token)
        self.ids.append(token)
        self.tokens_in_bar += 1
        if token == tok.bar_id:
            self.bars_left -= 1
            self.tokens_in_bar = 0
        elif token == tok.eos_id:
            self.done = True


def model_prompt(runtime: Any, context: list[int]) -> list[int]:
    """What the model reads of ``context``: all of it, or its last ``runtime.window`` ids."""
    return context if runtime.window is None else context[-runtime.window :]


def generate_iter(
    model: Any,
    tok: Tokenizer,
    context: list[int],
    *,
    n: int = 1,
    constraints: Constraints = Constraints(),
    sampling: Sampling = Sampling(),
    seed: int | None = None,
    start: GrammarState | None = None,
    stop: Event | None = None,
) -> Iterator[tuple[int, int]]:
    """Sample ``n`` continuations of ``context`` (ids starting with BOS), yielding
    ``(row, id)`` as each id is drawn; each row ends with EOS.

    ``model``: a `musegen.runtime.base.Runtime`, or a torch decoder (run eagerly).

    ``context`` must end where the continuation starts: right after the BAR token that opens
    its first bar (and its TIMESIG, if any) or, from scratch, right after BOS. ``start``: the
    grammar state there when ``context`` is not a plain sequence (an infilling arrangement,
    `musegen.tokens.infill`); by default the grammar walks ``context``. ``stop``: when this
    event is set (by another thread: a cancel button), the next step raises `Cancelled`.
    """
    check_variations(n)
    check_seed(seed)
    runtime = as_runtime(model)
    grammar = tok.grammar()
    start_state = grammar.walk(context) if start is None else start
    from_scratch = start_state.bars == 0
    bars_to_open = constraints.bars if from_scratch else constraints.bars - 1
    keep = static_mask(tok, constraints)
    rng = np.random.default_rng(seed)

    logits, state = runtime.prefill(model_prompt(runtime, context))
    logits = np.broadcast_to(logits[-1], (n, logits.shape[-1]))  # (n, V)
    state = runtime.repeat(state, n)

    rows = [_Row(grammar, start_state, bars_to_open) for _ in range(n)]
    max_steps = (constraints.bars + 1) * (constraints.max_tokens_per_bar + 2) + 8
    s = sampling
    drawn = np.zeros(n, dtype=np.int64)  # (n,) the ids drawn at this step, reused
    uniforms = np.empty((0, n), dtype=np.float32)
    candidate_ids: dict = {}  # a row's situation -> the ids it may draw (`_Row.candidates`)
    for step in range(max_steps):
        if stop is not None and stop.is_set():
            raise Cancelled("the generation was cancelled before it finished")
        if step % UNIFORM_BLOCK == 0:  # the same stream as one rng.random(n) per step
            uniforms = 1.0 - rng.random((UNIFORM_BLOCK, n), dtype=np.float32)
        u = uniforms[step % UNIFORM_BLOCK]  # (n,) in (0, 1], as `draw` uses
        for i, r in enumerate(rows):
            ids = r.candidates(tok, keep, constraints.max_tokens_per_bar, candidate_ids)
            drawn[i] = sample_row(
                logits[i], ids, float(u[i]), s.temperature, s.top_k, s.top_p, s.min_p
            )
        for i, r in enumerate(rows):
            if not r.done:
                r.push(tok, int(drawn[i]))
                yield i, int(drawn[i])
        if all(r.done for r in rows):
            return
        logits, state = runtime.step(drawn.copy(), state)
    raise RuntimeError("generation did not finish")  # pragma: no cover - bars cap tokens


def generate(
    model: Any,
    tok: Tokenizer,
    context: list[int],
    *,
    n: int = 1,
    constraints: Constraints = Constraints(),
    sampling: Sampling = Sampling(),
    seed: int | None = None,
    start: GrammarState | None = None,
    stop: Event | None = None,
) -> list[list[int]]:
    """The ids of ``n`` continuations (see `generate_iter`), each ending with EOS."""
    check_variations(n)
    rows: list[list[int]] = [[] for _ in range(n)]
    for i, token in generate_iter(
        model,
        tok,
        context,
        n=n,
        constraints=constraints,
        sampling=sampling,
        seed=seed,
        start=start,
        stop=stop,
    ):
        rows[i].append(token)
    return rows
