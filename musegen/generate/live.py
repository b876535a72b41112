"""Play a continuation live on a MIDI output port as it is generated (mido + python-rtmidi)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from musegen.errors import MuseGenError


def _names(direction: str) -> list[str]:
    """Names of the MIDI ports of this machine, "input" or "output"."""
    import mido

    try:
        return list(getattr(mido, f"get_{direction}_names")())
    except (ImportError, ModuleNotFoundError) as e:
        raise MuseGenError(
            "live MIDI needs the python-rtmidi backend: pip install 'musegen[live]'"
        ) from e


def _open(direction: str, name: str | None) -> Any:
    """Open a port by name (None: the system's default port)."""
    import mido

    names = _names(direction)
    if name is not None and name not in names:
        listing = ", ".join(repr(n) for n in names) or "none"
        raise MuseGenError(
            f"no MIDI {direction} port {name!r}; ports: {listing} (see musegen ports)"
        )
    try:
        return getattr(mido, f"open_{direction}")(name)
    except (OSError, ValueError) as e:
        raise MuseGenError(f"cannot open MIDI port {name!r}: {e}") from e


def output_names() -> list[str]:
    """Names of the MIDI output ports of this machine."""
    return _names("output")


def input_names() -> list[str]:
    """Names of the MIDI input ports of this machine (what `musegen play --listen` hears)."""
    return _names("input")


def open_output(name: str | None) -> Any:
    """Open an output port by name (None: the system's default port)."""
    return _open("output", name)


def open_input(name: str) -> Any:
    """Open an input port by name."""
    return _open("input", name)


def play(
    messages: Iterable[Any],
    port: Any,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.perf_counter,
) -> int:
    """Send messages whose ``.time`` is the delta in seconds, keeping to the schedule even when
    generating the next message takes time. Returns the number of messages sent. All notes
    are switched off if playing stops early (Ctrl-C)."""
    start = clock()
    due = 0.0
    sent = 0
    sounding: set[tuple[int, int]] = set()
    try:
        for msg in messages:
            due += msg.time
            wait = start + due - clock()
            if wait > 0:
                sleep(wait)
            port.send(msg.copy(time=0))
            sent += 1
            if msg.type == "note_on" and msg.velocity > 0:
                sounding.add((msg.channel, msg.note))
            elif msg.type in ("note_off", "note_on"):
                sounding.discard((msg.channel, msg.note))
    finally:
        import mido

        for channel, note in sorted(sounding):
            port.send(mido.Message("note_off", channel=channel, note=note, velocity=0))
    return sent
