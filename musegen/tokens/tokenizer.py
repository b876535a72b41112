"""Score <-> token ids: the REMI-style vocabulary, encoding, decoding and quantizing.

Token families (see TOKENS in the README for the full spec and a worked example):

    PAD BOS EOS             padding, start and end of a piece
    BAR                     a new bar
    TIMESIG_n/d             the metre; right after BAR, in the first bar and when it changes
    TEMPO_q                 optional (use_tempo): tempo bin in quarter notes per minute; right
                            after BAR / TIMESIG, in the first bar and when it changes
    POS_k                   onset inside the bar, in grid ticks, 0 <= k < bar length
    PITCH_p                 MIDI pitch
    VEL_v                   optional (use_velocity): velocity bin
    DUR_d                   duration in grid ticks
    FILL SEP                optional (infill): a placeholder per bar of a gap, and the separator
                            after which the gap's bars are written (`musegen.tokens.infill`)

Everything musical is decided here, once: the grid, the metre map and where bars fall, the
duration ladder, the bins. `Tokenizer.quantize` applies exactly what encoding loses, so that
``decode_score(encode_score(s)) == quantize(s)``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from musegen.errors import ConfigError, MidiError, TokenError
from musegen.midi import (
    DEFAULT_LIMITS,
    DEFAULT_TICKS_PER_QUARTER,
    DEFAULT_VELOCITY,
    Note,
    Score,
    ScoreArrays,
    Source,
    Track,
    _normalize_events,
    _rescale,
    read_arrays,
    score_arrays,
    score_to_pretty_midi,
)
from musegen.options import CHORD_ORDERS
from musegen.tokens.grammar import (
    BAR,
    BOS,
    DUR,
    EOS,
    FAMILY_NAMES,
    FILL,
    PAD,
    PITCH,
    POS,
    SEP,
    TEMPO,
    TIMESIG,
    VEL,
    Grammar,
    GrammarState,
    Phase,
    _as_int_list,
)

__all__ = [
    "SUPPORTED_TIME_SIGNATURES",
    "Tokenizer",
    "Grammar",
    "GrammarState",
    "Phase",
    "default_durations",
    "default_tempos",
    "default_velocities",
]

# Common metres, plus 1/4 for pickup bars and 4/2 for long-bar folk songs. The longest (4/2, 7/4)
# sets the POS range: 8 quarter notes = 192 ticks at 24 per quarter.
SUPPORTED_TIME_SIGNATURES: tuple[tuple[int, int], ...] = (
    (1, 4),
    (2, 4),
    (3, 4),
    (4, 4),
    (5, 4),
    (6, 4),
    (7, 4),
    (2, 2),
    (3, 2),
    (4, 2),
    (3, 8),
    (5, 8),
    (6, 8),
    (7, 8),
    (9, 8),
    (12, 8),
)

_FORMAT = "musegen.tokenizer"
_VERSION = 1


def default_durations(ticks_per_quarter: int) -> list[int]:
    """Every tick up to a whole note (4 quarters), then 16ths up to 8 quarters, then quarters
    up to 16 quarters. At 24 ticks per quarter: 1..96, 102..192 by 6, 216..384 by 24."""
    q = ticks_per_quarter
    step = max(1, q // 4)
    out = list(range(1, 4 * q + 1))
    out += [d for d in range(4 * q + step, 8 * q + 1, step)]
    out += [d for d in range(8 * q + q, 16 * q + 1, q)]
    return sorted(set(out))


def default_velocities(bins: int = 8) -> list[int]:
    """``bins`` velocities evenly up to 127 (8 bins: 16 32 48 64 79 95 111 127)."""
    return [round(127 * (i + 1) / bins) for i in range(bins)]


def default_tempos() -> list[int]:
    """24 tempo bins, 1/8 octave apart, 42..311 qpm, with 60, 120 and 240 exact."""
    return [round(120 * 2 ** (k / 8)) for k in range(-12, 12)]


def _nearest_index(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the nearest value in sorted ``values`` (a tie goes to the larger value)."""
    mids = (values[1:] + values[:-1]) / 2.0
    return np.searchsorted(mids, x, side="right")


class Tokenizer:
    """REMI-style tokenizer on a beat grid; see the module docstring and TOKENS in the README.

    Args:
        ticks_per_quarter: grid resolution (24: 32nd notes, triplets and dotted notes exact).
        use_velocity: add a VEL token after each PITCH (``velocities`` bins).
        use_tempo: add TEMPO tokens (``tempos`` bins, qpm) after BAR.
        pitch_range: lowest and highest MIDI pitch with a token; notes outside are dropped.
        time_signatures: the metres with a token (must include 4/4); others are mapped, see
            `map_time_signature`.
        infill: add the FILL and SEP tokens (last in the vocabulary, so the other ids are
            those of the same tokenizer without them) for bar-level infilling.
        chord_order: the order of the notes that start together: "bass" (lowest first, the
            default) or "top" (highest first, the melody note before its accompaniment).
        durations: duration values in grid ticks (default `default_durations`); a note's
            duration becomes the nearest one (a tie goes to the longer; longer notes clip).
    """

    def __init__(
        self,
        ticks_per_quarter: int = DEFAULT_TICKS_PER_QUARTER,
        use_velocity: bool = False,
        use_tempo: bool = False,
        *,
        pitch_range: tuple[int, int] = (0, 127),
        time_signatures: Sequence[tuple[int, int]] = SUPPORTED_TIME_SIGNATURES,
        durations: Sequence[int] | None = None,
        velocities: Sequence[int] | None = None,
        tempos: Sequence[int] | None = None,
        infill: bool = False,
        chord_order: str = "bass",
    ) -> None:
        tpq = ticks_per_quarter
        if isinstance(tpq, bool) or not isinstance(tpq, int) or not 2 <= tpq <= 480 or tpq % 2:
            raise ConfigError(f"ticks_per_quarter must be an even integer in 2..480, got {tpq!r}")
        lo, hi = (int(x) for x in pitch_range)
        if not 0 <= lo <= hi <= 127:
            raise ConfigError(
                f"pitch_range must satisfy 0 <= low <= high <= 127, got {pitch_range}"
            )
        tss = [(int(n), int(d)) for n, d in time_signatures]
        if (4, 4) not in tss or len(set(tss)) != len(tss):
            raise ConfigError("time_signatures must be distinct and include 4/4 (the fallback)")
        for n, d in tss:
            if n < 1 or d not in (1, 2, 4, 8, 16, 32) or (n * 4 * tpq) % d:
                raise ConfigError(f"time signature {n}/{d} has no whole-tick bar at {tpq} tpq")
        durs = sorted({int(d) for d in (durations or default_durations(tpq))})
        if not durs or durs[0] < 1:
            raise ConfigError("durations must be positive grid ticks")
        vels = sorted({int(v) for v in (velocities or default_velocities())})
        if not vels or vels[0] < 1 or vels[-1] > 127:
            raise ConfigError("velocities must lie in 1..127")
        tmps = sorted({int(t) for t in (tempos or default_tempos())})
        if not tmps or tmps[0] < 1:
            raise ConfigError("tempos must be positive quarter notes per minute")

        self.ticks_per_quarter = tpq
        self.use_velocity = bool(use_velocity)
        self.use_tempo = bool(use_tempo)
        self.infill = bool(infill)
        if chord_order not in CHORD_ORDERS:
            raise ConfigError(
                f"chord_order must be one of {', '.join(CHORD_ORDERS)} (got {chord_order!r})"
            )
        self.chord_order = chord_order
        self.pitch_range = (lo, hi)
        self.time_signatures: list[tuple[int, int]] = tss
        self.durations: list[int] = durs
        self.velocities: list[int] = vels
        self.tempos: list[int] = tmps
        self._ts_ticks = [self.bar_ticks(n, d) for n, d in tss]
        self.max_bar_ticks = max(self._ts_ticks)

        # -- the vocabulary, family by family --------------------------------------------
        names: list[str] = []
        family: list[int] = []
        value: list[int] = []

        def add(fam: int, items: Iterable[tuple[str, int]]) -> np.ndarray:
            first = len(names)
            for name, v in items:
                names.append(name)
                family.append(fam)
                value.append(v)
            return np.arange(first, len(names), dtype=np.int64)

        for fam in (PAD, BOS, EOS, BAR):
            add(fam, [(FAMILY_NAMES[fam], 0)])
        self.timesig_ids = add(TIMESIG, ((f"TIMESIG_{n}/{d}", i) for i, (n, d) in enumerate(tss)))
        self.tempo_ids = (
            add(TEMPO, ((f"TEMPO_{q}", i) for i, q in enumerate(tmps)))
            if self.use_tempo
            else np.zeros(0, np.int64)
        )
        self.pos_ids = add(POS, ((f"POS_{k}", k) for k in range(self.max_bar_ticks)))
        self.pitch_ids = add(PITCH, ((f"PITCH_{p}", p) for p in range(lo, hi + 1)))
        self.vel_ids = (
            add(VEL, ((f"VEL_{v}", i) for i, v in enumerate(vels)))
            if self.use_velocity
            else np.zeros(0, np.int64)
        )
        self.dur_ids = add(DUR, ((f"DUR_{d}", i) for i, d in enumerate(durs)))
        if self.infill:
            self.fill_id = int(add(FILL, [("FILL", 0)])[0])
            self.sep_id = int(add(SEP, [("SEP", 0)])[0])
        else:
            self.fill_id = self.sep_id = -1
        self._vocab = names
        self._family_list = family
        self._value_list = value
        self._index = {n: i for i, n in enumerate(names)}
        self.token_family = np.asarray(family, dtype=np.int64)  # (V,) family code
        self.token_value = np.asarray(value, dtype=np.int64)  # (V,) value or index in family
        self.pitch_of_id = np.full(len(names), -1, dtype=np.int64)  # (V,) pitch or -1
        self.pitch_of_id[self.pitch_ids] = np.arange(lo, hi + 1)
        self.pad_id, self.bos_id, self.eos_id, self.bar_id = 0, 1, 2, 3
        self._grammar: Grammar | None = None
        self._dur_values = np.asarray(durs, dtype=np.float64)
        self._vel_values = np.asarray(vels, dtype=np.float64)
        self._log_tempos = np.log(np.asarray(tmps, dtype=np.float64))

    # -- vocabulary ------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    def __len__(self) -> int:
        return len(self._vocab)

    @property
    def vocab(self) -> list[str]:
        """Token strings, indexed by id."""
        return list(self._vocab)

    def token_to_id(self, token: str) -> int:
        try:
            return self._index[token]
        except KeyError:
            raise TokenError(f"unknown token {token!r}; see Tokenizer.vocab") from None

    def id_to_token(self, token_id: int) -> str:
        if not 0 <= int(token_id) < len(self._vocab):
            raise TokenError(f"unknown token id {token_id}: the vocabulary has {len(self)} ids")
        return self._vocab[int(token_id)]

    def ids_of(self, family: str) -> np.ndarray:
        """Ids of one family ("PAD", "BOS", "EOS", "BAR", "TIMESIG", "TEMPO", "POS", "PITCH",
        "VEL", "DUR", "FILL", "SEP"), in value order (``ids_of("POS")[k]`` is POS_k)."""
        try:
            code = FAMILY_NAMES.index(family.upper())
        except ValueError:
            raise TokenError(f"unknown token family {family!r}; one of {FAMILY_NAMES}") from None
        return np.flatnonzero(self.token_family == code)

    def family_of(self, token_id: int) -> str:
        """The family name of a token id ("PITCH", "DUR", ...)."""
        self.id_to_token(token_id)  # validates
        return FAMILY_NAMES[self._family_list[int(token_id)]]

    def duration_of_id(self, token_id: int) -> int:
        """Grid ticks of a DUR token."""
        if self.family_of(token_id) != "DUR":
            raise TokenError(f"{self.id_to_token(token_id)} is not a DUR token")
        return self.durations[self.token_value[token_id]]

    def bar_ticks(self, numerator: int, denominator: int) -> int:
        """Bar length in grid ticks (raises ConfigError if not a whole number of ticks)."""
        num = numerator * 4 * self.ticks_per_quarter
        if num % denominator:
            raise ConfigError(f"{numerator}/{denominator} is not a whole number of grid ticks")
        return num // denominator

    def map_time_signature(self, numerator: int, denominator: int) -> int:
        """Index in `time_signatures` of the metre used for ``numerator/denominator``.

        1. a supported metre is itself;
        2. else a supported metre with the same bar length (the closest denominator wins:
           4/8 -> 2/4, 8/8 -> 4/4, 2/1 -> 4/2, 12/16 -> 6/8);
        3. else the longest supported metre of at least two beats whose bar divides the bar
           evenly, same denominator first (4/1 -> 4/2, 9/4 -> 3/4, 6/2 -> 3/2, 3/1 -> 3/2),
           so the original bar lines stay bar lines;
        4. else 4/4 (e.g. 11/8); notes keep their exact times, only the bar lines differ.
        """
        key = (numerator, denominator)
        if key in self.time_signatures:
            return self.time_signatures.index(key)
        total = numerator * 4 * self.ticks_per_quarter
        if total % denominator == 0 and numerator > 0:
            length = total // denominator
            ld = math.log2(denominator)

            def closeness(i: int) -> tuple:
                return (abs(math.log2(self.time_signatures[i][1]) - ld), i)

            same = [i for i, t in enumerate(self._ts_ticks) if t == length]
            if same:
                return min(same, key=closeness)
            divides = [
                i
                for i, t in enumerate(self._ts_ticks)
                if length % t == 0 and self.time_signatures[i][0] >= 2
            ]
            if divides:
                return min(
                    divides,
                    key=lambda i: (
                        self.time_signatures[i][1] != denominator,
                        -self._ts_ticks[i],
                        *closeness(i),
                    ),
                )
        return self.time_signatures.index((4, 4))

    # -- bars ------------------------------------------------------------------------------

    def metre_changes(
        self, time_signatures: Sequence[tuple[int, int, int]]
    ) -> list[tuple[int, int]]:
        """[(tick, metre index)] where the bar length changes, snapped to bar lines.

        A time signature that does not fall on a bar line of the metre before it takes effect
        at the next bar line; several landing on one bar line: the last wins; a repeat of the
        current metre is no change. The first entry is at tick 0 (4/4 if nothing is there).
        """
        events = _normalize_events(list(time_signatures), (4, 4))
        cur = self.map_time_signature(events[0][1], events[0][2])
        changes = [(0, cur)]
        bar_start = 0
        for tick, n, d in events[1:]:
            length = self._ts_ticks[cur]
            if tick > bar_start:
                bar_start += -(-(tick - bar_start) // length) * length
            idx = self.map_time_signature(n, d)
            if changes[-1][0] == bar_start:
                changes[-1] = (bar_start, idx)
            else:
                changes.append((bar_start, idx))
            cur = idx
        out: list[tuple[int, int]] = []
        for c in changes:
            if not out or out[-1][1] != c[1]:
                out.append(c)
        return out

    def bar_starts(self, changes: Sequence[tuple[int, int]], last_tick: int) -> np.ndarray:
        """Ticks of every bar start up to the bar that contains ``last_tick`` (int64)."""
        parts = []
        for j, (t, idx) in enumerate(changes):
            if t > last_tick:
                break
            length = self._ts_ticks[idx]
            end = changes[j + 1][0] if j + 1 < len(changes) else last_tick + 1
            end = min(end, last_tick + 1)
            parts.append(np.arange(t, end, length, dtype=np.int64))
        return np.concatenate(parts)

    # -- encoding --------------------------------------------------------------------------

    def _prepare(self, a: ScoreArrays) -> tuple:
        """Grid, pitch range, duration/velocity vocabulary, one note per (onset, pitch)."""
        tpq = self.ticks_per_quarter
        start, dur = a.start, a.duration
        if a.ticks_per_quarter != tpq:
            start = _rescale(start, a.ticks_per_quarter, tpq)
            dur = np.maximum(_rescale(dur, a.ticks_per_quarter, tpq), 1)
        if len(start) and int(start.max()) > DEFAULT_LIMITS.max_quarters * tpq:
            raise MidiError(
                f"the score is {int(start.max()) / tpq:,.0f} quarter notes long, more than the "
                f"{DEFAULT_LIMITS.max_quarters:,} musegen tokenizes; trim it"
            )
        lo, hi = self.pitch_range
        keep = (a.pitch >= lo) & (a.pitch <= hi)
        start, pitch, dur, vel = start[keep], a.pitch[keep], dur[keep], a.velocity[keep]
        di = _nearest_index(self._dur_values, dur)
        vi = _nearest_index(self._vel_values, vel) if self.use_velocity else np.zeros_like(di)
        # one note per (onset, pitch): the longest, then the loudest
        order = np.lexsort((-vi, -di, pitch if self.chord_order == "bass" else -pitch, start))
        start, pitch, di, vi = start[order], pitch[order], di[order], vi[order]
        if len(start) > 1:
            first = np.ones(len(start), dtype=bool)
            first[1:] = (start[1:] != start[:-1]) | (pitch[1:] != pitch[:-1])
            start, pitch, di, vi = start[first], pitch[first], di[first], vi[first]
        tpq_in = a.ticks_per_quarter
        ts = [(_rescale(t, tpq_in, tpq), n, d) for t, n, d in a.time_signatures]
        tempos = [(_rescale(t, tpq_in, tpq), q) for t, q in a.tempos]
        return start, pitch, di, vi, self.metre_changes(ts), tempos

    def _tempo_bins(self, tempos: Sequence[tuple[int, float]]) -> tuple[list[int], list[int]]:
        ev = _normalize_events([(int(t), float(q)) for t, q in tempos], (120.0,))
        ticks = [t for t, _ in ev]
        qpm = np.maximum(np.asarray([q for _, q in ev], dtype=np.float64), 1e-3)
        bins = _nearest_index(self._log_tempos, np.log(qpm)).tolist()
        return ticks, bins

    def encode_score(
        self, score: Score, *, add_bos: bool = True, add_eos: bool = True
    ) -> list[int]:
        """Token ids of a `Score` (all tracks merged). A score without notes gives the metre
        alone (``BOS BAR TIMESIG_n/d EOS``), a start for generating from scratch."""
        return self._encode_arrays(score_arrays(score), add_bos, add_eos)

    def encode(
        self,
        source: Source,
        *,
        track: int | None = None,
        add_bos: bool = True,
        add_eos: bool = True,
    ) -> list[int]:
        """Token ids of a MIDI source (path, bytes, PrettyMIDI, mido.MidiFile).

        ``track`` as in `musegen.midi.read_score`. Raises `MidiError` if the source cannot be
        read or has no notes to tokenize.
        """
        a = read_arrays(source, track=track, ticks_per_quarter=self.ticks_per_quarter)
        if len(a) == 0:
            if a.skipped_drum_notes:
                raise MidiError(
                    "the MIDI file has only drum notes; choose the drum track to read it "
                    "(--track N on the command line, track=N in Python; see "
                    "musegen.midi.list_tracks)"
                )
            raise MidiError("the MIDI file has no notes; give a file with a melody in it")
        return self._encode_arrays(a, add_bos, add_eos)

    def _encode_arrays(self, a: ScoreArrays, add_bos: bool, add_eos: bool) -> list[int]:
        start, pitch, di, vi, changes, tempos = self._prepare(a)
        ts_ids = self.timesig_ids.tolist()
        ts_len = self._ts_ticks
        pos0 = int(self.pos_ids[0])
        pitch0 = int(self.pitch_ids[0]) - self.pitch_range[0]
        dur0 = int(self.dur_ids[0])
        bar = self.bar_id
        use_vel, use_tempo = self.use_velocity, self.use_tempo
        vel0 = int(self.vel_ids[0]) if use_vel else 0
        if use_tempo:
            tempo_ticks, tempo_bins = self._tempo_bins(tempos)
            tempo_ids = self.tempo_ids.tolist()
        ids = [self.bos_id] if add_bos else []
        ci = 0
        metre = changes[0][1]
        bar_start, bar_len = 0, ts_len[metre]
        ids += (bar, ts_ids[metre])
        ti = 0
        if use_tempo:
            cur_tempo = tempo_bins[0]
            ids.append(tempo_ids[cur_tempo])
        last_pos = -1
        for s, p, d, v in zip(
            start.tolist(), pitch.tolist(), di.tolist(), vi.tolist(), strict=True
        ):
            while s >= bar_start + bar_len:
                bar_start += bar_len
                ids.append(bar)
                if ci + 1 < len(changes) and changes[ci + 1][0] == bar_start:
                    ci += 1
                    metre = changes[ci][1]
                    bar_len = ts_len[metre]
                    ids.append(ts_ids[metre])
                if use_tempo:
                    while ti + 1 < len(tempo_ticks) and tempo_ticks[ti + 1] <= bar_start:
                        ti += 1
                    if tempo_bins[ti] != cur_tempo:
                        cur_tempo = tempo_bins[ti]
                        ids.append(tempo_ids[cur_tempo])
                last_pos = -1
            pos = s - bar_start
            if pos != last_pos:
                ids.append(pos0 + pos)
                last_pos = pos
            ids.append(pitch0 + p)
            if use_vel:
                ids.append(vel0 + v)
            ids.append(dur0 + d)
        if add_eos:
            ids.append(self.eos_id)
        return ids

    # -- what the tokens can represent -----------------------------------------------------

    def quantize(self, score: Score) -> Score:
        """The score as the tokens represent it: ``decode_score(encode_score(s)) == quantize(s)``.

        Grid of this tokenizer, pitches in range, durations from the ladder, one note per
        (onset, pitch) (the longest), one track (program 0), velocity bins (or the default
        velocity 90), supported metres snapped to bar lines, tempo bins per bar (or 120 qpm),
        and nothing after the bar holding the last onset.
        """
        start, pitch, di, vi, changes, tempos = self._prepare(score_arrays(score))
        durs = np.asarray(self.durations)[di]
        vels = (
            np.asarray(self.velocities)[vi]
            if self.use_velocity
            else np.full_like(di, DEFAULT_VELOCITY)
        )
        notes = sorted(map(Note, start.tolist(), pitch.tolist(), durs.tolist(), vels.tolist()))
        last = int(start.max()) if len(start) else 0
        bars = self.bar_starts(changes, last)
        last_bar = int(bars[-1])
        ts = [(t, *self.time_signatures[i]) for t, i in changes if t <= last_bar]
        if self.use_tempo:
            ticks, bins = self._tempo_bins(tempos)
            per_bar = np.asarray(bins)[np.searchsorted(ticks, bars, side="right") - 1]
            change = np.flatnonzero(np.r_[True, per_bar[1:] != per_bar[:-1]])
            tempo_map = [(int(bars[i]), float(self.tempos[per_bar[i]])) for i in change]
        else:
            tempo_map = [(0, 120.0)]
        return Score(
            ticks_per_quarter=self.ticks_per_quarter,
            notes=notes,
            tracks=[Track()],
            time_signatures=ts,
            tempos=tempo_map,
        )

    # -- decoding --------------------------------------------------------------------------

    def grammar(self) -> Grammar:
        """The token grammar (`musegen.tokens.grammar.Grammar`) of this vocabulary (shared)."""
        if self._grammar is None:
            self._grammar = Grammar(self)
        return self._grammar

    def decode_score(self, ids: Iterable[int]) -> Score:
        """Token ids -> `Score` (one track). Lenient: PAD ids are ignored, a missing BOS is
        implied, a sequence may stop anywhere (an unfinished note is dropped). Ids the grammar
        does not allow raise `TokenError`."""
        g = self.grammar()
        seq = [t for t in _as_int_list(ids) if t != self.pad_id]
        st = g.start()
        if not seq or seq[0] != self.bos_id:
            st = g.advance(st, self.bos_id)
        family = self._family_list
        value = self._value_list
        durs, vels, tss, tmps = self.durations, self.velocities, self.time_signatures, self.tempos
        notes: list[Note] = []
        time_signatures: list[tuple[int, int, int]] = []
        tempos: list[tuple[int, float]] = []
        advance = g.advance
        for i, t in enumerate(seq):
            try:
                st = advance(st, t)
            except TokenError as e:
                raise TokenError(f"cannot decode: at index {i}: {e}") from None
            f = family[t]
            if f == DUR:
                v = vels[st.velocity] if st.velocity >= 0 else DEFAULT_VELOCITY
                notes.append(Note(st.bar_start + st.position, st.pitch, durs[value[t]], v))
            elif f == TIMESIG:
                time_signatures.append((st.bar_start, *tss[value[t]]))
            elif f == TEMPO:
                tempos.append((st.bar_start, float(tmps[value[t]])))
        notes.sort()
        return Score(
            ticks_per_quarter=self.ticks_per_quarter,
            notes=notes,
            tracks=[Track()],
            time_signatures=time_signatures or [(0, 4, 4)],
            tempos=tempos or [(0, 120.0)],
        )

    def decode(self, ids: Iterable[int]) -> Any:
        """Token ids -> ``pretty_midi.PrettyMIDI`` (see `decode_score`)."""
        return score_to_pretty_midi(self.decode_score(ids))

    # -- config ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready config; `from_dict` rebuilds the identical vocabulary."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "ticks_per_quarter": self.ticks_per_quarter,
            "use_velocity": self.use_velocity,
            "use_tempo": self.use_tempo,
            "pitch_range": list(self.pitch_range),
            "time_signatures": [list(t) for t in self.time_signatures],
            "durations": list(self.durations),
            "velocities": list(self.velocities),
            "tempos": list(self.tempos),
            **({"infill": True} if self.infill else {}),
            **({"chord_order": self.chord_order} if self.chord_order != "bass" else {}),
            "vocab_size": self.vocab_size,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tokenizer:
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ConfigError("not a musegen tokenizer config (missing format 'musegen.tokenizer')")
        if d.get("version") != _VERSION:
            raise ConfigError(
                f"tokenizer config version {d.get('version')!r} is not supported (expected "
                f"{_VERSION}); upgrade musegen"
            )
        try:
            tok = cls(
                int(d["ticks_per_quarter"]),
                bool(d["use_velocity"]),
                bool(d["use_tempo"]),
                pitch_range=tuple(d["pitch_range"]),
                time_signatures=[tuple(t) for t in d["time_signatures"]],
                durations=d["durations"],
                velocities=d["velocities"],
                tempos=d["tempos"],
                infill=bool(d.get("infill", False)),
                chord_order=d.get("chord_order", "bass"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"malformed tokenizer config: {e!r}") from None
        if "vocab_size" in d and d["vocab_size"] != tok.vocab_size:
            raise ConfigError(
                f"tokenizer config says vocab_size {d['vocab_size']} but builds {tok.vocab_size}"
            )
        return tok

    def save(self, path: str | os.PathLike) -> None:
        """Write the config as JSON."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1)
            f.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except OSError as e:
            raise ConfigError(f"cannot read tokenizer config {str(path)!r}: {e.strerror}") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"tokenizer config {str(path)!r} is not valid JSON: {e}") from None
        return cls.from_dict(d)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        return (
            f"Tokenizer(ticks_per_quarter={self.ticks_per_quarter}, "
            f"use_velocity={self.use_velocity}, use_tempo={self.use_tempo}, "
            f"infill={self.infill}, pitch_range={self.pitch_range}, vocab_size={self.vocab_size})"
        )
