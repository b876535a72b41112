"""Call and response: listen to a player on a MIDI input, answer when they pause for a bar.

The player's phrase starts with its first note, which is taken to fall on a bar line: that
note sets the beat grid (``bpm``, or the tempo read from the phrase's onsets when no bpm is
given) in ``metre``. When nothing has sounded since the bar line after the phrase's last note,
the model continues the phrase (timing read as played in: `musegen.quantize`) and the answer
starts one bar later, after a bar of rest, on the grid; if the player plays again before then,
the answer is dropped and the phrase goes on. A note played over an answer stops it and
starts a new phrase. After an answer, the next note starts a new phrase too.

`Conversation` is the logic on timed messages (tested with a fake clock and fake ports);
`converse` runs it between two ports.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

from musegen.errors import MuseGenError
from musegen.generate.notes import QNote, bar_qn, continuation

log = logging.getLogger(__name__)

MIN_IOI = 0.04  # seconds: onsets closer than this are one chord when reading the tempo


def beat_from_onsets(onsets: list[float]) -> float | None:
    """Seconds per quarter note read from played onsets (None: too few to tell): the median
    gap between onsets, doubled or halved into 0.3-1.0 s (60-200 quarter notes a minute)."""
    chords: list[float] = []  # onsets closer than MIN_IOI to the previous chord join it
    for t in sorted(onsets):
        if not chords or t - chords[-1] > MIN_IOI:
            chords.append(t)
    gaps = [b - a for a, b in zip(chords, chords[1:], strict=False)]
    if len(gaps) < 2:
        return None
    beat = statistics.median(gaps)
    while beat < 0.3:
        beat *= 2
    while beat > 1.0:
        beat /= 2
    return beat


class Conversation:
    """Hear a player's messages (`hear`), get the answer's messages when due (`tick`)."""

    def __init__(
        self,
        model: Any,
        *,
        bars: int = 4,
        bpm: float | None = None,
        metre: tuple[int, int] = (4, 4),
        **options: Any,
    ) -> None:
        self.model, self.bars, self.metre, self.options = model, bars, metre, options
        self.fixed_beat = None if bpm is None else 60.0 / bpm
        self._reset()
        self.answers = 0  # how many answers were given (played to the start)

    def _reset(self) -> None:
        self.origin: float | None = None  # time of the phrase's first note: a bar line
        self.phrase: list[tuple[float, float, int, int]] = []  # (start, end, pitch, vel) s
        self.sounding: dict[int, tuple[float, int]] = {}  # pitch -> (start, velocity)
        self.channel = 0
        self.answer: list[tuple[float, Any]] = []  # (due time, message), in time order
        self.answered_at: float | None = None  # the bar line the answer was made at
        self.playing: set[int] = set()  # answer notes now sounding

    @property
    def beat(self) -> float | None:
        """Seconds per quarter note of the grid."""
        if self.fixed_beat is not None:
            return self.fixed_beat
        return beat_from_onsets(sorted(s for s, _, _, _ in self.phrase))

    def _bar_line_after(self, t: float) -> float:
        """The first bar line of the grid at or after time ``t``."""
        bar = bar_qn(self.metre) * self.beat
        n = -(-round((t - self.origin) * 1e6) // round(bar * 1e6))
        return self.origin + n * bar

    def hear(self, msg: Any, t: float) -> list[Any]:
        """A message played at time ``t``; returns messages to send at once (the note-offs of
        an answer it interrupts)."""
        out: list[Any] = []
        if msg.type == "note_on" and msg.velocity > 0:
            if self.answered_at is not None:  # an answer is waiting or playing
                began = t >= self.answered_at + self._bar_s()
                out = self._stop_answer()
                if began:
                    self._reset()  # this note starts a new phrase
                else:
                    self.answered_at = None  # the phrase goes on; answer its next pause
            if self.origin is None:
                self.origin = t
            self.sounding[msg.note] = (t, msg.velocity)
            self.channel = msg.channel
        elif msg.type in ("note_off", "note_on") and msg.note in self.sounding:
            start, velocity = self.sounding.pop(msg.note)
            self.phrase.append((start, max(t, start + 1e-3), msg.note, velocity))
        return out

    def _bar_s(self) -> float:
        return bar_qn(self.metre) * (self.beat or 0.5)

    def _stop_answer(self) -> list[Any]:
        import mido

        offs = [
            mido.Message("note_off", channel=self.channel, note=p, velocity=0)
            for p in sorted(self.playing)
        ]
        self.answer, self.playing = [], set()
        return offs

    def tick(self, t: float) -> list[Any]:
        """The answer's messages due by time ``t``; makes the answer when the pause begins."""
        if self.answer:
            due = []
            while self.answer and self.answer[0][0] <= t:
                msg = self.answer.pop(0)[1]
                due.append(msg)
                if msg.type == "note_on":
                    self.playing.add(msg.note)
                else:
                    self.playing.discard(msg.note)
            if not self.answer and due:
                self.answers += 1
                self._reset()  # the next note starts a new phrase
            return due
        if not self.phrase or self.sounding or self.answered_at is not None:
            return []
        if self.beat is None:
            return []
        last_end = max(e for _, e, _, _ in self.phrase)
        bar_line = self._bar_line_after(last_end)
        if t < bar_line:
            return []
        self.answered_at = bar_line
        try:
            self.answer = self._make_answer()
        except MuseGenError as e:  # a phrase the model cannot answer: listen on
            log.warning("no answer to that phrase: %s", e)
            self._reset()
        return []

    def _make_answer(self) -> list[tuple[float, Any]]:
        """The continuation, as timed messages starting one bar after the model's start."""
        import mido

        beat = self.beat
        notes: list[QNote] = [
            ((s - self.origin) / beat, (e - self.origin) / beat, p, v) for s, e, p, v in self.phrase
        ]
        start, new = continuation(
            self.model, notes, self.metre, bars=self.bars, quantize="auto", **self.options
        )
        # the model's continuation starts at `start`; the answer waits one bar of rest after
        # the phrase: shift it to the bar line after the pause began
        shift = self.answered_at + bar_qn(self.metre) * beat - (self.origin + start * beat)
        timed = []
        for s, e, p, v in new:
            on = self.origin + s * beat + shift
            off = self.origin + e * beat + shift
            timed.append((on, mido.Message("note_on", channel=self.channel, note=p, velocity=v)))
            timed.append((off, mido.Message("note_off", channel=self.channel, note=p, velocity=0)))
        timed.sort(key=lambda x: (x[0], x[1].type == "note_on"))  # offs before ons
        return timed


def converse(
    conversation: Conversation,
    inport: Any,
    outport: Any,
    *,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    until: Callable[[], bool] = lambda: False,
    poll_s: float = 0.001,
) -> None:
    """Listen on ``inport`` and answer on ``outport`` until ``until()`` (or Ctrl-C); every
    note of an answer still sounding is switched off at the end."""
    try:
        while not until():
            for msg in inport.iter_pending():
                for out in conversation.hear(msg, clock()):
                    outport.send(out)
            for out in conversation.tick(clock()):
                outport.send(out)
            sleep(poll_s)
    finally:
        for out in conversation._stop_answer():
            outport.send(out)
