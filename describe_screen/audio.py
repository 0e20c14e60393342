"""Spoken questions as sound: push-to-talk recorders, WAV reading, resampling, silence checks.

Everything leaves this module as float32 mono at 16 kHz, the one format Whisper takes, so the
recogniser never has to care where the sound came from. numpy and sounddevice are imported inside
functions so that `describe-screen --help` stays instant.
"""

from __future__ import annotations

import logging
import struct
import threading
from math import gcd
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from describe_screen.errors import UserError

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

NO_MICROPHONE_FIX = ('Plug in a microphone and check that this program may use it, or type the question: '
                     'describe-screen ask "your question".')


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
    return f"Your question was long, so I only listened to the first {max_seconds:g} seconds."


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
            raise UserError(f"The microphone could not be opened: {exc}.", NO_MICROPHONE_FIX) from exc
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
        return resample(audio, rate)


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio library itself is missing
        raise UserError("Sound recording is not available on this computer: the PortAudio library is missing.",
                        "Install PortAudio (on Debian or Ubuntu: sudo apt install libportaudio2), "
                        'or type the question: describe-screen ask "your question".') from exc
    return sounddevice


def _input_rate(sd: Any, device: str) -> int:
    """The chosen input device's native rate; a plain UserError when there is no such device."""
    try:
        info = sd.query_devices(device or None, kind="input")
    except (sd.PortAudioError, ValueError) as exc:
        if device:
            raise UserError(f'No microphone named "{device}" was found.',
                            "Check voice.microphone in the settings file, or set it to an empty string "
                            "to use the default microphone.") from exc
        raise UserError("No microphone was found.", NO_MICROPHONE_FIX) from exc
    if info["max_input_channels"] < 1:
        raise UserError(f'The sound device "{info["name"]}" cannot record.', NO_MICROPHONE_FIX)
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


def load_wav(path: Path, max_seconds: float) -> np.ndarray:
    """Any PCM or float WAV (any rate, channels, sample width) as 16 kHz mono, cut to max_seconds."""
    return read_wav(path, max_seconds)[0]


def read_wav(path: Path, max_seconds: float) -> tuple[np.ndarray, float]:
    """`load_wav` plus the file's full length in seconds, so callers can tell the user about a cut.

    Only the first max_seconds are read from disk, so a ten-minute file costs no more than a short one.
    """
    import numpy as np

    path = Path(path)
    fmt, rate, channels, width, data_at, data_size = _wav_layout(path)
    frame_bytes = channels * width
    seconds = data_size // frame_bytes / rate
    keep = min(data_size // frame_bytes, int(max_seconds * rate))
    with path.open("rb") as f:
        f.seek(data_at)
        raw = f.read(keep * frame_bytes)
    frames = len(raw) // frame_bytes
    if frames == 0:
        raise UserError(f"The sound file {path.name} is empty.", "Record the question again.")
    samples = _decode(raw[:frames * frame_bytes], fmt, width).reshape(frames, channels).mean(axis=1)
    if seconds > max_seconds:
        log.warning("%s is %.0f seconds long; only the first %g seconds are used", path, seconds, max_seconds)
    return resample(samples.astype(np.float32), rate), seconds


_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


def _wav_layout(path: Path) -> tuple[int, int, int, int, int, int]:
    """Walk the RIFF chunks: (format, rate, channels, bytes per sample, data offset, data bytes)."""
    not_wav = UserError(f"The file {path.name} is not a WAV sound file.",
                        "Save the question as a WAV file, for example with: sox question.mp3 question.wav.")
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                raise not_wav
            fmt_chunk = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    break
                name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if name == b"fmt ":
                    fmt_chunk = f.read(length)
                elif name == b"data":
                    if fmt_chunk is None:
                        raise not_wav
                    # writers that stream to a pipe leave the size unknown; the file end bounds it
                    return (*_parse_fmt(path, fmt_chunk), f.tell(), min(length, size - f.tell()))
                else:
                    f.seek(length, 1)
                if length % 2:
                    f.seek(1, 1)
    except FileNotFoundError as exc:
        raise UserError(f"The sound file {path} does not exist.", "Check the file name and try again.") from exc
    except IsADirectoryError as exc:
        raise UserError(f"{path} is a folder, not a sound file.", "Give the path of a WAV file.") from exc
    except OSError as exc:
        raise UserError(f"The sound file {path} cannot be read: {exc.strerror or exc}.",
                        "Check that the file exists and that you may read it.") from exc
    if fmt_chunk is None:
        raise not_wav
    raise UserError(f"The sound file {path.name} is empty.", "Record the question again.")


def _parse_fmt(path: Path, chunk: bytes) -> tuple[int, int, int, int]:
    """(format, rate, channels, bytes per sample) from a fmt chunk, refusing encodings we cannot read."""
    if len(chunk) < 16:
        raise UserError(f"The file {path.name} is a damaged WAV file.", "Record the question again.")
    fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", chunk[:16])
    if fmt == _EXTENSIBLE and len(chunk) >= 26:
        fmt = struct.unpack("<H", chunk[24:26])[0]  # the first two bytes of the sub-format GUID
    width = bits // 8
    readable = (fmt == _PCM and width in (1, 2, 3, 4)) or (fmt == _FLOAT and width in (4, 8))
    if not readable or channels < 1 or rate < 1000 or bits % 8:
        raise UserError(f"The sound file {path.name} uses a WAV encoding I cannot read.",
                        f"Convert it to plain 16-bit WAV, for example with: sox {path.name} -b 16 question.wav.")
    return fmt, rate, channels, width


def _decode(raw: bytes, fmt: int, width: int) -> np.ndarray:
    """Little-endian samples to float64 in [-1, 1]."""
    import numpy as np

    if fmt == _FLOAT:
        return np.frombuffer(raw, "<f4" if width == 4 else "<f8").astype(np.float64)
    if width == 1:  # 8-bit WAV is the one unsigned width
        return (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
    if width == 3:  # place the three bytes in the top of an int32 so the sign comes along
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)
        return ints.astype(np.float64) / 2.0**31
    return np.frombuffer(raw, f"<i{width}").astype(np.float64) / 2.0 ** (8 * width - 1)


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling with a Hann-windowed sinc, one precomputed filter per phase.

    The rate ratio is reduced to up/down integers, so output sample n always sits at phase
    (n * down) mod up and the filter table is built once; the cut-off follows the lower of the two
    rates so that downsampling does not fold high frequencies back into the speech band.
    """
    import numpy as np

    audio = np.asarray(audio, np.float32)
    if rate == target or audio.size == 0:
        return audio
    g = gcd(rate, target)
    up, down = target // g, rate // g
    cutoff = min(1.0, target / rate)  # as a fraction of the input Nyquist
    half = int(np.ceil(12 / cutoff))  # input samples either side of each output sample
    taps = np.arange(-half + 1, half + 1)
    distance = (np.arange(up) / up)[:, None] - taps[None, :]  # row p: output at input index + p/up
    table = cutoff * np.sinc(cutoff * distance) * (0.5 + 0.5 * np.cos(np.pi * distance / half))
    table = (table / table.sum(axis=1, keepdims=True)).astype(np.float32)  # exact gain at 0 Hz
    n_out = len(audio) * up // down
    padded = np.pad(audio, half)
    out = np.empty(n_out, np.float32)
    step = max(1, 2**20 // len(taps))
    for first in range(0, n_out, step):
        n = np.arange(first, min(first + step, n_out), dtype=np.int64)
        index = (n * down // up)[:, None] + taps[None, :] + half
        out[n] = np.einsum("ij,ij->i", padded[index], table[n * down % up])
    return out


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
