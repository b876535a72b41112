"""Bar-level fill-in-the-middle: how a gap of bars is arranged so a left-to-right decoder can
write it knowing the music on both sides.

A plain sequence ``BOS bar_1 ... bar_n EOS`` is cut at its BAR tokens. For a gap of bars
``[start, end)`` (0-based) the model reads a context and then writes the gap::

    psm:  BOS prefix FILL*g suffix SEP | gap EOS
    spm:  BOS FILL*g suffix SEP prefix | gap EOS

``g`` FILL tokens, one per bar of the gap, say where it is and how long. Every segment opens
with its metre (the first bar of the prefix, of the suffix and of a gap at bar 1 name their
TIMESIG, and TEMPO when the tokenizer has it), so each side reads on its own. In both forms the
gap's bars follow the bars before the gap directly, as in a plain sequence, so the grammar
walks ``BOS prefix gap`` and sampling keeps every bar of the gap well formed.
``psm`` lays the music out in order; ``spm`` puts the suffix first and leaves the prefix next
to the gap, which a recurrent state may carry better (measured in `musegen.bench_infill`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from musegen.errors import ConfigError
from musegen.options import INFILL_FORMS, MAX_GAP_BARS
from musegen.tokens.grammar import TEMPO, TIMESIG
from musegen.tokens.tokenizer import Tokenizer

FORMS = INFILL_FORMS
__all__ = ["FORMS", "MAX_GAP_BARS", "Arranged", "Bars", "arrange", "split_bars"]


@dataclass(frozen=True)
class Bars:
    """A plain token sequence cut into bars, with the metre (and tempo) in force in each."""

    bars: list[list[int]]  # each starts with BAR; no BOS, no EOS
    header: list[int]  # tokens of BAR and its TIMESIG/TEMPO at the start of each bar
    timesig: list[int]  # TIMESIG id in force in each bar
    tempo: list[int]  # TEMPO id in force in each bar (-1 without tempo tokens)

    def __len__(self) -> int:
        return len(self.bars)

    def opening(self, i: int) -> list[int]:
        """BAR and the explicit metre (and tempo) of bar ``i``."""
        head = [self.bars[i][0], self.timesig[i]]
        return head + [self.tempo[i]] if self.tempo[i] >= 0 else head

    def body(self, i: int) -> list[int]:
        """The tokens of bar ``i`` after its BAR, TIMESIG and TEMPO (its notes)."""
        return self.bars[i][self.header[i] :]

    def segment(self, start: int, end: int) -> list[int]:
        """Bars ``[start, end)`` as tokens, the first stating its metre (and tempo)."""
        if start >= end:
            return []
        return self.opening(start) + self.body(start) + self.after(start + 1, end)

    def slice(self, start: int, end: int) -> Bars:
        """Bars ``[start, end)`` on their own (their metres stay known)."""
        return Bars(
            self.bars[start:end],
            self.header[start:end],
            self.timesig[start:end],
            self.tempo[start:end],
        )

    def gap_opening(self, i: int) -> list[int]:
        """How bar ``i`` opens when the bars before it are there: as in the plain sequence
        (BAR, and TIMESIG/TEMPO where they change); bar 0 names its metre."""
        return self.opening(0) if i == 0 else self.bars[i][: self.header[i]]

    def after(self, start: int, end: int) -> list[int]:
        """Bars ``[start, end)`` as they are in the plain sequence."""
        return [t for b in self.bars[start:end] for t in b]


def split_bars(tok: Tokenizer, ids: Sequence[int]) -> Bars:
    """Cut a plain sequence (``BOS BAR TIMESIG ... [EOS]``) at its BAR tokens."""
    ids = np.asarray(ids, dtype=np.int64).tolist()  # plain ints, fast from a memmap too
    if ids and ids[0] == tok.bos_id:
        ids = ids[1:]
    while ids and ids[-1] in (tok.eos_id, tok.pad_id):
        ids = ids[:-1]
    family = tok.token_family
    bars: list[list[int]] = []
    header: list[int] = []
    timesig: list[int] = []
    tempo: list[int] = []
    for t in ids:
        if t == tok.bar_id:
            bars.append([t])
            header.append(1)
            timesig.append(timesig[-1] if timesig else -1)
            tempo.append(tempo[-1] if tempo else -1)
            continue
        if not bars:
            raise ConfigError("a plain token sequence starts with BOS BAR")
        bars[-1].append(t)
        if family[t] in (TIMESIG, TEMPO) and header[-1] == len(bars[-1]) - 1:
            header[-1] += 1
            if family[t] == TIMESIG:
                timesig[-1] = t
            else:
                tempo[-1] = t
    return Bars(bars, header, timesig, tempo)


@dataclass(frozen=True)
class Arranged:
    """A gap arranged for a model: read ``context``, then write ``gap`` (+ EOS).

    ``plain_before`` is ``BOS prefix`` plus the gap's opening: the plain sequence the grammar
    walks to know where the gap's first bar starts.
    """

    context: list[int]  # ends with SEP, or with the prefix in spm; then the gap's opening
    opening: list[int]  # BAR (and TIMESIG/TEMPO for a gap at bar 1 or a metre change)
    gap: list[int]  # the gap's bars after the opening (empty when generating)
    plain_before: list[int]

    def training_sequence(self, eos_id: int) -> list[int]:
        """context + opening + gap + EOS: one training example."""
        return self.context + self.opening + self.gap + [eos_id]


def arrange(tok: Tokenizer, bars: Bars, start: int, end: int, form: str) -> Arranged:
    """Arrange bars ``[start, end)`` of ``bars`` as a gap in ``form`` ("psm" or "spm")."""
    if not tok.infill:
        raise ConfigError("this tokenizer has no FILL/SEP tokens (Tokenizer(infill=True))")
    if form not in FORMS:
        raise ConfigError(f"infill form must be one of {', '.join(FORMS)} (got {form!r})")
    if not 0 <= start < end <= len(bars):
        raise ConfigError(f"gap [{start}, {end}) is not inside {len(bars)} bars")
    prefix = bars.segment(0, start)
    suffix = bars.segment(end, len(bars))
    fills = [tok.fill_id] * (end - start)
    opening = bars.gap_opening(start)
    gap = bars.body(start) + bars.after(start + 1, end)
    if form == "psm":
        context = [tok.bos_id] + prefix + fills + suffix + [tok.sep_id]
    else:
        context = [tok.bos_id] + fills + suffix + [tok.sep_id] + prefix
    return Arranged(context, opening, gap, [tok.bos_id] + prefix + opening)
