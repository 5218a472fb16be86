"""Single notes rendered from a SoundFont with FluidSynth: a pitched corpus with exact labels.

NSynth was made this way (sample libraries rendered note by note); here Debian's FluidSynth and
its General MIDI font (``fluid-soundfont-gm``, FluidR3_GM.sf2) render every note of a plan of
programs x pitches x velocities. Each note is held ``hold_seconds``, released for
``release_seconds``, faded out over the last ``fade_seconds``: one length for all.

The font is loaded once per run (FluidSynth's CLI reloads it for every call). Reverb and chorus are
off. FluidSynth's 16-bit writer dithers from a table whose position runs on from note to note; the
float writer does not dither. Each note starts on a block boundary (a note-on takes effect at the
next block of 64 frames) after the previous note's voices have rung out, so a note is the same
whatever came before it except in its first block: a reused voice starts from its last use's
state there (measured: up to 0.002, -54 dB, in the first 63 samples, and only after some
instruments). The plan's order is fixed, so the same parameters give the same bytes
(tests/test_soundfont.py holds both).
"""
from __future__ import annotations

import ctypes
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from audiovae.config.schema import SoundfontSource
from audiovae.progress import track

log = logging.getLogger("audiovae.soundfont")

PACKAGES = "fluidsynth fluid-soundfont-gm (Debian: apt-get install fluidsynth fluid-soundfont-gm; pip: pyfluidsynth)"
# General MIDI's 16 families of 8 programs each (program // 8), in the standard's order
GM_FAMILIES = ("piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
               "reed", "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic", "percussive",
               "sound_effects")
PROGRAMS_PER_FAMILY = 8
MIDI_NOTES = 128
BANK = 0              # GM melodic programs; bank 128 holds the drum kits
CHANNEL = 0
FLUSH_SAMPLES = 4096  # silence rendered after each note (and once after loading): no state carries over
RING_OUT_SECONDS = 30  # at most, after a note's release window, for its voices to end on their own
BLOCK = 64            # FluidSynth renders (and takes note events) in blocks of this many frames (FLUID_BUFSIZE)
SF2_MAGIC = (b"RIFF", b"sfbk")
WARM_UP_PITCHES = range(24, 96)  # a chord that takes more of FluidSynth's voices than one note ever does


class SoundfontError(RuntimeError):
    """The font or FluidSynth is missing or unusable; the message says what to install or fix."""


@dataclass(frozen=True)
class Note:
    program: int
    pitch: int
    velocity: int


def family_of(program: int) -> str:
    """The GM family of a program (0-127): ``program // 8`` (40, Violin -> strings)."""
    return GM_FAMILIES[program // PROGRAMS_PER_FAMILY]


def resolve_programs(items: list[int | str]) -> list[int]:
    """GM programs from a list of numbers (0-127) and family names (each its 8 programs), in order,
    each once. An unknown name or a number out of range is refused, naming the choices."""
    programs: list[int] = []
    for item in items:
        if isinstance(item, str) and not item.strip().isdigit():
            name = re.sub(r"[\s-]+", "_", item.strip().lower())
            if name not in GM_FAMILIES:
                raise SoundfontError(f"data.sources.soundfont.programs: {item!r} is not a GM family "
                                     f"({', '.join(GM_FAMILIES)}) nor a program number 0-127")
            first = GM_FAMILIES.index(name) * PROGRAMS_PER_FAMILY
            chosen = range(first, first + PROGRAMS_PER_FAMILY)
        else:
            number = int(item)
            if not 0 <= number < MIDI_NOTES:
                raise SoundfontError(f"data.sources.soundfont.programs: {number} is not a GM program (0-127)")
            chosen = range(number, number + 1)
        programs.extend(p for p in chosen if p not in programs)
    return programs


def plan_notes(cfg: SoundfontSource) -> list[Note]:
    """Every note the configuration asks for: programs x pitches x velocities, in that order."""
    if cfg.pitch_low > cfg.pitch_high:
        raise SoundfontError(f"data.sources.soundfont: pitch_low {cfg.pitch_low} is above pitch_high {cfg.pitch_high}")
    pitches = range(cfg.pitch_low, cfg.pitch_high + 1, cfg.pitch_step)
    return [Note(program, pitch, velocity) for program in resolve_programs(cfg.programs)
            for pitch in pitches for velocity in sorted(set(cfg.velocities))]


def check_font(path: Path) -> None:
    """A missing font names the package that installs it; a file that is not a SoundFont is named."""
    if not path.is_file():
        raise SoundfontError(f"SoundFont {path} not found: install {PACKAGES}, or set data.sources.soundfont.font")
    with open(path, "rb") as handle:
        head = handle.read(12)
    if len(head) < 12 or (head[:4], head[8:12]) != SF2_MAGIC:
        raise SoundfontError(f"{path} is not a SoundFont 2 file (no RIFF sfbk header): unreadable font")


class Renderer:
    """One FluidSynth synthesizer with the font loaded once; ``render`` plays one note into mono
    float32 samples. Use as a context manager (the synth is deleted on exit)."""

    def __init__(self, font: Path, sample_rate: int, gain: float):
        check_font(font)
        try:
            import fluidsynth  # pyfluidsynth: ctypes over the system's libfluidsynth
        except (ImportError, OSError) as exc:  # the module raises ImportError when the C library is absent
            raise SoundfontError(f"FluidSynth cannot be loaded ({exc}): install {PACKAGES}") from exc
        self._fluidsynth = fluidsynth
        self.sample_rate = sample_rate
        self.synth = fluidsynth.Synth(gain=gain, samplerate=float(sample_rate),
                                      **{"synth.reverb.active": 0, "synth.chorus.active": 0})
        self.font_id = self.synth.sfload(str(font))
        if self.font_id < 0:
            self.synth.delete()
            raise SoundfontError(f"FluidSynth could not load {font}: unreadable font")
        # pyfluidsynth wraps only the dithered 16-bit writer; the float one is FluidSynth's public C API
        write = fluidsynth._fl.fluid_synth_write_float
        write.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                          ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        write.restype = ctypes.c_int
        self._write = write
        self._rendered = 0  # frames rendered since the synth was made: where the next block starts
        self._warm_up()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc) -> None:
        self.synth.delete()

    def instrument_name(self, program: int) -> str:
        """The preset's name in the font (FluidR3: 40 -> Violin); empty when the font has none."""
        return (self.synth.sfpreset_name(self.font_id, BANK, program) or "").strip()

    def _into(self, out: np.ndarray) -> None:
        """Render ``out.shape[1]`` frames into the two rows of ``out`` (left, right)."""
        left, right = out[0], out[1]
        if self._write(self.synth.synth, out.shape[1], left.ctypes.data, 0, 1, right.ctypes.data, 0, 1) != 0:
            raise SoundfontError("FluidSynth failed to render")
        self._rendered += out.shape[1]

    def _warm_up(self) -> None:
        """Sound a wide chord once: the first block a voice of a fresh synth renders differs from
        every later use of it (measured: 63 samples), so each voice a note may take is used first."""
        self.synth.program_select(CHANNEL, self.font_id, BANK, 0)
        for pitch in WARM_UP_PITCHES:
            self.synth.noteon(CHANNEL, pitch, MIDI_NOTES - 1)
        self._into(np.zeros((2, BLOCK * 4), np.float32))
        for pitch in WARM_UP_PITCHES:
            self.synth.noteoff(CHANNEL, pitch)
        self._ring_out()

    def _ring_out(self) -> None:
        """Let every voice end by its own release before the next note: a voice cut short
        (``all_sounds_off``) starts its next note's first block from where it was cut (measured:
        the first 63 samples differed). A voice still sounding after ``RING_OUT_SECONDS`` is cut."""
        chunk = np.zeros((2, BLOCK * 16), np.float32)
        for _ in range(int(RING_OUT_SECONDS * self.sample_rate) // chunk.shape[1]):
            if self.synth.get_active_voice_count() == 0:
                break
            self._into(chunk)
        self.synth.all_sounds_off(CHANNEL)
        self._flush()

    def _flush(self) -> None:
        """Silence until every tail has died and the next note-on falls on a block boundary."""
        frames = FLUSH_SAMPLES + (-(self._rendered + FLUSH_SAMPLES)) % BLOCK
        self._into(np.zeros((2, frames), np.float32))

    def render(self, note: Note, hold: int, release: int, fade: int) -> np.ndarray:
        """One note: key down for ``hold`` samples, up for ``release``, the last ``fade`` faded out;
        the two channels averaged. Its voices ring out (unheard) before the next note."""
        self.synth.system_reset()
        self.synth.program_select(CHANNEL, self.font_id, BANK, note.program)
        out = np.zeros((2, hold + release), np.float32)
        self.synth.noteon(CHANNEL, note.pitch, note.velocity)
        self._into(out[:, :hold])
        self.synth.noteoff(CHANNEL, note.pitch)
        if release:
            self._into(out[:, hold:])
        self._ring_out()
        mono = out.mean(axis=0)
        if fade:
            mono[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        return mono


def note_path(note: Note, instrument: str) -> str:
    """Where a note goes under the source's folder: ``040_violin/p060_v100.wav``."""
    slug = re.sub(r"[^a-z0-9]+", "_", instrument.lower()).strip("_") or "program"
    return f"{note.program:03d}_{slug}/p{note.pitch:03d}_v{note.velocity:03d}.wav"


def note_row(note: Note, instrument: str, label_by: str) -> dict:
    """The metadata of a note: its label (family or instrument), the instrument as the group a
    split keeps on one side (``speaker``), and program, family, pitch and velocity."""
    family = family_of(note.program)
    name = instrument or f"program {note.program}"
    return {"dataset": "soundfont", "label": family if label_by == "family" else name, "speaker": name,
            "take": note.pitch, "program": note.program, "instrument": name, "family": family,
            "pitch": note.pitch, "velocity": note.velocity}


def render_notes(cfg: SoundfontSource, out_dir: Path) -> list[dict]:
    """Render every planned note into ``out_dir`` as 16-bit WAV and return their metadata rows
    (``relpath`` relative to ``out_dir``). A note that clips is counted and warned of; a note that
    renders silent (no sample at that pitch) is written all the same: the filter stage rejects it as
    ``silent`` and its report counts it."""
    notes = plan_notes(cfg)
    hold = int(round(cfg.hold_seconds * cfg.sample_rate))
    release = int(round(cfg.release_seconds * cfg.sample_rate))
    fade = min(int(round(cfg.fade_seconds * cfg.sample_rate)), hold + release)
    rows, clipped = [], 0
    with Renderer(Path(cfg.font).expanduser(), cfg.sample_rate, cfg.gain) as renderer:
        names = {program: renderer.instrument_name(program) for program in {n.program for n in notes}}
        for note in track(notes, "render notes", unit="note"):
            samples = renderer.render(note, hold, release, fade)
            peak = float(np.max(np.abs(samples)))
            clipped += peak > 1.0
            relpath = note_path(note, names[note.program])
            target = out_dir / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(target), np.clip(samples, -1.0, 1.0), cfg.sample_rate, subtype="PCM_16")
            rows.append({**note_row(note, names[note.program], cfg.label), "relpath": relpath})
    if clipped:
        log.warning("soundfont: %d of %d notes clip at gain %g: lower data.sources.soundfont.gain",
                    clipped, len(notes), cfg.gain)
    log.info("soundfont: %d notes of %d programs from %s", len(rows), len(names), cfg.font)
    return rows
