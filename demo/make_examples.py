"""Write the example melodies in demo/examples/ (short tunes written for musegen).

python demo/make_examples.py
"""

from __future__ import annotations

from pathlib import Path

from musegen.midi import Note, Score, Track, write_midi

Q = 24  # grid ticks per quarter note
HERE = Path(__file__).parent / "examples"

# (name, metre, tempo, program, [(pitch or None for a rest, length in eighths)])
TUNES = [
    (
        "jig_in_d",
        (6, 8),
        110.0,
        73,  # flute
        [
            (62, 1),
            (66, 1),
            (69, 1),
            (74, 2),
            (69, 1),
            (71, 1),
            (69, 1),
            (66, 1),
            (69, 3),
            (67, 1),
            (66, 1),
            (64, 1),
            (62, 1),
            (64, 1),
            (66, 1),
            (64, 3),
            (57, 3),
            (62, 1),
            (66, 1),
            (69, 1),
            (74, 2),
            (76, 1),
            (78, 1),
            (76, 1),
            (74, 1),
            (71, 3),
            (69, 1),
            (71, 1),
            (69, 1),
            (66, 1),
            (64, 1),
            (66, 1),
            (62, 3),
            (62, 3),
        ],
    ),
    (
        "waltz_in_g",
        (3, 4),
        132.0,
        0,  # piano
        [
            (67, 2),
            (71, 2),
            (74, 2),
            (79, 4),
            (78, 2),
            (76, 2),
            (74, 2),
            (71, 2),
            (72, 4),
            (69, 2),
            (66, 2),
            (69, 2),
            (72, 2),
            (74, 4),
            (72, 2),
            (71, 6),
            (67, 2),
            (71, 2),
            (74, 2),
            (76, 4),
            (74, 2),
            (72, 2),
            (71, 2),
            (69, 2),
            (67, 6),
        ],
    ),
    (
        "air_in_a_minor",
        (4, 4),
        84.0,
        40,  # violin
        [
            (69, 2),
            (72, 2),
            (76, 3),
            (74, 1),
            (72, 2),
            (71, 2),
            (69, 4),
            (67, 2),
            (69, 2),
            (71, 2),
            (72, 2),
            (74, 6),
            (None, 2),
            (76, 2),
            (77, 2),
            (76, 2),
            (74, 2),
            (72, 3),
            (71, 1),
            (69, 2),
            (68, 2),
            (69, 8),
        ],
    ),
]


def tune_score(metre, tempo, program, events) -> Score:
    notes, t = [], 0
    for pitch, eighths in events:
        length = eighths * Q // 2
        if pitch is not None:
            notes.append(Note(t, pitch, length, 88))
        t += length
    return Score(Q, notes, [Track(program=program)], [(0, *metre)], [(0, tempo)])


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for name, metre, tempo, program, events in TUNES:
        write_midi(tune_score(metre, tempo, program, events), HERE / f"{name}.mid")
        print(HERE / f"{name}.mid")


if __name__ == "__main__":
    main()
