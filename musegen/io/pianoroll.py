"""Piano-roll pictures (PNG) read as in a DAW, drawn straight into pixels with Pillow.

The time axis is in bars (numbered from 1, bar lines across, beats marked under the axis), the
pitch axis names the notes and shades the black keys' rows. The primer's notes are grey-blue,
the model's orange; regenerated bars are a shaded span.

Drawn with matplotlib, a 38-bar continuation's roll took 230-250 ms on the 2-core EPYC, most of
it building and measuring axis ticks: longer than generating the music, and the demo draws one
per take. Here `layout` works out what goes where (pure, and what the tests read), and `draw`
paints it: a few ms.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import pretty_midi

from musegen.errors import ConfigError
from musegen.io.audio import Split, is_new

PRIMER_COLOUR = "#7f8c9a"  # grey-blue: what the user gave
CONTINUATION_COLOUR = "#e4572e"  # orange: what the model wrote
BLACK_KEY_ROW = "#f2f2f2"
BAR_LINE = "#bbbbbb"
SPAN_ALPHA = 0.12  # the shading of regenerated bars
BLACK_KEYS = {1, 3, 6, 8, 10}  # pitch classes shaded in the piano roll
MAX_BAR_LABELS = 24  # more bars than this: number every 2nd, 3rd, ...
MAX_PITCH_LABELS = 22  # more white keys than this: name only the Cs

WIDTH, HEIGHT = 1000, 320  # px
LEFT, RIGHT, BOTTOM = 45, 990, 272  # the plot's edges, px
TOP, TOP_TITLED = 10, 32
NOTE_HEIGHT = 0.8  # of a pitch row
TICK, BEAT_MARK = 5, 3  # px under (or left of) the axis
DASH, GAP = 4, 3  # px of the split lines


@dataclass(frozen=True)
class Layout:
    """What a roll shows, in seconds and MIDI pitches (`draw` maps them to pixels)."""

    end: float  # seconds across the plot
    low: int  # lowest and highest pitch row
    high: int
    notes: list[tuple[float, float, int, bool]]  # start, end, pitch, whether new
    downbeats: list[float]  # bar lines
    beats: list[float]  # the other beats, marked under the axis
    bar_labels: list[tuple[float, str]]  # where, which bar (from 1)
    pitch_labels: list[tuple[int, str]]  # pitch, its name
    span: tuple[float, float] | None  # regenerated bars, shaded
    split_lines: list[float]  # where the new notes start (and end)


def layout(pm: pretty_midi.PrettyMIDI, split: Split | None = None) -> Layout:
    """Where everything of ``pm``'s roll goes. Notes starting at or after ``split`` seconds
    are new, earlier ones the primer's; with ``split=(start, end)`` the notes of that span are
    new (regenerated bars) and the span is shaded (`musegen.io.audio.is_new`, as the audio
    splits them). Drums are left out."""
    notes = [n for inst in pm.instruments if not inst.is_drum for n in inst.notes]
    low = max(min((n.pitch for n in notes), default=60) - 2, 0)
    high = min(max((n.pitch for n in notes), default=72) + 2, 127)
    shown = [(n.start, n.end, n.pitch, split is not None and is_new(n.start, split)) for n in notes]
    end = max(pm.get_end_time(), 1.0)
    downbeats = [float(t) for t in pm.get_downbeats() if t <= end + 1e-6]
    bars = set(downbeats)
    beats = [float(t) for t in pm.get_beats() if t <= end + 1e-6 and float(t) not in bars]
    every = max(1, math.ceil(len(downbeats) / MAX_BAR_LABELS))
    bar_labels = [(downbeats[i], str(i + 1)) for i in range(0, len(downbeats), every)]
    names = [p for p in range(low, high + 1) if p % 12 not in BLACK_KEYS]
    if len(names) > MAX_PITCH_LABELS:  # a wide range: name the Cs only
        names = [p for p in names if p % 12 == 0] or [low]
    lines = [] if split is None else list(split) if isinstance(split, tuple) else [split]
    return Layout(
        end=end,
        low=low,
        high=high,
        notes=shown,
        downbeats=downbeats,
        beats=beats,
        bar_labels=bar_labels,
        pitch_labels=[(p, pretty_midi.note_number_to_name(p)) for p in names],
        span=split if isinstance(split, tuple) else None,
        split_lines=lines,
    )


@functools.cache
def _font(size: int):  # -> PIL.ImageFont
    from PIL import ImageFont

    return ImageFont.load_default(size)  # FreeType's Aileron where Pillow has FreeType


def draw(roll: Layout, title: str | None = None):  # -> PIL.Image.Image
    """The picture of ``roll``: WIDTH x HEIGHT pixels, RGB."""
    try:
        from PIL import Image, ImageDraw
    except ImportError as e:
        raise ConfigError("pictures need Pillow: pip install 'musegen[demo]'") from e
    top = TOP_TITLED if title else TOP
    rows = roll.high - roll.low + 1
    row = (BOTTOM - top) / rows  # px per pitch

    def x(t: float) -> float:
        return LEFT + (RIGHT - LEFT) * min(max(t / roll.end, 0.0), 1.0)

    def y(pitch: float) -> float:  # the middle of a pitch's row
        return BOTTOM - (pitch - roll.low + 0.5) * row

    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    pen = ImageDraw.Draw(image, "RGBA")  # RGBA: fills with alpha blend into the picture
    for p in range(roll.low, roll.high + 1):
        if p % 12 in BLACK_KEYS:
            pen.rectangle((LEFT, y(p) - row / 2, RIGHT, y(p) + row / 2), fill=BLACK_KEY_ROW)
    if roll.span is not None:
        shade = _rgb(CONTINUATION_COLOUR) + (round(255 * SPAN_ALPHA),)
        pen.rectangle((x(roll.span[0]), top, x(roll.span[1]), BOTTOM), fill=shade)
    for t in roll.downbeats:
        pen.line((round(x(t)), top, round(x(t)), BOTTOM), fill=BAR_LINE)
    for start, end, pitch, new in roll.notes:
        left = x(start)
        box = (
            left,
            y(pitch) - NOTE_HEIGHT * row / 2,
            max(x(end) - 1, left),
            y(pitch) + NOTE_HEIGHT * row / 2,
        )
        pen.rectangle(box, fill=CONTINUATION_COLOUR if new else PRIMER_COLOUR)
    for t in roll.split_lines:
        at = round(x(t))
        for y0 in range(top, BOTTOM, DASH + GAP):
            pen.line((at, y0, at, min(y0 + DASH, BOTTOM)), fill=CONTINUATION_COLOUR, width=2)
    pen.rectangle((LEFT, top, RIGHT, BOTTOM), outline="black")
    for t in roll.beats:
        pen.line((round(x(t)), BOTTOM, round(x(t)), BOTTOM + BEAT_MARK), fill="black")
    small, label = _font(10), _font(12)
    for t, text in roll.bar_labels:
        at = round(x(t))
        pen.line((at, BOTTOM, at, BOTTOM + TICK), fill="black")
        _text(pen, text, label, at, BOTTOM + TICK + 2, "top")
    _text(pen, "bar", label, (LEFT + RIGHT) // 2, HEIGHT - 10, "bottom")
    for pitch, name in roll.pitch_labels:
        at = round(y(pitch))
        pen.line((LEFT - TICK, at, LEFT, at), fill="black")
        _text(pen, name, small, LEFT - TICK - 3, at, "right")
    if title:
        _text(pen, title, _font(13), (LEFT + RIGHT) // 2, top - 6, "bottom")
    return image


def _text(pen, text: str, font, x: int, y: int, side: str) -> None:  # noqa: ANN001 - Pillow's
    """Write ``text`` centred under (side "top"), centred over ("bottom"), or ending left of
    and centred on (side "right") the point (x, y)."""
    left, upper, right, lower = pen.textbbox((0, 0), text, font=font)
    w, h = right - left, lower - upper
    at = {
        "top": (x - w / 2, y),
        "bottom": (x - w / 2, y - h),
        "right": (x - w, y - h / 2),
    }[side]
    pen.text((at[0] - left, at[1] - upper), text, fill="black", font=font)


def _rgb(colour: str) -> tuple[int, int, int]:
    """ "#rrggbb" -> (r, g, b)."""
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def piano_roll(
    pm: pretty_midi.PrettyMIDI,
    path: str | Path,
    *,
    split: Split | None = None,
    title: str | None = None,
) -> None:
    """Draw ``pm`` as a piano-roll PNG at ``path`` (see `layout` for ``split``)."""
    draw(layout(pm, split), title).save(path, format="PNG", compress_level=1)
