"""Corpora built from the scores that ship in music21 (the folk corpus is `musegen.data`)."""
