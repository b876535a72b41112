"""Live playing: messages go out on schedule to a port (a fake one here), notes never hang."""

from __future__ import annotations

import mido
import pytest

import musegen
from musegen.errors import ConfigError
from musegen.generate.live import play


class FakePort:
    name = "fake"

    def __init__(self):
        self.sent: list[tuple[float, mido.Message]] = []
        self.now = 0.0

    def send(self, msg):
        self.sent.append((self.now, msg))


class FakeClock:
    """A clock that only moves when slept on (plus a fixed cost per generated message)."""

    def __init__(self, port: FakePort, cost: float = 0.0):
        self.port, self.cost, self.t = port, cost, 0.0

    def __call__(self) -> float:
        self.t += self.cost
        self.port.now = self.t
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.t += seconds
        self.port.now = self.t


def messages(times):
    out = []
    for i, t in enumerate(times):
        kind = "note_on" if i % 2 == 0 else "note_off"
        out.append(
            mido.Message(kind, note=60 + i // 2, velocity=80 if kind == "note_on" else 0, time=t)
        )
    return out


def test_messages_are_sent_on_schedule():
    port = FakePort()
    clock = FakeClock(port, cost=0.01)
    sent = play(messages([0.0, 0.5, 0.0, 0.25]), port, sleep=clock.sleep, clock=clock)
    assert sent == 4
    times = [round(t, 6) for t, _ in port.sent]
    assert times == pytest.approx([0.01, 0.5 + 0.01, 0.52, 0.76], abs=0.011)
    assert all(m.time == 0 for _, m in port.sent)


def test_notes_are_switched_off_when_stopped_early():
    port = FakePort()
    clock = FakeClock(port)

    def interrupted():
        yield mido.Message("note_on", note=64, velocity=90, time=0.1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        play(interrupted(), port, sleep=clock.sleep, clock=clock)
    assert [(m.type, m.note) for _, m in port.sent] == [("note_on", 64), ("note_off", 64)]


def test_stream_to_fake_port_plays_the_continuation(folk_midis):
    model = musegen.load("lstm")
    port = FakePort()
    clock = FakeClock(port)
    n = play(model.stream(folk_midis[0], bars=2, seed=4), port, sleep=clock.sleep, clock=clock)
    ons = [m for _, m in port.sent if m.type == "note_on"]
    offs = [m for _, m in port.sent if m.type == "note_off"]
    assert n == len(port.sent) and ons and len(ons) == len(offs)


def test_bad_channel_is_a_config_error(folk_midis):
    with pytest.raises(ConfigError, match="channel"):
        next(musegen.load("lstm").stream(folk_midis[0], channel=16))
