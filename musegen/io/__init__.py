"""MIDI in and out (the floor the MIDI, quantizing and rendering modules move to)."""
