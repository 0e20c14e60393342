"""Spoken questions from the microphone (or a WAV standing in for it): push-to-talk recorders, silence checks.

Everything leaves this module as float32 mono at 16 kHz, the one format Whisper takes, so the
recogniser never has to care where the sound came from. numpy and sounddevice are imported inside
functions so that `describe-screen --help` stays instant.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from describe_screen.errors import UserError
from describe_screen.i18n import N_, _, number
from describe_screen.paths import regular_file
from describe_screen.sound import read_sound, resample

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FRAME_SECONDS = 0.03
# A frame counts as sound when it is louder than this (dB below full scale) ...
QUIET_DB = -50.0
# ... and speech must rise this far above the recording's own background level, so steady noise
# (a fan, hiss, hum) is never mistaken for a question however loud it is.
SPEECH_OVER_FLOOR_DB = 12.0
MIN_SPEECH_SECONDS = 0.15
# Silence kept around trimmed speech: Whisper loses the first sound when the cut is tight.
MARGIN_SECONDS = 0.2

NO_MICROPHONE_FIX = (N_('Plug in a microphone and check that this program may use it, or type the question: '
                     'describe-screen ask "your question".'))


class Recorder(Protocol):
    """Push-to-talk: `start` on key press, `stop` on key release.

    After `stop`, `note` is "" or one short sentence for the daemon to speak before the answer
    (for example that only the first 30 seconds were kept).
    """

    note: str

    def start(self) -> None: ...

    def stop(self) -> np.ndarray: ...


def cut_note(max_seconds: float) -> str:
    """What the user hears when a recording ran past the limit and its start was kept."""
    return _("Your question was long, so I only listened to the first {seconds} seconds.", seconds=number(max_seconds))


class MicrophoneRecorder:
    """Records from a sound input device while the ask key is held.

    The stream runs at the device's own rate (many devices refuse 16 kHz) and is resampled on stop.
    """

    def __init__(self, device: str = "", max_seconds: float = 30.0) -> None:
        self.device = device
        self.max_seconds = max_seconds
        self.note = ""
        self._stream: Any = None
        self._chunks: list[np.ndarray] = []
        self._frames = 0
        self._max_frames = 0
        self._cut = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Open the input stream; a held key repeats presses, so a second start does nothing."""
        if self._stream is not None:
            return
        sd = _sounddevice()
        rate = _input_rate(sd, self.device)
        self._chunks, self._frames, self._cut, self.note = [], 0, False, ""
        self._max_frames = int(self.max_seconds * rate)
        try:
            stream = sd.InputStream(device=self.device or None, samplerate=rate, channels=1,
                                    dtype="float32", callback=self._callback)
            stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise UserError(_("The microphone could not be opened: {exc}.", exc=exc), _(NO_MICROPHONE_FIX)) from exc
        self._stream = stream

    def _callback(self, indata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        """Runs on the audio thread: keep blocks until max_seconds are held, then only flag the cut."""
        with self._lock:
            room = self._max_frames - self._frames
            if frames > room:
                self._cut = True
            if room > 0:
                block = indata[:room, 0].copy()
                self._chunks.append(block)
                self._frames += len(block)

    def stop(self) -> np.ndarray:
        """Close the stream and return what was heard since `start` (empty if never started)."""
        import numpy as np

        stream, self._stream = self._stream, None
        if stream is None:
            return np.zeros(0, np.float32)
        rate = int(stream.samplerate)
        stream.stop()
        stream.close()
        with self._lock:
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
            self._chunks = []
            if self._cut:
                self.note = cut_note(self.max_seconds)
                log.warning("recording cut to the first %g seconds", self.max_seconds)
        return resample(audio, rate, SAMPLE_RATE)


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio library itself is missing
        raise UserError(_("Sound recording is not available on this computer: the PortAudio library is missing."),
                        _("Install PortAudio (on Debian or Ubuntu: sudo apt install libportaudio2), or type the "
                          "question: describe-screen ask \"your question\".")) from exc
    return sounddevice


def _input_rate(sd: Any, device: str) -> int:
    """The chosen input device's native rate; a plain UserError when there is no such device."""
    try:
        info = sd.query_devices(device or None, kind="input")
    except (sd.PortAudioError, ValueError) as exc:
        if device:
            raise UserError(_("No microphone named \"{device}\" was found.", device=device),
                            _("Check voice.microphone in the settings file, or set it to an empty string to use "
                              "the default microphone.")) from exc
        raise UserError(_("No microphone was found."), _(NO_MICROPHONE_FIX)) from exc
    if info["max_input_channels"] < 1:
        raise UserError(_("The sound device \"{name}\" cannot record.", name=info["name"]), _(NO_MICROPHONE_FIX))
    return int(info["default_samplerate"])


def microphones() -> list[str]:
    """Names of the sound devices that can record (for `doctor` and voice.microphone); [] when none."""
    try:
        sd = _sounddevice()
    except UserError:
        return []
    try:
        return [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
    except sd.PortAudioError:
        return []


class WavFileRecorder:
    """A WAV file standing in for the microphone (tests, `describe-screen ask --audio q.wav`).

    The file is read on `start`, so a bad file is reported at key press, as a broken microphone is.
    """

    def __init__(self, path: Path, max_seconds: float = 30.0) -> None:
        self.path = Path(path)
        self.max_seconds = max_seconds
        self.note = ""
        self._audio: np.ndarray | None = None

    def start(self) -> None:
        if self._audio is not None:
            return
        self.note = ""
        self._audio, seconds = read_wav(self.path, self.max_seconds)
        if seconds > self.max_seconds:
            self.note = cut_note(self.max_seconds)

    def stop(self) -> np.ndarray:
        import numpy as np

        audio, self._audio = self._audio, None
        return np.zeros(0, np.float32) if audio is None else audio


def read_wav(path: Path, max_seconds: float) -> tuple[np.ndarray, float]:
    """`load_wav` plus the file's full length in seconds, so callers can tell the user about a cut.

    WAV and AIFF are read here (only the first max_seconds); any other recording (MP3, Ogg, FLAC, M4A)
    is decoded by faster-whisper's own `decode_audio` (FFmpeg through PyAV), which the recogniser
    needs anyway; what neither can read is refused in plain words.
    """
    regular_file(Path(path), "sound", _("Check the file name and try again."))  # before opening: a pipe would hang
    if (decoded := _decode_other_format(Path(path))) is not None:
        seconds = len(decoded) / SAMPLE_RATE
        if seconds > max_seconds:
            log.warning("%s is %.0f seconds long; only the first %g seconds are used", path, seconds, max_seconds)
        return decoded[:int(max_seconds * SAMPLE_RATE)], seconds
    samples, rate, seconds = read_sound(path, max_seconds)
    return resample(samples, rate, SAMPLE_RATE), seconds


def _decode_other_format(path: Path) -> np.ndarray | None:
    """16 kHz mono samples of a compressed recording, or None (a WAV/AIFF, no such file, undecodable)."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError:
        return None  # read_sound explains it
    if magic in (b"RIFF", b"FORM", b""):
        return None
    try:
        from faster_whisper import decode_audio

        samples = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except Exception:  # not installed, or not a sound file at all: read_sound gives the plain refusal
        return None
    return samples if len(samples) else None


def load_wav(path: Path, max_seconds: float) -> np.ndarray:
    """Any PCM or float WAV (any rate, channels, sample width) as 16 kHz mono, cut to max_seconds."""
    return read_wav(path, max_seconds)[0]


def _frame_db(audio: np.ndarray) -> np.ndarray:
    """Loudness of each 30 ms frame in dB below full scale."""
    import numpy as np

    size = int(FRAME_SECONDS * SAMPLE_RATE)
    count = len(audio) // size
    if count == 0:
        return np.zeros(0)
    frames = np.asarray(audio[:count * size], np.float64).reshape(count, size)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def _speech_frames(audio: np.ndarray) -> np.ndarray:
    """Which frames are loud in absolute terms and stand clearly above the recording's background.

    The background is the quietest tenth of the frames, but never below -60 dB: against digital
    silence (-120 dB) any faint click would otherwise count as speech.
    """
    import numpy as np

    db = _frame_db(audio)
    if db.size == 0:
        return np.zeros(0, bool)
    floor = max(float(np.percentile(db, 10)), -60.0)
    return (db > QUIET_DB) & (db > floor + SPEECH_OVER_FLOOR_DB)


def has_speech(audio: np.ndarray) -> bool:
    """True when some part of the recording sounds like a voice over its background, not silence or hiss."""
    return int(_speech_frames(audio).sum()) * FRAME_SECONDS >= MIN_SPEECH_SECONDS


def trim_silence(audio: np.ndarray) -> np.ndarray:
    """Cut the quiet before the first and after the last speech frame, keeping a short margin.

    A recording with no speech at all comes back empty, which the daemon reports as "no speech".
    """
    import numpy as np

    loud = np.flatnonzero(_speech_frames(audio))
    if loud.size == 0:
        return np.zeros(0, np.float32)
    size = int(FRAME_SECONDS * SAMPLE_RATE)
    margin = int(MARGIN_SECONDS * SAMPLE_RATE)
    start = max(0, loud[0] * size - margin)
    end = min(len(audio), (loud[-1] + 1) * size + margin)
    return np.asarray(audio[start:end], np.float32)
