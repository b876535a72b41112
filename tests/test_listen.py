"""Call and response (`musegen play --listen`) against fake MIDI ports."""

from __future__ import annotations

import time

import mido
import pytest

import musegen
from musegen.generate.listen import Conversation, beat_from_onsets, converse


@pytest.fixture(scope="module")
def model():
    return musegen.load("lstm")


def phrase(beat: float, pitches: list[int], start: float = 0.0) -> list[tuple[float, object]]:
    """Quarter notes, each held for 80% of a beat, as (time, message) from ``start``."""
    out = []
    for i, p in enumerate(pitches):
        t = start + i * beat
        out.append((t, mido.Message("note_on", note=p, velocity=90)))
        out.append((t + 0.8 * beat, mido.Message("note_off", note=p, velocity=0)))
    return out


class FakeInput:
    """An input port that delivers scheduled messages once the clock reaches them."""

    def __init__(self, events, clock):
        self.events, self.clock, self.start = list(events), clock, clock()

    def iter_pending(self):
        while self.events and self.start + self.events[0][0] <= self.clock():
            yield self.events.pop(0)[1]


class FakeOutput:
    def __init__(self, clock):
        self.clock, self.sent = clock, []

    def send(self, msg):
        self.sent.append((self.clock(), msg))


def test_answer_comes_on_the_grid_a_bar_after_the_pause(model):
    """240 bpm, 4/4 (a bar is 1 s): two bars of quarter notes, then silence. The answer must
    start at the bar line after a bar of rest (3 s) and every note lands on the 16th grid,
    each sent within 100 ms of its time (in practice a few ms)."""
    beat = 0.25
    clock = time.perf_counter
    inport = FakeInput(phrase(beat, [62, 64, 66, 67, 69, 71, 73, 74]), clock)
    outport = FakeOutput(clock)
    conversation = Conversation(model, bars=1, bpm=240, seed=3)
    planned, origins = [], []  # the answer's schedule as made, and the grid's origin
    make = conversation._make_answer

    def spy():
        origins.append(conversation.origin)
        planned.extend(make())
        return list(planned)

    conversation._make_answer = spy
    start = inport.start
    converse(conversation, inport, outport, until=lambda: clock() - start > 4.3)
    (origin,) = origins
    assert 0 <= origin - start < 0.01  # the first note, heard at once
    ons = [(t - start, m) for t, m in outport.sent if m.type == "note_on"]
    assert ons and conversation.answers == 1
    assert all(3.0 - 0.002 <= t < 4.0 + 0.1 for t, _ in ons)  # in the answer's bar
    grid = beat / model.tokenizer.ticks_per_quarter  # the model's finest step
    assert len(planned) == len(outport.sent)
    for (due, msg), (sent_at, sent) in zip(planned, outport.sent, strict=True):
        assert msg == sent
        steps = (due - origin) / grid  # on the grid of the played tempo
        # on the grid to a microsecond (the clock's times are large floats: exact equality
        # would test their rounding)
        assert abs(steps - round(steps)) * grid < 1e-6, (due - origin, steps)
        assert 0 <= sent_at - due < 0.1  # sent on time: within 100 ms, in practice a few
    offs = [m.note for _, m in outport.sent if m.type == "note_off"]
    assert sorted(offs) == sorted(m.note for _, m in ons)  # nothing left sounding


def drive(conversation, events, until: float, step: float = 0.005):
    """Feed ``events`` on a fake clock; returns (time, message) of what it sent."""
    sent, events = [], sorted(events, key=lambda e: e[0])
    for i in range(round(until / step)):
        t = round(i * step, 9)
        while events and events[0][0] <= t:
            sent += [(t, m) for m in conversation.hear(events.pop(0)[1], t)]
        sent += [(t, m) for m in conversation.tick(t)]
    return sent


def test_playing_again_before_the_answer_drops_it(model):
    """A pause shorter than a bar of rest: no answer until the phrase really ends."""
    beat = 0.5  # 120 bpm, 4/4: a bar is 2 s
    first = phrase(beat, [60, 62, 64, 65])  # bar 1; then a rest of a bar and a half
    more = phrase(beat, [67, 65, 64, 62], start=3.5)  # resumes before the answer's 4.0
    conversation = Conversation(model, bars=1, bpm=120, seed=1)
    sent = drive(conversation, first + more, until=9.0)
    ons = [t for t, m in sent if m.type == "note_on"]
    # the phrase ends at 5.4; bar line 6.0; answer after a bar of rest: from 8.0
    assert ons and min(ons) >= 8.0 - 1e-9


def test_a_note_over_the_answer_stops_it_and_starts_a_new_phrase(model):
    beat = 0.5
    conversation = Conversation(model, bars=4, bpm=120, seed=2)
    events = phrase(beat, [60, 62, 64, 65, 67, 69, 71, 72])  # two bars; answer from 6.0
    interrupt = [(7.0, mido.Message("note_on", note=50, velocity=80))]
    sent = drive(conversation, events + interrupt, until=7.5)
    assert any(m.type == "note_on" for t, m in sent if t >= 6.0)  # it had begun
    after = [m for t, m in sent if t >= 7.0]
    assert all(m.type == "note_off" for m in after)  # stopped: only note-offs after the note
    assert conversation.origin == 7.0 and not conversation.answer  # a new phrase


def test_tempo_is_read_from_the_onsets():
    assert beat_from_onsets([0.0, 0.5, 1.0, 1.5]) == pytest.approx(0.5)
    assert beat_from_onsets([0.0, 0.2, 0.4, 0.6]) == pytest.approx(0.4)  # 8ths at 150: x2
    assert beat_from_onsets([0.0, 0.01, 0.5, 0.51, 1.0]) == pytest.approx(0.5)  # chords
    assert beat_from_onsets([0.0]) is None


def test_listen_without_bpm_follows_the_played_tempo(model):
    beat = 0.4  # 150 bpm
    conversation = Conversation(model, bars=1, seed=5)
    sent = drive(conversation, phrase(beat, [62, 64, 66, 67, 69, 71, 73, 74]), until=6.0)
    ons = [t for t, m in sent if m.type == "note_on"]
    bar = 4 * beat  # phrase ends at 3.12 -> bar line 3.2 -> answer from 4.8
    assert ons and min(ons) >= 3 * bar - 1e-9
    grid = beat / model.tokenizer.ticks_per_quarter
    assert all(0 <= t - round(t / grid) * grid < 0.005 + 1e-9 for t in ons)  # the clock's step
