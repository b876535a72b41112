"""Errors a user can cause. Every one carries a message that says what to do."""


class MuseGenError(Exception):
    """Base class of every error musegen raises on purpose."""


class MidiError(MuseGenError):
    """A MIDI source could not be read or is outside musegen's limits."""


class TokenError(MuseGenError):
    """A token sequence does not follow the grammar, or a token id is unknown."""


class CheckpointError(MuseGenError):
    """A checkpoint directory is missing, incomplete, corrupt or not a musegen checkpoint."""


class ConfigError(MuseGenError):
    """A setting or argument is outside its allowed range."""


class DataError(MuseGenError):
    """A data directory or corpus is missing or malformed."""


class Cancelled(MuseGenError):
    """A generation was stopped on request before it finished."""
