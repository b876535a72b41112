"""Piano-roll pictures: what goes where (`layout`), and the pixels (`draw`)."""

from __future__ import annotations

import pretty_midi
import pytest
from PIL import Image

from musegen.io import pianoroll
from musegen.io.pianoroll import CONTINUATION_COLOUR, PRIMER_COLOUR


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


@pytest.fixture
def tune(tune: pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
    """conftest's four notes (bar 1), then D4 over bars 2-5."""
    tune.instruments[0].notes.append(pretty_midi.Note(90, 62, 2.0, 9.5))
    return tune


def _colours(image: Image.Image) -> set[tuple[int, int, int]]:
    return {rgb for _, rgb in image.getcolors(maxcolors=1 << 24)}


def test_the_split_colours_primer_and_continuation(tune, tmp_path):
    only_primer = _colours(pianoroll.draw(pianoroll.layout(tune)))
    assert _rgb(PRIMER_COLOUR) in only_primer and _rgb(CONTINUATION_COLOUR) not in only_primer
    path = tmp_path / "roll.png"
    pianoroll.piano_roll(tune, path, split=1.0, title="t")
    with Image.open(path) as png:
        assert png.size == (pianoroll.WIDTH, pianoroll.HEIGHT)
        both = _colours(png.convert("RGB"))
    assert _rgb(PRIMER_COLOUR) in both and _rgb(CONTINUATION_COLOUR) in both
    roll = pianoroll.layout(tune, 1.0)
    assert [new for *_, new in roll.notes] == [False, False, True, True, True]
    assert roll.split_lines == [1.0] and roll.span is None


def test_notes_land_in_their_row_and_time(tune):
    """Each note's middle pixel has its colour, and the row of a pitch no note plays has
    none at the same time."""
    roll = pianoroll.layout(tune, 2.0)
    image = pianoroll.draw(roll)
    top, bottom = pianoroll.TOP, pianoroll.BOTTOM
    row = (bottom - top) / (roll.high - roll.low + 1)

    def pixel(t: float, pitch: int) -> tuple[int, int, int]:
        x = pianoroll.LEFT + (pianoroll.RIGHT - pianoroll.LEFT) * t / roll.end
        return image.getpixel((round(x), round(bottom - (pitch - roll.low + 0.5) * row)))

    assert pixel(0.2, 62) == _rgb(PRIMER_COLOUR)  # the first note, D4
    assert pixel(1.2, 69) == _rgb(PRIMER_COLOUR)
    assert pixel(5.0, 62) == _rgb(CONTINUATION_COLOUR)  # the long D4, after the split
    assert pixel(5.0, 64) not in (_rgb(PRIMER_COLOUR), _rgb(CONTINUATION_COLOUR))


def test_the_roll_reads_in_bars_and_names_notes(tune):
    """The time axis is numbered in bars from 1 (beats marked under it) and every white key
    of a narrow range is named, as in a DAW."""
    roll = pianoroll.layout(tune)
    assert [text for _, text in roll.bar_labels] == ["1", "2", "3", "4", "5"]
    assert [t for t, _ in roll.bar_labels] == pytest.approx([0.0, 2.0, 4.0, 6.0, 8.0])
    assert roll.beats[:6] == pytest.approx([0.5, 1.0, 1.5, 2.5, 3.0, 3.5])  # 3 inside a bar
    names = [name for _, name in roll.pitch_labels]
    assert names[:3] == ["C4", "D4", "E4"] and "F#4" not in names and "D5" in names


def test_long_clips_and_wide_ranges_are_labelled_sparsely():
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0)
    inst.notes += [pretty_midi.Note(90, 30, 0.0, 1.0), pretty_midi.Note(90, 90, 99.0, 100.0)]
    pm.instruments.append(inst)
    roll = pianoroll.layout(pm)
    assert len(roll.downbeats) == 50 and len(roll.bar_labels) <= pianoroll.MAX_BAR_LABELS
    assert [text for _, text in roll.bar_labels][:3] == ["1", "4", "7"]
    assert all(name.startswith("C") for _, name in roll.pitch_labels)
    pianoroll.draw(roll, "a title")  # draws


def test_regenerated_bars_are_a_shaded_span(tune):
    roll = pianoroll.layout(tune, (2.0, 4.0))
    assert roll.span == (2.0, 4.0) and roll.split_lines == [2.0, 4.0]
    assert [new for *_, new in roll.notes] == [False, False, False, False, True]
    colours = _colours(pianoroll.draw(roll))
    alpha = pianoroll.SPAN_ALPHA
    shade = tuple(round(255 * (1 - alpha) + c * alpha) for c in _rgb(CONTINUATION_COLOUR))
    assert any(max(abs(a - b) for a, b in zip(c, shade, strict=True)) <= 1 for c in colours)


def test_drums_and_empty_music_draw_an_empty_roll():
    pm = pretty_midi.PrettyMIDI()
    kit = pretty_midi.Instrument(0, is_drum=True)
    kit.notes.append(pretty_midi.Note(100, 36, 0.0, 0.5))
    pm.instruments.append(kit)
    roll = pianoroll.layout(pm, 0.25)
    assert roll.notes == [] and (roll.low, roll.high) == (58, 74) and roll.end == 1.0
    colours = _colours(pianoroll.draw(roll))
    assert _rgb(PRIMER_COLOUR) not in colours and _rgb(CONTINUATION_COLOUR) in colours  # line
