"""Infilling at clip level: which bars form the gap, what the model reads around it, and how
the new bars go back between the user's own notes.

`plan_gap` turns "bars 5-8 of this clip" into an arrangement (`musegen.tokens.infill`) that
fits the model's training window: the bars nearest the gap on both sides are kept first.
`join` lays two clips out with empty bars between them, for bridging.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from musegen.errors import ConfigError
from musegen.midi import Note, Score, Track, _rescale, list_tracks, read_score
from musegen.options import MAX_GAP_BARS
from musegen.tokens.grammar import GrammarState
from musegen.tokens.infill import Arranged, Bars, arrange, split_bars
from musegen.tokens.tokenizer import Tokenizer

MIN_CONTEXT_SHARE = 4  # the context keeps at least 1/4 of the window, however long the gap


@dataclass(frozen=True)
class Gap:
    """A gap of bars in a clip, on the model's grid, and what the model reads to fill it."""

    first_bar: int  # 1-based, as a DAW numbers bars
    last_bar: int  # included
    start: int  # grid tick where the gap starts
    end: int  # grid tick where it ends (the next bar line)
    arranged: Arranged  # context, opening and the plain sequence before the gap
    offset: int  # grid tick of the first bar the model reads (bars before it are left out)
    state: GrammarState  # where the gap starts, as the grammar sees the model's context
    after: list[int] = field(default_factory=list)  # the bar after the gap, plain (none: [])

    @property
    def bars(self) -> int:
        return self.last_bar - self.first_bar + 1

    @property
    def context(self) -> list[int]:
        """What the model reads before it writes the gap's first bar."""
        return self.arranged.context + self.arranged.opening


def clip_bars(tok: Tokenizer, grid: Score) -> tuple[Bars, np.ndarray]:
    """The bars of a clip on the model's grid, up to the bar where its last note ends, and
    the tick where each starts (int64, one more entry: where the last bar ends)."""
    bars = split_bars(tok, tok.encode_score(grid, add_eos=False))
    lengths = [_bar_ticks(tok, ts) for ts in bars.timesig]
    ends = int(np.sum(lengths))
    ringing = max(0, -(-(grid.end - ends) // lengths[-1]))  # bars of notes that ring on
    if ringing:
        bars = Bars(
            bars.bars + [[tok.bar_id]] * ringing,
            bars.header + [1] * ringing,
            bars.timesig + [bars.timesig[-1]] * ringing,
            bars.tempo + [bars.tempo[-1]] * ringing,
        )
        lengths += [lengths[-1]] * ringing
    return bars, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _bar_ticks(tok: Tokenizer, timesig_id: int) -> int:
    return tok.bar_ticks(*tok.time_signatures[int(tok.token_value[timesig_id])])


def check_range(first_bar: int, last_bar: int, bars: int) -> None:
    """A clear error for a bar range that is not a gap infilling can write."""
    for name, v in (("start bar", first_bar), ("end bar", last_bar)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ConfigError(f"the {name} must be a whole number (got {v!r})")
    if first_bar > last_bar:
        raise ConfigError(
            f"bars {first_bar}-{last_bar} is an empty range: give the first bar, then the last "
            f"(both included), e.g. 5-8"
        )
    if first_bar < 1 or last_bar > bars:
        raise ConfigError(
            f"bars {first_bar}-{last_bar} are outside the clip, which has {bars} bar"
            f"{'s' if bars != 1 else ''} (numbered from 1); to add bars after it, continue it"
        )
    if last_bar - first_bar + 1 > MAX_GAP_BARS:
        raise ConfigError(
            f"bars {first_bar}-{last_bar} are {last_bar - first_bar + 1} bars; infilling writes "
            f"at most {MAX_GAP_BARS} at a time: regenerate them in parts"
        )


def plan_gap(
    tok: Tokenizer, grid: Score, first_bar: int, last_bar: int, form: str, window: int
) -> Gap:
    """Plan the infilling of bars ``first_bar``-``last_bar`` (1-based, included) of ``grid``.

    ``window``: the longest sequence the model was trained on; the context is cut to leave
    room for the gap (estimated from the clip's tokens per bar).
    """
    bars, starts = clip_bars(tok, grid)
    check_range(first_bar, last_bar, len(bars))
    start, end = first_bar - 1, last_bar  # 0-based, end excluded
    if len(set(bars.timesig[start:end])) > 1:
        raise ConfigError(
            f"the metre changes inside bars {first_bar}-{last_bar}; regenerate the bars on each "
            "side of the change separately"
        )
    lo, hi = _fit(tok, bars, start, end, window)
    arranged = arrange(tok, bars.slice(lo, hi), start - lo, end - lo, form)
    state = tok.grammar().walk(arranged.plain_before)
    return Gap(
        first_bar,
        last_bar,
        int(starts[start]),
        int(starts[end]),
        arranged,
        int(starts[lo]),
        state,
        bars.after(end, end + 1),
    )


def _fit(tok: Tokenizer, bars: Bars, start: int, end: int, window: int) -> tuple[int, int]:
    """The bars ``[lo, hi)`` around the gap ``[start, end)`` that the model reads: nearest
    first, one bar on each side in turn, while the context leaves room for the gap."""
    sizes = [len(b) for b in bars.bars]
    filled = [s for s in sizes if s > 1] or [1]
    gap_estimate = int(1.25 * (end - start) * float(np.mean(filled))) + 8
    budget = max(window // MIN_CONTEXT_SHARE, window - gap_estimate)
    used = 2 + (end - start) + 4  # BOS, SEP, the FILLs, the metres of prefix and suffix
    lo, hi = start, end
    grew = True
    while grew:
        grew = False
        if lo > 0 and used + sizes[lo - 1] + 2 <= budget:
            lo -= 1
            used += sizes[lo]
            grew = True
        if hi < len(bars) and used + sizes[hi] + 2 <= budget:
            used += sizes[hi]
            hi += 1
            grew = True
    return lo, hi


def new_notes(tok: Tokenizer, gap: Gap, ids: list[int]) -> list[Note]:
    """The notes of a generated gap (its ids, ending with EOS) at their ticks in the clip,
    each ending by the gap's end."""
    decoded = tok.decode_score(gap.arranged.plain_before + ids)
    shift = gap.offset
    out = []
    for n in decoded.notes:
        if n.start >= gap.state.bar_start:
            start = n.start + shift
            out.append(replace(n, start=start, duration=min(n.duration, gap.end - start)))
    return out


def in_gap(onsets_fine: np.ndarray, tpq_fine: int, tpq: int, gap: Gap) -> np.ndarray:
    """Which of the user's notes (onsets at ``tpq_fine``, as the model reads them) the gap
    replaces: those that start inside it on the model's grid."""
    ticks = _rescale(np.asarray(onsets_fine, dtype=np.int64), tpq_fine, tpq)
    return (ticks >= gap.start) & (ticks < gap.end)


def check_metres(tok: Tokenizer, time_signatures: list[tuple[int, int, int]]) -> None:
    """Refuse a clip whose metre the model reads with other bar lengths (9/4 as 3/4 bars,
    11/8 as 4/4): its bar numbers would not be the ones the user sees."""
    for _, n, d in time_signatures:
        mapped = tok.time_signatures[tok.map_time_signature(n, d)]
        if mapped != (n, d) and tok.bar_ticks(*mapped) * d != n * 4 * tok.ticks_per_quarter:
            raise ConfigError(
                f"the clip is in {n}/{d}, which the model reads as {mapped[0]}/{mapped[1]} "
                "bars, so bar numbers would not match your DAW's; continue it instead, or set "
                "the clip to a metre such as 3/4, 4/4 or 6/8"
            )


def with_other_tracks(
    source: Any, track: int | None, read: Score, notes: list[Note]
) -> tuple[list[Track], list[Note]]:
    """Every track of ``source`` with notes, in file order, and ``notes`` (those of the tracks
    the model read, ``read.tracks``) with the notes of the other tracks (drums, or every track
    but the one chosen) as they are in the file."""
    infos = list_tracks(source)
    chosen = [i.index for i in infos if not i.is_drum] if track is None else [track]
    if len(chosen) != len(read.tracks):  # not the tracks the model read: keep those alone
        return list(read.tracks), notes
    place = {j: k for k, j in enumerate(i.index for i in infos)}
    out = [replace(n, track=place[chosen[n.track]]) for n in notes]
    for info in infos:
        if info.index not in chosen:
            other = read_score(source, track=info.index, ticks_per_quarter=read.ticks_per_quarter)
            out += [replace(n, track=place[info.index]) for n in other.notes]
    return [Track(i.program, i.is_drum, i.name) for i in infos], out


def join(a: Score, b: Score, offset: int) -> Score:
    """Clips ``a`` and ``b`` (same resolution) as one score, ``b`` starting at tick ``offset``.

    Tracks with the same instruments in the same order are shared; otherwise ``b``'s tracks
    follow ``a``'s. ``b``'s metre and tempo take effect where it starts."""
    same = len(a.tracks) == len(b.tracks) and all(
        (x.program, x.is_drum) == (y.program, y.is_drum)
        for x, y in zip(a.tracks, b.tracks, strict=True)
    )
    first = 0 if same else len(a.tracks)
    tracks: list[Track] = list(a.tracks) if same else list(a.tracks) + list(b.tracks)
    notes = list(a.notes) + [
        replace(n, start=n.start + offset, track=n.track + first) for n in b.notes
    ]
    ts = [e for e in a.time_signatures if e[0] < offset]
    ts += [(t + offset, n, d) for t, n, d in b.time_signatures]
    tempos = [e for e in a.tempos if e[0] < offset] + [(t + offset, q) for t, q in b.tempos]
    return Score(a.ticks_per_quarter, sorted(notes), tracks, ts, tempos)
