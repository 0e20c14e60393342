"""Speak results aloud, sentence by sentence, and stop at once when asked.

One speech thread owns the pyttsx3 engine (SAPI5's COM objects belong to the thread that made them)
and renders each utterance to samples; an output then plays them: the sound card (sounddevice), or,
with a speech file, one growing WAV file paced in real time so it holds exactly what a listener
would have heard, including speech cut short by stop(). Cues and ticks are short tones through the
same output, so they never talk over speech.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import struct
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from describe_screen.config import SpeechConfig
from describe_screen.errors import UserError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

RATE = 22050  # output sample rate; every utterance and tone is converted to it
POLL = 0.01  # how often playback checks for stop(): the worst-case delay before silence
KEEP_SPOKEN = 500  # `spoken` keeps the latest utterances only: the daemon runs for days

# Cue tones: a list of (frequency in Hz, seconds) notes and a loudness relative to speech.
CUES: dict[str, tuple[list[tuple[float, float]], float]] = {
    "start": ([(660, 0.07), (880, 0.09)], 0.35),
    "done": ([(880, 0.07), (660, 0.09)], 0.35),
    "error": ([(330, 0.15), (220, 0.25)], 0.45),
    "listen": ([(1000, 0.1)], 0.35),
    "listen_end": ([(700, 0.1)], 0.35),
    "tick": ([(1200, 0.025)], 0.12),
}

# A sentence ends at . ! ? or … (plus closing quotes or brackets) followed by white space, or at a line
# break; but not after a lone initial or a common abbreviation ("J. Smith", "e.g. this", "Dr. Who").
_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+|\n\s*")
_ABBREVIATION = re.compile(r"(?:\b[A-Za-z]|\b(?:Mr|Mrs|Ms|Dr|Prof|St|vs|e\.g|i\.e|approx))[.]$")

DRIVER_NAMES = {"espeak": "espeak-ng", "sapi5": "SAPI5", "nsss": "NSSpeechSynthesizer", "avspeech": "AVSpeech"}


def split_sentences(text: str) -> tuple[list[str], str]:
    """Complete sentences at the start of `text`, and the unfinished rest."""
    sentences, start = [], 0
    for match in _END.finditer(text):
        if "\n" not in match.group() and _ABBREVIATION.search(text, start, match.start() + 1):
            continue
        if sentence := text[start:match.end()].strip():
            sentences.append(sentence)
        start = match.end()
    return sentences, text[start:]


class Speaker:
    """Queue speech and cues; play them in order on one thread; stop() silences everything at once."""

    def __init__(self, config: SpeechConfig, speech_file: Path | None = None) -> None:
        self.config = config
        self.spoken: list[str] = []  # utterances actually started, in order
        self._output: _FileOutput | _DeviceOutput = _FileOutput(speech_file) if speech_file else _DeviceOutput()
        self._queue: queue.Queue[tuple[int, str, str] | None] = queue.Queue()
        self._state = threading.Condition()
        self._generation = 0  # bumped by stop(): queued or playing items of older generations are dropped
        self._pending = 0  # items queued or playing
        self._driver = ""
        self._failure: UserError | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name="speech", daemon=True)
        self._thread.start()
        started.wait()
        if self._failure is not None:
            self._output.close()
            raise self._failure

    def say(self, text: str) -> None:
        """Queue `text`, one utterance per sentence so stop() and the first words come quickly."""
        sentences, rest = split_sentences(text)
        for sentence in [*sentences, rest.strip()]:
            if sentence:
                self._enqueue("say", sentence)

    def say_stream(self, pieces: Iterable[str], cancelled: Callable[[], bool] = lambda: False) -> str:
        """Speak text as it is produced: each sentence is queued the moment it is complete.

        Returns all the text received (up to cancellation).
        """
        received, buffer = [], ""
        for piece in pieces:
            if cancelled():
                break
            received.append(piece)
            sentences, buffer = split_sentences(buffer + piece)
            for sentence in sentences:
                self._enqueue("say", sentence)
        if buffer.strip() and not cancelled():
            self._enqueue("say", buffer.strip())
        return "".join(received)

    def stop(self) -> None:
        """Cut the current utterance now and drop everything queued."""
        with self._state:
            self._generation += 1
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:  # close() is waiting for the thread: keep its sentinel
                    self._queue.put(None)
                    break
                self._pending -= 1
            self._state.notify_all()

    def cue(self, name: str) -> None:
        """Queue a short tone: "start", "done", "error", "listen", "listen_end" (or "tick")."""
        if name not in CUES:
            raise ValueError(f"unknown cue {name!r}")
        if self.config.cues:
            self._enqueue("tone", name)

    @contextlib.contextmanager
    def working(self, cancelled: Callable[[], bool] = lambda: False) -> Iterator[None]:
        """A soft tick every config.tick_seconds while the block runs, so silence never means "hung";
        none once the work is cancelled (the user asked for silence)."""
        finished = threading.Event()

        def tick() -> None:
            while not finished.wait(self.config.tick_seconds) and not cancelled():
                if self.config.cues and self._pending == 0:  # never tick over speech
                    self._enqueue("tone", "tick")

        ticker = threading.Thread(target=tick, name="speech-ticks", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            finished.set()
            ticker.join()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until everything queued has been played; False if `timeout` passed first."""
        with self._state:
            return self._state.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Stop speaking, end the speech thread and finish the speech file."""
        if not self._thread.is_alive():
            return
        self.stop()
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._output.close()

    def driver(self) -> str:
        """What speaks and where to, for `doctor`, e.g. "espeak-ng via pyttsx3, playing on default"."""
        return f"{self._driver} via pyttsx3, {self._output.describe()}"

    def _enqueue(self, kind: str, payload: str) -> None:
        with self._state:
            if not self._thread.is_alive():  # closed: nothing would ever play it
                return
            self._pending += 1
            self._queue.put((self._generation, kind, payload))

    def _run(self, started: threading.Event) -> None:
        with tempfile.TemporaryDirectory(prefix="describe-screen-speech-", dir=memory_dir()) as tmp:
            try:
                voice = _Voice(self.config, Path(tmp))
                self._driver = voice.name
            except UserError as exc:
                self._failure = exc
                return
            except Exception as exc:  # a broken driver install fails in many ways; all mean "no voice"
                self._failure = UserError(f"The speech synthesiser failed to start ({exc}).", _install_hint())
                return
            finally:
                started.set()
            tones = {name: _tone(notes, level * self.config.volume) for name, (notes, level) in CUES.items()}
            while (item := self._queue.get()) is not None:
                generation, kind, payload = item
                try:
                    if generation == self._generation:
                        samples = voice.render(payload) if kind == "say" else tones[payload]
                        if generation == self._generation:
                            if kind == "say":
                                self.spoken.append(payload)
                                del self.spoken[:-KEEP_SPOKEN]
                            self._output.play(samples, lambda g=generation: g != self._generation)
                except Exception:  # one bad utterance must not silence everything after it
                    log.exception("speaking %r failed", payload)
                finally:
                    with self._state:
                        self._pending -= 1
                        self._state.notify_all()


def memory_dir() -> str | None:
    """A folder in memory (tmpfs) for the synthesiser's per-sentence sound files, so spoken screen text
    never reaches the disk; None (the system temp folder) where there is none, as on Windows and macOS."""

    for folder in (os.environ.get("XDG_RUNTIME_DIR", ""), "/dev/shm"):
        if folder and os.path.isdir(folder) and os.access(folder, os.W_OK):
            return folder
    return None


# pyttsx3.init() hands every caller the same engine per process: two Speakers must take turns.
_ENGINE_LOCK = threading.Lock()


class _Voice:
    """The pyttsx3 engine, rendering text to samples at RATE."""

    def __init__(self, config: SpeechConfig, workdir: Path) -> None:
        if sys.platform == "win32":  # SAPI5 is COM: this (speech) thread needs COM set up for itself
            import ctypes

            ctypes.windll.ole32.CoInitialize(None)
        try:
            import pyttsx3

            self.engine = pyttsx3.init()
        except Exception as exc:
            raise UserError("No speech synthesiser could be started, so nothing can be spoken.",
                            _install_hint()) from exc
        self.name = DRIVER_NAMES.get(self.engine.driver_name, self.engine.driver_name)
        # The espeak driver prints "Audio saved to ..." after every file; keep the user's terminal clean.
        espeak = sys.modules.get("pyttsx3.drivers.espeak")
        if espeak is not None:
            espeak.print = lambda *args, **kwargs: None
        self.properties = {"rate": config.rate, "volume": config.volume}
        if config.voice:
            self.properties["voice"] = _voice_id(self.engine, config.voice)
        self.path = workdir / ("utterance.aiff" if self.engine.driver_name == "nsss" else "utterance.wav")

    def render(self, text: str) -> np.ndarray:
        with _ENGINE_LOCK:
            # set for every utterance: the engine is shared per process, and the espeak driver was seen
            # to fall back to its default rate between utterances
            for name, value in self.properties.items():
                self.engine.setProperty(name, value)
            self.path.unlink(missing_ok=True)
            self.engine.save_to_file(text, str(self.path))
            self.engine.runAndWait()
            return read_audio(self.path)


def _voice_id(engine: Any, wanted: str) -> str:
    voices = engine.getProperty("voices")
    for voice in voices:
        if wanted.lower() in (str(voice.id).lower(), str(voice.name).lower()):
            return voice.id
    names = ", ".join(sorted({str(v.name) for v in voices})[:12])
    raise UserError(f"The voice {wanted!r} set in speech.voice is not installed.",
                    f"Leave speech.voice empty for the default voice, or pick one of: {names}.")


def _install_hint() -> str:
    if sys.platform == "win32":
        return "Check that Windows speech (SAPI5) is installed, and reinstall describe-screen to get comtypes."
    if sys.platform == "darwin":
        return "Reinstall describe-screen so that pyobjc is installed."
    return "Install espeak-ng, for example with: sudo apt install espeak-ng."


def read_audio(path: Path) -> np.ndarray:
    """Mono float32 samples at RATE from a WAV or AIFF file (what the pyttsx3 drivers write)."""
    import numpy as np

    data = path.read_bytes()
    if data[:4] == b"FORM":
        pcm, rate, channels, width = _parse_aiff(data)
    else:
        with wave.open(str(path), "rb") as wav:
            pcm, rate = wav.readframes(wav.getnframes()), wav.getframerate()
            channels, width = wav.getnchannels(), wav.getsampwidth()
    kinds = {1: ("u1", 128.0, 128.0), 2: ("<i2", 0.0, 32768.0), 4: ("<i4", 0.0, 2147483648.0)}
    if width not in kinds:
        raise ValueError(f"unsupported sample width {width}")
    kind, offset, scale = kinds[width]
    samples = (np.frombuffer(pcm, kind).astype(np.float32) - offset) / scale
    samples = samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1)
    return resample(samples, rate, RATE)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear-interpolation resampling: plenty for speech and beeps."""
    import numpy as np

    if rate == target or not len(samples):
        return samples
    positions = np.arange(round(len(samples) * target / rate)) * (rate / target)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)


def _parse_aiff(data: bytes) -> tuple[bytes, int, int, int]:
    """PCM (as little-endian), rate, channels and sample width of an AIFF/AIFF-C file."""
    import numpy as np

    chunks, pos = {}, 12
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], struct.unpack(">I", data[pos + 4:pos + 8])[0]
        chunks[kind] = data[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    comm = chunks[b"COMM"]
    channels, _, bits = struct.unpack(">hIh", comm[:8])
    exponent, mantissa = struct.unpack(">HQ", comm[8:18])
    rate = round(mantissa * 2.0 ** ((exponent & 0x7FFF) - 16383 - 63))
    little = data[8:12] == b"AIFC" and comm[18:22] == b"sowt"
    offset = struct.unpack(">I", chunks[b"SSND"][:4])[0]
    pcm = chunks[b"SSND"][8 + offset:]
    width = bits // 8
    if not little and width > 1:
        pcm = np.frombuffer(pcm[: len(pcm) // width * width], f">i{width}").astype(f"<i{width}").tobytes()
    elif width == 1:  # AIFF bytes are signed; WAV bytes (what read_audio expects) are unsigned
        pcm = (np.frombuffer(pcm, "i1").astype(np.int16) + 128).astype("u1").tobytes()
    return pcm, rate, channels, width


def _tone(notes: list[tuple[float, float]], level: float) -> np.ndarray:
    """Sine notes with short fades (no clicks), one after another."""
    import numpy as np

    parts = []
    for frequency, seconds in notes:
        t = np.arange(int(RATE * seconds)) / RATE
        fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)
        parts.append((level * fade * np.sin(2 * np.pi * frequency * t)).astype(np.float32))
    return np.concatenate(parts)


class _FileOutput:
    """One WAV file that grows in real time; its header is rewritten after every chunk so it stays
    readable while it grows and valid if the process dies."""

    CHUNK = RATE // 50  # 20 ms

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._file = open(self.path, "wb")  # noqa: SIM115 - lives as long as the Speaker
        except OSError as exc:
            raise UserError(f"The speech file {self.path} cannot be written: {exc.strerror}.",
                            "Choose a file in a folder you can write to.") from exc
        self._wav = wave.open(self._file, "wb")  # noqa: SIM115 - closed in close()
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(RATE)
        self._wav.writeframes(b"")  # writes the header: an empty file is already a valid WAV
        self._file.flush()

    def play(self, samples: np.ndarray, interrupted: Callable[[], bool]) -> None:
        import numpy as np

        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
        start = time.monotonic()
        for offset in range(0, len(pcm), self.CHUNK):
            if not _sleep_until(start + offset / RATE, interrupted):
                return
            self._wav.writeframes(pcm[offset:offset + self.CHUNK].tobytes())
            self._file.flush()
        _sleep_until(start + len(pcm) / RATE, interrupted)

    def describe(self) -> str:
        return f"writing {self.path}"

    def close(self) -> None:
        if not self._file.closed:
            self._wav.close()
            self._file.close()


class _DeviceOutput:
    """The default sound card, through sounddevice (PortAudio)."""

    def __init__(self) -> None:
        fix = "Connect speakers or headphones, or run with --speech-file PATH to write the speech to a WAV file."
        try:
            import sounddevice as sd
        except OSError as exc:
            raise UserError("No sound system was found: the PortAudio library is missing.",
                            "Install it (for example: sudo apt install libportaudio2), or run with "
                            "--speech-file PATH to write the speech to a WAV file.") from exc
        try:
            info = sd.query_devices(kind="output")
        except (sd.PortAudioError, ValueError) as exc:
            raise UserError("No sound output device was found, so speech cannot be heard.", fix) from exc
        self.device = info["name"]
        self.rate = int(info["default_samplerate"])  # some devices refuse other rates
        self.sd = sd

    def play(self, samples: np.ndarray, interrupted: Callable[[], bool]) -> None:
        if not len(samples):
            return
        self.sd.play(resample(samples, RATE, self.rate), self.rate)
        end = time.monotonic() + len(samples) / RATE + 1.0
        stream = self.sd.get_stream()
        while stream.active and time.monotonic() < end:
            if interrupted():
                break
            time.sleep(POLL)
        self.sd.stop()

    def describe(self) -> str:
        return f"playing on {self.device}"

    def close(self) -> None:
        self.sd.stop()


def _sleep_until(deadline: float, interrupted: Callable[[], bool]) -> bool:
    """Wait for `deadline`, checking for stop() every POLL seconds; False if interrupted."""
    while (left := deadline - time.monotonic()) > 0:
        if interrupted():
            return False
        time.sleep(min(left, POLL))
    return not interrupted()
