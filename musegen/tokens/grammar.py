"""The token grammar as a small state machine: which token ids may come next.

    sequence := BOS bar* EOS? PAD*            (a prefix of it is also accepted and decodes)
    bar      := BAR TIMESIG? TEMPO? event*     (TIMESIG required in the first bar, TEMPO too
                                                when the tokenizer uses tempo; later only when
                                                the value changes)
    event    := POS note+                      (POS strictly rises inside a bar, < bar length)
    note     := PITCH VEL? DUR                 (pitches strictly rise inside one POS; they
                                                fall with the tokenizer's chord_order "top")

The grammar is purely syntactic; a sampler adds its own masks on top (bar counts, keys).
States are immutable (`GrammarState`, a NamedTuple), so a state can be shared between
branches of a search or between the rows of a batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from musegen.errors import TokenError

if TYPE_CHECKING:  # pragma: no cover
    from musegen.tokens.tokenizer import Tokenizer


class Phase(IntEnum):
    """What the last token was."""

    START = 0  # nothing yet: only BOS
    BOS = 1
    BAR = 2
    TIMESIG = 3
    TEMPO = 4
    POS = 5
    PITCH = 6
    VEL = 7
    DUR = 8
    END = 9  # after EOS: only PAD


class GrammarState(NamedTuple):
    """Where a token sequence stands. All times are grid ticks."""

    phase: Phase = Phase.START
    bars: int = 0  # BAR tokens seen
    bar_start: int = 0  # tick where the current bar starts
    bar_ticks: int = 0  # length of the current bar (0 until the first TIMESIG)
    position: int = -1  # onset inside the bar of the current POS, -1 before one
    pitch: int = -1  # last pitch at this position, -1 before one
    velocity: int = -1  # index of the last VEL token's value, -1 before one
    timesig: int = -1  # index into Tokenizer.time_signatures, -1 before one
    tempo: int = -1  # index into Tokenizer.tempos, -1 before one

    @property
    def finished(self) -> bool:
        """True after EOS."""
        return self.phase == Phase.END

    @property
    def tick(self) -> int:
        """Absolute tick of the current position (the bar start before any POS)."""
        return self.bar_start + max(self.position, 0)


# family codes, shared with the tokenizer; FILL and SEP only arrange infilling examples
# (`musegen.tokens.infill`) and never occur in a plain sequence, so the grammar never allows them
PAD, BOS, EOS, BAR, TIMESIG, TEMPO, POS, PITCH, VEL, DUR, FILL, SEP = range(12)
FAMILY_NAMES = (
    "PAD",
    "BOS",
    "EOS",
    "BAR",
    "TIMESIG",
    "TEMPO",
    "POS",
    "PITCH",
    "VEL",
    "DUR",
    "FILL",
    "SEP",
)

_CONSTANT_PHASES = (Phase.START, Phase.BOS, Phase.POS, Phase.PITCH, Phase.VEL, Phase.END)
_CACHE_LIMIT = 1 << 16


class Grammar:
    """``allowed(state) -> bool mask (V,)``, ``advance(state, id) -> state``, ``walk``, ``accepts``.

    ``allowed`` is cached per distinct situation, so a call costs about a microsecond.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        tok = tokenizer
        self.vocab_size = tok.vocab_size
        self._names = tok.vocab
        self._family = tok.token_family.tolist()
        self._value = tok.token_value.tolist()
        self._use_velocity = tok.use_velocity
        self._use_tempo = tok.use_tempo
        self._bar_ticks = [tok.bar_ticks(n, d) for n, d in tok.time_signatures]
        self._pitch_lo = tok.pitch_range[0]
        self._falling = tok.chord_order == "top"  # chord tones from the top down
        self._pad, self._bos, self._eos, self._bar = tok.pad_id, tok.bos_id, tok.eos_id, tok.bar_id
        self._timesig_ids = tok.timesig_ids
        self._tempo_ids = tok.tempo_ids
        self._pos0 = int(tok.pos_ids[0])
        self._pitch_ids = tok.pitch_ids
        v = self.vocab_size

        def mask(*groups: Iterable[int] | np.ndarray) -> np.ndarray:
            m = np.zeros(v, dtype=bool)
            for g in groups:
                m[np.asarray(list(g) if not isinstance(g, np.ndarray) else g, dtype=np.int64)] = (
                    True
                )
            m.setflags(write=False)
            return m

        self._base = {
            Phase.START: mask([self._bos]),
            Phase.BOS: mask([self._bar, self._eos]),
            Phase.POS: mask(tok.pitch_ids),
            Phase.PITCH: mask(tok.vel_ids if tok.use_velocity else tok.dur_ids),
            Phase.VEL: mask(tok.dur_ids),
            Phase.END: mask([self._pad]),
        }
        self._cache: dict[tuple, np.ndarray] = {}

    # -- the state machine ---------------------------------------------------------------

    def start(self) -> GrammarState:
        """The state before any token (BOS must come first)."""
        return GrammarState()

    @staticmethod
    def situation(state: GrammarState) -> tuple:
        """What ``allowed(state)`` depends on: states in the same situation allow the same
        tokens (a key for caches built on top of the grammar)."""
        ph = state.phase
        if ph in _CONSTANT_PHASES:
            return (ph,)
        return (ph, state.timesig, state.tempo, state.position, state.pitch)

    def allowed(self, state: GrammarState) -> np.ndarray:
        """Boolean mask (V,) of the token ids that may follow ``state`` (a fresh array)."""
        ph = state.phase
        if ph in _CONSTANT_PHASES:
            return self._base[ph].copy()
        key = self.situation(state)
        m = self._cache.get(key)
        if m is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            m = self._cache[key] = self._build_mask(state)
        return m.copy()

    def allowed_batch(self, states: Iterable[GrammarState]) -> np.ndarray:
        """Masks for several states, stacked to (B, V)."""
        return np.stack([self.allowed(s) for s in states])

    def _build_mask(self, s: GrammarState) -> np.ndarray:
        m = np.zeros(self.vocab_size, dtype=bool)
        ph = s.phase
        if ph == Phase.BAR and s.timesig < 0:
            m[self._timesig_ids] = True
        elif ph == Phase.TIMESIG and self._use_tempo and s.tempo < 0:
            m[self._tempo_ids] = True
        else:
            if ph == Phase.BAR:
                m[self._timesig_ids] = True
                m[self._timesig_ids[s.timesig]] = False
            if ph in (Phase.BAR, Phase.TIMESIG) and self._use_tempo:
                m[self._tempo_ids] = True
                m[self._tempo_ids[s.tempo]] = False
            first = s.position + 1 if ph == Phase.DUR else 0
            m[self._pos0 + first : self._pos0 + s.bar_ticks] = True
            if ph == Phase.DUR and self._falling:
                m[self._pitch_ids[: s.pitch - self._pitch_lo]] = True
            elif ph == Phase.DUR:
                m[self._pitch_ids[s.pitch - self._pitch_lo + 1 :]] = True
            m[self._bar] = m[self._eos] = True
        m.setflags(write=False)
        return m

    def advance(self, state: GrammarState, token: int) -> GrammarState:
        """The state after ``token``; raises `TokenError` if the grammar does not allow it."""
        if not 0 <= token < self.vocab_size:
            raise TokenError(f"unknown token id {token}: the vocabulary has {self.vocab_size} ids")
        fam = self._family[token]
        val = self._value[token]
        ph, bars, bar_start, bar_ticks, position, pitch, velocity, timesig, tempo = state
        if ph == Phase.DUR:
            if fam == PITCH and (val < pitch if self._falling else val > pitch):
                return GrammarState(
                    Phase.PITCH, bars, bar_start, bar_ticks, position, val, -1, timesig, tempo
                )
            if fam == POS and position < val < bar_ticks:
                return GrammarState(
                    Phase.POS, bars, bar_start, bar_ticks, val, -1, -1, timesig, tempo
                )
        elif ph == Phase.POS:
            if fam == PITCH:
                return GrammarState(
                    Phase.PITCH, bars, bar_start, bar_ticks, position, val, -1, timesig, tempo
                )
        elif ph == Phase.PITCH:
            if fam == (VEL if self._use_velocity else DUR):
                ph2 = Phase.VEL if fam == VEL else Phase.DUR
                vel = val if fam == VEL else velocity
                return GrammarState(
                    ph2, bars, bar_start, bar_ticks, position, pitch, vel, timesig, tempo
                )
        elif ph == Phase.VEL:
            if fam == DUR:
                return GrammarState(
                    Phase.DUR, bars, bar_start, bar_ticks, position, pitch, velocity, timesig, tempo
                )
        elif ph in (Phase.BAR, Phase.TIMESIG, Phase.TEMPO):
            if ph == Phase.BAR and timesig < 0:
                if fam == TIMESIG:
                    return GrammarState(
                        Phase.TIMESIG, bars, bar_start, self._bar_ticks[val], -1, -1, -1, val, tempo
                    )
                return self._reject(state, token)
            if ph == Phase.TIMESIG and self._use_tempo and tempo < 0:
                if fam == TEMPO:
                    return GrammarState(
                        Phase.TEMPO, bars, bar_start, bar_ticks, -1, -1, -1, timesig, val
                    )
                return self._reject(state, token)
            if fam == POS and val < bar_ticks:
                return GrammarState(
                    Phase.POS, bars, bar_start, bar_ticks, val, -1, -1, timesig, tempo
                )
            if fam == TIMESIG and ph == Phase.BAR and val != timesig:
                return GrammarState(
                    Phase.TIMESIG, bars, bar_start, self._bar_ticks[val], -1, -1, -1, val, tempo
                )
            if fam == TEMPO and self._use_tempo and ph != Phase.TEMPO and val != tempo:
                return GrammarState(
                    Phase.TEMPO, bars, bar_start, bar_ticks, -1, -1, -1, timesig, val
                )
        elif ph == Phase.START:
            if fam == BOS:
                return GrammarState(Phase.BOS)
            return self._reject(state, token)
        elif ph == Phase.END:
            if fam == PAD:
                return state
            return self._reject(state, token)
        # BAR and EOS may follow BOS, BAR, TIMESIG, TEMPO and DUR (the phases that fall through)
        if ph != Phase.POS and ph != Phase.PITCH and ph != Phase.VEL:
            if fam == BAR:
                return GrammarState(
                    Phase.BAR,
                    bars + 1,
                    bar_start + bar_ticks if bars else 0,
                    bar_ticks,
                    -1,
                    -1,
                    -1,
                    timesig,
                    tempo,
                )
            if fam == EOS:
                return state._replace(phase=Phase.END)
        return self._reject(state, token)

    def _reject(self, state: GrammarState, token: int) -> GrammarState:
        allowed = self.allowed(state)
        families = sorted({FAMILY_NAMES[self._family[i]] for i in np.flatnonzero(allowed)})
        raise TokenError(
            f"token {self._names[token]} (id {token}) is not allowed after "
            f"{state.phase.name} (bar {state.bars}, position {state.position}); expected one of "
            f"{', '.join(families)}"
        )

    def walk(self, ids: Iterable[int], state: GrammarState | None = None) -> GrammarState:
        """Advance through ``ids`` from ``state`` (default: the start); TokenError on a bad id."""
        st = self.start() if state is None else state
        for i, t in enumerate(_as_int_list(ids)):
            try:
                st = self.advance(st, t)
            except TokenError as e:
                raise TokenError(f"at index {i}: {e}") from None
        return st

    def accepts(self, ids: Iterable[int], *, complete: bool = False) -> bool:
        """Whether ``ids`` is a valid sequence from the start (``complete``: it ends with EOS)."""
        try:
            st = self.walk(ids)
        except TokenError:
            return False
        return st.finished or not complete


def _as_int_list(ids: Iterable[int]) -> list[int]:
    if hasattr(ids, "tolist"):  # numpy array or torch tensor
        ids = ids.tolist()
    out = []
    for t in ids:
        if isinstance(t, list):
            raise TokenError("token ids must be a flat (1-D) sequence of integers")
        try:
            out.append(int(t))
        except (TypeError, ValueError):
            raise TokenError(f"token ids must be integers, got {t!r}") from None
    return out
