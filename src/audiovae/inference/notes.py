"""MIDI pitches as musicians type them: a number (60) or a note name (C4, A#3, Bb3, C♯5).

Scientific pitch notation, middle C = C4 = MIDI 60, as librosa (and most DAWs but Yamaha's) names it.
"""
from __future__ import annotations

import re

import librosa

MIDI_RANGE = range(128)
MIDDLE_C = 60           # MIDI: what a model trained on notes plays when no pitch is asked
DEFAULT_VELOCITY = 100  # a keyboard's default velocity when none is asked
NOTE_NAME = re.compile(r"^[A-Ga-g][#♯b♭!]*-?\d+$")  # a letter, accidentals, an octave (which may be -1)


class PitchError(ValueError):
    """A pitch that is not a MIDI number or a note name with its octave; the message says which."""


def parse_pitch(text: str | int) -> int:
    """The MIDI number of ``text``: ``60``, ``C4``, ``A#3``, ``Bb3`` (both 58). A name needs its
    octave (``C`` alone is refused: which C?); the result must be a MIDI note, 0-127."""
    value = str(text).strip()
    if re.fullmatch(r"[+-]?\d+", value):
        midi = int(value)
    elif NOTE_NAME.match(value):
        try:
            midi = int(librosa.note_to_midi(value))
        except librosa.util.exceptions.ParameterError as exc:
            raise PitchError(f"pitch {text!r}: {exc}") from None
    elif re.fullmatch(r"[A-Ga-g][#♯b♭!]*", value):
        raise PitchError(f"pitch {text!r} has no octave: write it as {value}4 (middle C is C4 = 60)")
    else:
        raise PitchError(f"pitch {text!r} is neither a MIDI number (0-127) nor a note name such as C4, A#3 or Bb3")
    if midi not in MIDI_RANGE:
        raise PitchError(f"pitch {text!r} is MIDI {midi}, outside 0-127")
    return midi


def note_name(midi: int) -> str:
    """``60`` -> ``C4`` (sharps, ASCII), for messages and reports."""
    return str(librosa.midi_to_note(midi, unicode=False))
