"""`MuseGen`: a model and its tokenizer, behind the calls musicians and scripts use.

    m = musegen.load("mamba")
    pm = m.continue_midi("clip.mid", bars=8, seed=1)        # pretty_midi.PrettyMIDI
    for msg in m.stream("clip.mid", bars=8): port.send(msg)   # mido.Message, .time in seconds

A source is a path, raw bytes, a binary file object, a ``pretty_midi.PrettyMIDI`` or a
``mido.MidiFile``. The primer's notes come back unchanged (read at 960 ticks per quarter, not
re-quantized to the model's grid); the continuation follows the primer's tempo, metre and
instrument and spans exactly ``bars`` bars that start at the first bar line after the primer's
last note ends.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from threading import Event
from typing import Any

import numpy as np
import pretty_midi

from musegen import checkpoint as ckpt
from musegen.errors import ConfigError, MidiError
from musegen.generate.infill import (
    Gap,
    check_metres,
    in_gap,
    join,
    new_notes,
    plan_gap,
    with_other_tracks,
)
from musegen.generate.sample import generate, generate_iter, model_prompt
from musegen.generate.theory import Key, detect_key, parse_key
from musegen.metrics import bits_per_note
from musegen.midi import (
    Limits,
    Note,
    Score,
    Track,
    midi_bytes,
    score_to_pretty_midi,
)
from musegen.options import (
    BRIDGE_BARS,
    DEFAULT_MODEL,
    DEFAULT_QUANTIZE,
    INFILL_CANDIDATES,
    Constraints,
    Sampling,
    check_gap_bars,
    generation_threads,
    prefill_threads,
)
from musegen.quantize import (
    FINE_TICKS_PER_QUARTER,
    Grid,
    parse_mode,
    read_for_model,
    snapped_onsets,
)
from musegen.runtime import (
    DEFAULT_PRECISION,
    DEFAULT_RUNTIME,
    Runtime,
    as_runtime,
    choose_precision,
    choose_runtime,
)
from musegen.tokens.grammar import GrammarState, Phase
from musegen.tokens.tokenizer import Tokenizer


@dataclass
class Primer:
    """A source prepared for generation."""

    grid: Score  # on the model's grid: what the model reads
    fine: Score | None  # at 960 ticks per quarter: what goes back into the output
    context: list[int]  # token ids, BOS ... up to the BAR that opens the continuation
    start: int  # grid tick where the continuation starts
    metre: tuple[int, int]
    tempo: float  # quarter notes per minute at the continuation's start
    velocity: int  # the primer's median velocity, given to generated notes
    quantized: str | None = None  # the grid a played-in primer was snapped to for the model
    snap: Grid | None = None  # that grid
    source: Any = None  # the source, readable again (infilling gives back its other tracks)
    track: int | None = None  # the track the model read (None: every non-drum track)
    state: GrammarState | None = None  # the grammar after ``context`` (None: walk it)

    def grammar_state(self, tok: Tokenizer) -> GrammarState:
        """The grammar state after ``context``: kept from `MuseGen.prepare`, else walked."""
        return self.state if self.state is not None else tok.grammar().walk(self.context)

    @property
    def start_seconds(self) -> float:
        """Where the continuation starts in the output, in seconds (0 without a primer)."""
        return float(self.grid.ticks_to_seconds(self.start))


def _reusable(source: Any) -> Any:
    """File objects can be read once; read them into bytes so the source can be read twice."""
    if hasattr(source, "read") and not hasattr(source, "tracks"):
        return source.read()
    return source


class MuseGen:
    """A loaded model: continue, vary, stream and score melodies.

    ``runtime``: what runs the decoder (`musegen.runtime`), or a torch decoder to run eagerly.
    """

    def __init__(self, runtime: Runtime | Any, tokenizer: Tokenizer, config: dict, name: str):
        self.runtime = as_runtime(runtime)
        self.tokenizer = tokenizer
        self.config = config
        self.name = name

    @property
    def model(self) -> Any:
        """The torch decoder (runtime "torch" only)."""
        model = getattr(self.runtime, "model", None)
        if model is None:
            raise ConfigError(
                f"{self.name} runs on {self.runtime.name}; load it with runtime='torch' for "
                "its PyTorch model"
            )
        return model

    @property
    def arch(self) -> str:
        return self.config["arch"]

    @property
    def precision(self) -> str:
        """The arithmetic the model runs in: "float32" or "int8" (`musegen.runtime`)."""
        return getattr(self.runtime, "precision", "float32")

    def __repr__(self) -> str:
        return (
            f"MuseGen({self.name!r}, arch={self.arch}, parameters={self.config['parameters']:,}, "
            f"runtime={self.runtime.name}, precision={self.precision})"
        )

    # ------------------------------------------------------------------ preparing

    def prepare(
        self,
        source: Any = None,
        *,
        track: int | None = None,
        limits: Limits | None = None,
        quantize: str = DEFAULT_QUANTIZE,
    ) -> Primer:
        """Read a primer (or nothing, to compose from scratch) and find where to continue.

        ``limits``: how large a file may be (default `musegen.midi.DEFAULT_LIMITS`).
        ``quantize``: how the model reads played-in timing (`musegen.quantize`): "auto"
        snaps a clip whose onsets are off the grid to the grid that fits it best, "off"
        reads it as it is, a grid such as "1/16" or "1/8T" forces that grid. The user's
        notes come back unchanged in the output either way."""
        tok = self.tokenizer
        parse_mode(quantize)  # a bad value is an error even without a primer
        if source is None:
            return Primer(Score(tok.ticks_per_quarter), None, [tok.bos_id], 0, (4, 4), 120.0, 90)
        source = _reusable(source)
        fine, grid, used = read_for_model(source, track, limits, quantize, tok.ticks_per_quarter)
        if not grid.notes:
            raise MidiError(
                "the MIDI file has no notes to continue (drum tracks are skipped); give a file "
                "with a melody, or no file to compose from scratch"
            )
        context = tok.encode_score(grid, add_eos=False)
        grammar = tok.grammar()
        state = grammar.walk(context)
        # Open bars until the one where the primer's last note has ended.
        bars_to_open = max(1, -(-(grid.end - state.bar_start) // state.bar_ticks))
        context += [tok.bar_id] * bars_to_open
        opened = grammar.walk([tok.bar_id] * bars_to_open, state)
        start = state.bar_start + bars_to_open * state.bar_ticks
        tempo = next(q for t, q in reversed(grid.tempos) if t <= start)
        velocity = int(statistics.median(n.velocity for n in grid.notes))
        metre = tok.time_signatures[state.timesig]
        quantized = used.name if used is not None else None
        return Primer(
            grid,
            fine,
            context,
            start,
            metre,
            tempo,
            velocity,
            quantized,
            used,
            source,
            track,
            opened,
        )

    def warm(self, primer: Primer) -> bool:
        """Read ``primer`` now, so that the next continuation of it does not wait for its
        prefill (the demo calls this when a clip is uploaded, while its preview renders).

        Returns False, having done nothing, where the runtime keeps no prefills (torch)."""
        if not getattr(self.runtime, "keeps_prefills", False):
            return False
        self.runtime.prefill(model_prompt(self.runtime, primer.context))
        return True

    def key_of(self, primer: Primer) -> Key:
        """The key ``key="auto"`` keeps: the one detected in the primer's notes."""
        if not primer.grid.notes:
            raise ConfigError("key='auto' needs a primer with notes; name a key instead")
        return detect_key((n.pitch, n.duration) for n in primer.grid.notes)

    def _constraints(self, primer: Primer, bars: int, key: str | Key | None, pitch_range):
        if primer.grid.notes and all(t.is_drum for t in primer.grid.tracks):
            raise MidiError(
                "the chosen track is a drum track: musegen's models write pitched parts "
                "(melody, chords, bass), not drum patterns; choose a pitched track"
            )
        if isinstance(key, str):
            if key.strip().lower() == "auto":
                if not primer.grid.notes:
                    raise ConfigError("key='auto' needs a primer with notes; name a key instead")
                key = self.key_of(primer)
            else:
                key = parse_key(key)
        elif key is not None and not isinstance(key, Key):
            raise ConfigError(f"key must be a name like 'D major', 'auto' or None (got {key!r})")
        return Constraints(bars=bars, key=key, pitch_range=pitch_range)

    # ------------------------------------------------------------------ generating

    def generate_ids(
        self,
        primer: Primer,
        *,
        n: int = 1,
        bars: int = Constraints.bars,
        seed: int | None = None,
        key: str | Key | None = None,
        pitch_range: tuple[int, int] | None = None,
        stop: Event | None = None,
        **sampling_options: Any,
    ) -> list[list[int]]:
        """Token ids of ``n`` continuations of a prepared primer (each ends with EOS).

        ``sampling_options``: temperature, top_k, top_p, min_p (see `musegen.options.Sampling`).
        ``stop``: an event that, once set, makes the generation raise `Cancelled`.
        """
        constraints = self._constraints(primer, bars, key, pitch_range)
        sampling = Sampling(**sampling_options)
        return generate(
            self.runtime,
            self.tokenizer,
            primer.context,
            n=n,
            constraints=constraints,
            sampling=sampling,
            seed=seed,
            start=primer.grammar_state(self.tokenizer),
            stop=stop,
        )

    def to_midi(
        self, primer: Primer, ids: list[int], *, continuation_only: bool = False
    ) -> pretty_midi.PrettyMIDI:
        """Primer (unchanged) + the decoded continuation, as a PrettyMIDI."""
        tok = self.tokenizer
        decoded = tok.decode_score(primer.context + ids)
        state = tok.grammar().walk(ids, primer.grammar_state(tok))
        end = state.bar_start + state.bar_ticks  # notes ring until the last bar line
        new = [
            replace(n, duration=min(n.duration, end - n.start))
            for n in decoded.notes
            if n.start >= primer.start
        ]
        fine = primer.fine
        if continuation_only or fine is None:
            program = fine.tracks[0] if fine is not None and fine.tracks else Track()
            shift = primer.start
            score = Score(
                tok.ticks_per_quarter,
                [replace(n, start=n.start - shift, velocity=primer.velocity, track=0) for n in new],
                [program],
                [(0, *primer.metre)],
                [(0, primer.tempo)],
            )
            return score_to_pretty_midi(score)
        f = FINE_TICKS_PER_QUARTER // tok.ticks_per_quarter
        notes = list(fine.notes) + [
            Note(n.start * f, n.pitch, n.duration * f, primer.velocity, 0) for n in new
        ]
        score = Score(
            FINE_TICKS_PER_QUARTER, sorted(notes), fine.tracks, fine.time_signatures, fine.tempos
        )
        return score_to_pretty_midi(score)

    def variations(
        self,
        source: Any = None,
        n: int = 4,
        bars: int = Constraints.bars,
        *,
        track: int | None = None,
        continuation_only: bool = False,
        quantize: str = DEFAULT_QUANTIZE,
        **sampling: Any,
    ) -> list[pretty_midi.PrettyMIDI]:
        """``n`` different continuations of one primer, sampled together in one batch.

        Keyword arguments as `continue_midi` (temperature, top_k, top_p, min_p, seed, key,
        pitch_range, quantize).
        """
        primer = self.prepare(source, track=track, quantize=quantize)
        rows = self.generate_ids(primer, n=n, bars=bars, **sampling)
        return [self.to_midi(primer, r, continuation_only=continuation_only) for r in rows]

    def continue_midi(
        self,
        source: Any = None,
        bars: int = Constraints.bars,
        temperature: float = Sampling.temperature,
        top_k: int | None = Sampling.top_k,
        top_p: float | None = Sampling.top_p,
        min_p: float | None = Sampling.min_p,
        seed: int | None = None,
        key: str | Key | None = None,
        *,
        track: int | None = None,
        pitch_range: tuple[int, int] | None = None,
        continuation_only: bool = False,
        quantize: str = DEFAULT_QUANTIZE,
    ) -> pretty_midi.PrettyMIDI:
        """Continue a melody by ``bars`` bars; with no source, compose ``bars`` bars.

        Args:
            source: path, bytes, file object, PrettyMIDI or mido.MidiFile (None: from scratch).
            bars: bars to add (1-256).
            temperature, top_k, top_p, min_p: sampling (see `musegen.generate.filters`).
            seed: same seed and inputs give the same notes (None: random).
            key: "auto" (the primer's key), a name like "D major" / "E dorian", or None.
            track: which track of a multi-track file to continue (None: all non-drum notes).
            pitch_range: (low, high) MIDI pitches the continuation may use.
            continuation_only: return only the new bars, starting at time 0.
            quantize: how the model reads played-in timing: "auto" (snap a clip that is off
                the grid to the grid that fits it best), "off", or a grid such as "1/16",
                "1/8T", "1/8 swing" (`musegen.quantize.MODES`). Your notes stay unchanged.
        """
        return self.variations(
            source,
            1,
            bars,
            track=track,
            continuation_only=continuation_only,
            quantize=quantize,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            min_p=min_p,
            seed=seed,
            key=key,
            pitch_range=pitch_range,
        )[0]

    # ------------------------------------------------------------------ infilling

    @property
    def infill_form(self) -> str | None:
        """How this model was taught to infill ("psm" or "spm"), None if it was not."""
        training = self.config.get("training", {}).get("config", {})
        if not self.tokenizer.infill or not training.get("infill_rate"):
            return None
        return training.get("infill_form", "psm")

    def _check_infill(self) -> str:
        form = self.infill_form
        if form is None:
            raise ConfigError(
                f"model {self.name!r} was trained without infilling, so it can only continue; "
                "load a model trained with infilling (musegen train ... --infill-rate 0.5)"
            )
        return form

    def plan_infill(self, primer: Primer, first_bar: int, last_bar: int) -> Gap:
        """Where bars ``first_bar``-``last_bar`` (1-based, included) of a prepared clip are,
        and what the model reads to write them."""
        form = self._check_infill()
        if primer.fine is None:
            raise ConfigError("infilling needs a clip: give a MIDI file whose bars to rewrite")
        check_metres(self.tokenizer, primer.fine.time_signatures)
        return plan_gap(self.tokenizer, primer.grid, first_bar, last_bar, form, self.window)

    @property
    def window(self) -> int:
        """The longest sequence infilling gives the model: its training length, and no more
        than a Transformer's context."""
        trained = int(self.config.get("training", {}).get("config", {}).get("seq_len", 512))
        return min(trained, self.runtime.window or trained)

    def infill_ids(
        self,
        primer: Primer,
        gap: Gap,
        *,
        n: int = 1,
        seed: int | None = None,
        key: str | Key | None = None,
        pitch_range: tuple[int, int] | None = None,
        stop: Event | None = None,
        candidates: int = INFILL_CANDIDATES,
        **sampling_options: Any,
    ) -> list[list[int]]:
        """Token ids of ``n`` fillings of a planned gap (each ends with EOS); ``stop`` as in
        `generate_ids`.

        With ``candidates`` k > 1, each filling is the best of k sampled ones: the one after
        which the model finds the clip's next bar most likely (`lead_in_cost`), so the new bars
        lead into what follows. A gap at the clip's end has no next bar: k is then 1.
        """
        if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
            raise ConfigError(
                f"candidates must be a whole number from 1, e.g. 4 (got {candidates!r})"
            )
        k = candidates if gap.after else 1
        constraints = self._constraints(primer, gap.bars, key, pitch_range)
        rows = generate(
            self.runtime,
            self.tokenizer,
            gap.context,
            n=n * k,
            constraints=constraints,
            sampling=Sampling(**sampling_options),
            seed=seed,
            start=gap.state,
            stop=stop,
        )
        if k == 1:
            return rows
        groups = [rows[i : i + k] for i in range(0, len(rows), k)]
        before, after = gap.arranged.plain_before, gap.after
        return [group[int(np.argmin(self.lead_in_costs(before, group, after)))] for group in groups]

    def lead_in_costs(
        self, before: list[int], rows: list[list[int]], after: list[int]
    ) -> list[float]:
        """`lead_in_cost` of each filling in ``rows``, all read after the same end of
        ``before``: the longest that leaves room in the model's window for every filling and
        the bar ``after``.

        Where that shared part is longer than the longest filling with the bar after it, it is
        read once and the fillings are stepped on from it together (`_stepped_costs`);
        otherwise each filling is read whole, which is faster there, since a step costs a
        token more than a prefill does. On torch and float32 graphs the two agree to rounding;
        int8 graphs quantize a whole batch with one scale, so a stepped cost moves a little
        (up to about 2%) with the other rows beside it. Nothing read here is kept as a
        prefill (`Runtime.read`)."""
        tails = [self._body(ids) + after for ids in rows]
        longest = max(len(t) for t in tails)
        room = self.window - longest
        if room < 1:  # a filling fills the window: each is read in its own
            return [self.lead_in_cost(before, ids, after) for ids in rows]
        shared = before[-room:]
        if len(shared) > longest and after:
            return self._stepped_costs(shared, tails, len(after))
        return [self.lead_in_cost(shared, ids, after) for ids in rows]

    def _stepped_costs(self, shared: list[int], tails: list[list[int]], last: int) -> list[float]:
        """The loss (nats) of the ``last`` ids of each tail, read after ``shared``: one
        prefill of ``shared``, then every tail stepped in a batch row of its own (the fast
        path of `lead_in_cost`, which reads each whole sequence again)."""
        longest = max(len(t) for t in tails)
        logits, state = self.runtime.read(shared)  # (len(shared), V), not kept
        state = self.runtime.repeat(state, len(tails))
        costs = np.zeros(len(tails), dtype=np.float64)
        starts = np.array([len(t) - last for t in tails])  # where each row's scored ids begin
        step_logits = logits[-1:].repeat(len(tails), axis=0)  # (rows, V): predicts tails[:, 0]
        for t in range(longest):
            targets = np.array([tail[t] if t < len(tail) else 0 for tail in tails])  # (rows,)
            scored = (t >= starts) & (t < starts + last)
            if scored.any():
                costs[scored] += _nll_from_logits(step_logits, targets)[scored]
            if t + 1 < longest:
                step_logits, state = self.runtime.step(targets.astype(np.int64), state)
        return [float(c) for c in costs]

    def lead_in_cost(self, before: list[int], ids: list[int], after: list[int]) -> float:
        """How unlikely the bar ``after`` a gap is once ``ids`` fill it, read left to right
        from the plain sequence ``before`` the gap (nats): the lower, the better the filling
        leads on. As `infill_ids(candidates=...)` ranks fillings (with `lead_in_costs`).
        With no bar after the gap there is nothing to lead into: 0."""
        if not after:
            return 0.0
        seq = (before + self._body(ids) + after)[-self.window :]
        nll = self._token_nll(np.asarray(seq, dtype=np.int64))  # (len - 1,)
        return float(nll[-len(after) :].sum())

    def _body(self, ids: list[int]) -> list[int]:
        """A filling's tokens without its EOS."""
        return [t for t in ids if t != self.tokenizer.eos_id]

    def infill_to_midi(self, primer: Primer, gap: Gap, ids: list[int]) -> pretty_midi.PrettyMIDI:
        """The clip with the gap's notes replaced by the generated ones; every note outside
        the gap is the user's own, unchanged."""
        tok = self.tokenizer
        fine = primer.fine
        if fine is None:
            raise ConfigError("infilling needs a clip: give a MIDI file whose bars to rewrite")
        onsets = np.array([n.start for n in fine.notes], dtype=np.int64)
        if primer.snap is not None:  # a played-in note belongs to the bar it is snapped into
            onsets = snapped_onsets(fine, primer.snap)
        replaced = in_gap(onsets, FINE_TICKS_PER_QUARTER, tok.ticks_per_quarter, gap)
        f = FINE_TICKS_PER_QUARTER // tok.ticks_per_quarter
        kept = [n for n, r in zip(fine.notes, replaced, strict=True) if not r]
        new = [
            Note(n.start * f, n.pitch, n.duration * f, primer.velocity, 0)
            for n in new_notes(tok, gap, ids)
        ]
        tracks, notes = with_other_tracks(primer.source, primer.track, fine, kept + new)
        score = Score(
            FINE_TICKS_PER_QUARTER, sorted(notes), tracks, fine.time_signatures, fine.tempos
        )
        return score_to_pretty_midi(score)

    def infill_variations(
        self,
        source: Any,
        start_bar: int,
        end_bar: int,
        n: int = 4,
        *,
        track: int | None = None,
        quantize: str = DEFAULT_QUANTIZE,
        **sampling: Any,
    ) -> list[pretty_midi.PrettyMIDI]:
        """``n`` different fillings of bars ``start_bar``-``end_bar``, sampled in one batch.

        Keyword arguments as `infill`."""
        primer = self.prepare(source, track=track, quantize=quantize)
        gap = self.plan_infill(primer, start_bar, end_bar)
        rows = self.infill_ids(primer, gap, n=n, **sampling)
        return [self.infill_to_midi(primer, gap, r) for r in rows]

    def infill(
        self,
        source: Any,
        start_bar: int,
        end_bar: int,
        *,
        temperature: float = Sampling.temperature,
        top_k: int | None = Sampling.top_k,
        top_p: float | None = Sampling.top_p,
        min_p: float | None = Sampling.min_p,
        seed: int | None = None,
        key: str | Key | None = None,
        track: int | None = None,
        pitch_range: tuple[int, int] | None = None,
        quantize: str = DEFAULT_QUANTIZE,
        candidates: int = INFILL_CANDIDATES,
    ) -> pretty_midi.PrettyMIDI:
        """Regenerate bars ``start_bar``-``end_bar`` of a clip, knowing what comes after them.

        Bars are numbered from 1 as a DAW shows them, both ends included (at most
        `musegen.options.MAX_GAP_BARS`). The new bars keep the clip's metre and lead into the
        bar after the gap; every note outside the gap comes back unchanged. The model must
        have been trained with infilling (`infill_form`). ``candidates``: sample that many and
        keep the one that leads best into the next bar (`infill_ids`). Other arguments as
        `continue_midi`.
        """
        return self.infill_variations(
            source,
            start_bar,
            end_bar,
            1,
            track=track,
            quantize=quantize,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            min_p=min_p,
            seed=seed,
            key=key,
            pitch_range=pitch_range,
            candidates=candidates,
        )[0]

    def bridge(
        self,
        a: Any,
        b: Any,
        bars: int = BRIDGE_BARS,
        *,
        n: int | None = None,
        track: int | None = None,
        quantize: str = DEFAULT_QUANTIZE,
        **sampling: Any,
    ) -> Any:
        """Clip ``a``, then ``bars`` new bars that lead from it into clip ``b``, then ``b``.

        ``b`` starts ``bars`` bars after the bar line that follows ``a``'s last note, in ``a``'s
        metre; both clips' notes come back unchanged. With ``n``, a list of ``n`` variations
        sampled in one batch; otherwise one PrettyMIDI. Other arguments as `infill`.
        """
        check_gap_bars(bars)
        self._check_infill()
        first = self.prepare(a, track=track, quantize=quantize)
        second = self.prepare(b, track=track, quantize=quantize)
        if first.fine is None or second.fine is None:
            raise ConfigError("a bridge needs two clips: give the MIDI files to join")
        f = FINE_TICKS_PER_QUARTER // self.tokenizer.ticks_per_quarter
        bar_ticks = self.tokenizer.bar_ticks(*first.metre)
        offset = (first.start + bars * bar_ticks) * f
        joined = midi_bytes(join(first.fine, second.fine, offset))
        gap_bar = self.tokenizer.grammar().walk(first.context).bars
        outs = self.infill_variations(
            joined,
            gap_bar,
            gap_bar + bars - 1,
            1 if n is None else n,
            quantize=first.quantized or "off",  # a's notes land where the gap was planned
            **sampling,
        )
        return outs[0] if n is None else outs

    def stream(
        self,
        source: Any = None,
        bars: int = Constraints.bars,
        *,
        track: int | None = None,
        channel: int = 0,
        quantize: str = DEFAULT_QUANTIZE,
        **sampling: Any,
    ) -> Iterator[Any]:
        """Yield ``mido.Message`` note_on/note_off as the continuation is generated.

        ``.time`` is the delta in seconds since the previous message at the primer's tempo
        (as ``mido.MidiFile.play`` yields them), counted from the continuation's start.
        The notes equal those of ``continue_midi(..., continuation_only=True)`` with the same
        arguments and seed.
        """
        import mido

        if not isinstance(channel, int) or not 0 <= channel <= 15:
            raise ConfigError(f"channel must be a whole number from 0 to 15 (got {channel})")
        primer = self.prepare(source, track=track, quantize=quantize)
        tok = self.tokenizer
        constraints = self._constraints(
            primer, bars, sampling.pop("key", None), sampling.pop("pitch_range", None)
        )
        seed = sampling.pop("seed", None)
        spq = 60.0 / primer.tempo / tok.ticks_per_quarter  # seconds per grid tick
        grammar = tok.grammar()
        state = primer.grammar_state(tok)
        pending: list[tuple[int, int]] = []  # (end tick, pitch) of sounding notes
        clock = primer.start  # tick of the last message sent
        for _, token in generate_iter(
            self.runtime,
            tok,
            primer.context,
            n=1,
            constraints=constraints,
            sampling=Sampling(**sampling),
            seed=seed,
            start=state,
        ):
            state = grammar.advance(state, token)
            if state.phase != Phase.DUR:
                continue
            onset = state.bar_start + state.position
            end = onset + tok.durations[int(tok.token_value[token])]
            for off_tick, pitch in sorted(p for p in pending if p[0] <= onset):
                yield mido.Message(
                    "note_off",
                    channel=channel,
                    note=pitch,
                    velocity=0,
                    time=(off_tick - clock) * spq,
                )
                clock = off_tick
                pending.remove((off_tick, pitch))
            yield mido.Message(
                "note_on",
                channel=channel,
                note=state.pitch,
                velocity=primer.velocity,
                time=(onset - clock) * spq,
            )
            clock = onset
            pending.append((end, state.pitch))
        end = state.bar_start + state.bar_ticks
        for off_tick, pitch in sorted((min(t, end), p) for t, p in pending):
            yield mido.Message(
                "note_off", channel=channel, note=pitch, velocity=0, time=(off_tick - clock) * spq
            )
            clock = off_tick

    # ------------------------------------------------------------------ scoring

    def score(
        self, source: Any, *, track: int | None = None, quantize: str = DEFAULT_QUANTIZE
    ) -> dict:
        """How surprising a melody is to this model: bits per note and pitch bits per note.

        ``quantize`` as in `continue_midi`: the model scores what it would read."""
        source = _reusable(source)
        tok = self.tokenizer
        _, grid, used = read_for_model(source, track, None, quantize, tok.ticks_per_quarter)
        # unquantized: encode() reads it again and says what is wrong with a file without notes
        ids = tok.encode_score(grid) if used else tok.encode(source, track=track)
        ids = np.asarray(ids, dtype=np.int64)
        notes = int(np.isin(ids, self.tokenizer.pitch_ids).sum())
        result = bits_per_note([self._token_nll(ids)], [ids], [notes], self.tokenizer)
        return {
            "notes": result["notes"],
            "bits_per_note": result["bits_per_note"],
            "pitch_bits_per_note": result["pitch_bits_per_note"],
        }

    def _token_nll(self, ids: np.ndarray) -> np.ndarray:
        """Loss (nats) of ``ids[1:]``, each given the ids before it, on any runtime.

        As `musegen.evaluate.token_nll`: a sequence longer than a Transformer's window is
        read in windows that overlap by half (every id keeps at least half a window)."""
        window = self.runtime.window or len(ids)
        out = np.zeros(max(len(ids) - 1, 0), dtype=np.float64)
        done = start = 0  # ids[1 : done + 1] are scored
        while done < len(ids) - 1:
            chunk = ids[start : start + window]
            logits, _ = self.runtime.read([int(i) for i in chunk[:-1]])  # (len - 1, V)
            nll = _nll_from_logits(logits, chunk[1:])
            out[done : start + len(chunk) - 1] = nll[done - start :]
            done = start + len(chunk) - 1
            start += window // 2
        return out


def _nll_from_logits(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Natural-log loss of each target id under its row of logits (T, V) -> (T,)."""
    logits = logits.astype(np.float64)
    top = logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    return log_z - logits[np.arange(len(targets)), targets]


def load(
    name_or_dir: str | Path = DEFAULT_MODEL,
    device: str = "cpu",
    *,
    runtime: str = DEFAULT_RUNTIME,
    threads: int | None = None,
    precision: str = DEFAULT_PRECISION,
) -> MuseGen:
    """Load a shipped model (``"lstm"``, ``"transformer"``, ``"mamba"``) or a checkpoint dir.

    ``runtime``: "onnx" runs the checkpoint's exported graphs with ONNX Runtime (no torch
    needed), "torch" the PyTorch model (any ``device``), "auto" ONNX Runtime when it is
    installed and the checkpoint has graphs, else torch (`musegen.runtime`).
    ``threads``: intra-op threads for generation (None: $MUSEGEN_THREADS, else 1, which suits
    batch-1 generation and keeps it fast while other programs, a DAW say, keep cores busy; 0
    leaves the runtime's own setting alone). With torch the setting is process-wide. Unless
    it is set, ONNX Runtime reads the primer (the prefill) with 2 threads
    (`musegen.options.prefill_threads`).
    ``precision`` (ONNX Runtime): "int8" runs the weight products in 8 bits (1.5-3x
    faster steps on a CPU, bits per note within 0.3%), "float32" the
    model as trained, "auto" int8 where the checkpoint has int8 graphs (`musegen.runtime`).
    """
    n = generation_threads(threads)
    path = ckpt.resolve(name_or_dir)
    kind = choose_runtime(runtime, path, str(device))
    bits = choose_precision(precision, kind, path)
    if kind == "onnx":
        from musegen.runtime.onnx_runtime import OnnxRuntime

        tokenizer, config = ckpt.read_checkpoint(path)
        runtime = OnnxRuntime(
            path, threads=n, prefill_threads=prefill_threads(threads), precision=bits
        )
        return MuseGen(runtime, tokenizer, config, str(name_or_dir))
    import torch

    if n:
        torch.set_num_threads(n)
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(
            f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps' (got {device!r})"
        ) from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but PyTorch sees no CUDA GPU; use 'cpu'")
    model, tokenizer, config = ckpt.load_checkpoint(path, device=device)
    return MuseGen(model, tokenizer, config, str(name_or_dir))
