"""Where our speech and cue tones are played: the sound card (sounddevice), or one WAV file paced in real
time so it holds exactly what a listener would have heard, including speech cut short by stop()."""

from __future__ import annotations

import os
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from describe_screen.errors import UserError
from describe_screen.i18n import _
from describe_screen.sound import RATE, resample

if TYPE_CHECKING:
    import numpy as np

POLL = 0.01  # how often playback checks for stop(): the worst-case delay before silence


def tone(notes: list[tuple[float, float]], level: float) -> np.ndarray:
    """Sine notes with short fades (no clicks), one after another."""
    import numpy as np

    parts = []
    for frequency, seconds in notes:
        t = np.arange(int(RATE * seconds)) / RATE
        fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)
        parts.append((level * fade * np.sin(2 * np.pi * frequency * t)).astype(np.float32))
    return np.concatenate(parts)


class FileOutput:
    """One WAV file that grows in real time; its header is rewritten after every chunk so it stays
    readable while it grows and valid if the process dies."""

    CHUNK = RATE // 50  # 20 ms

    def __init__(self, path: Path, paced: bool = True) -> None:
        self.path = Path(path)
        self.paced = paced
        try:
            # private (0600): the file holds screen text, spoken
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
            self._file = os.fdopen(fd, "wb")
        except OSError as exc:
            raise UserError(_("The speech file {path} cannot be written: {strerror}.",
                              path=self.path, strerror=exc.strerror),
                            _("Choose a file in a folder you can write to.")) from exc
        self._wav = wave.open(self._file, "wb")  # noqa: SIM115 - closed in close()
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(RATE)
        self._wav.writeframes(b"")  # writes the header: an empty file is already a valid WAV
        self._file.flush()

    def play(self, samples: np.ndarray, interrupted: Callable[[], bool]) -> None:
        import numpy as np

        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
        if not self.paced:
            if not interrupted():
                self._wav.writeframes(pcm.tobytes())
                self._file.flush()
            return
        start = time.monotonic()
        for offset in range(0, len(pcm), self.CHUNK):
            if not _sleep_until(start + offset / RATE, interrupted):
                return
            self._wav.writeframes(pcm[offset:offset + self.CHUNK].tobytes())
            self._file.flush()
        _sleep_until(start + len(pcm) / RATE, interrupted)

    def describe(self) -> str:
        return _("writing {path}", path=self.path)

    def close(self) -> None:
        if not self._file.closed:
            self._wav.close()
            self._file.close()


class DeviceOutput:
    """The default sound card, through sounddevice (PortAudio)."""

    def __init__(self) -> None:
        fix = _("Connect speakers or headphones, or run with --speech-file PATH to write the speech to a WAV file.")
        try:
            import sounddevice as sd
        except OSError as exc:
            raise UserError(_("No sound system was found: the PortAudio library is missing."),
                            _("Install it (for example: sudo apt install libportaudio2), or run with "
                              "--speech-file PATH to write the speech to a WAV file.")) from exc
        try:
            info = sd.query_devices(kind="output")
        except (sd.PortAudioError, ValueError) as exc:
            raise UserError(_("No sound output device was found, so speech cannot be heard."), fix) from exc
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
        return _("playing on {device}", device=self.device)

    def close(self) -> None:
        self.sd.stop()


def _sleep_until(deadline: float, interrupted: Callable[[], bool]) -> bool:
    """Wait for `deadline`, checking for stop() every POLL seconds; False if interrupted."""
    while (left := deadline - time.monotonic()) > 0:
        if interrupted():
            return False
        time.sleep(min(left, POLL))
    return not interrupted()

