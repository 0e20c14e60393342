"""Our own voice: pyttsx3's engine (espeak-ng, SAPI5, NSSpeechSynthesizer) rendering each utterance to
samples, completely or not at all, with a voice for the language of the text."""

from __future__ import annotations

import itertools
import struct
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from describe_screen import i18n, language
from describe_screen.config import SpeechConfig
from describe_screen.errors import UserError
from describe_screen.i18n import _
from describe_screen.sound import RATE, read_sound, resample

if TYPE_CHECKING:
    import numpy as np

DRIVER_NAMES = {"espeak": "espeak-ng", "sapi5": "SAPI5", "nsss": "NSSpeechSynthesizer", "avspeech": "AVSpeech"}

# pyttsx3.init() hands every caller the same engine per process: two Speakers must take turns.
_ENGINE_LOCK = threading.Lock()

# Drivers that write their file on a thread of their own and announce its end ("finished-utterance").
_ANNOUNCES_END = {"nsss"}
ESPEAK_RATE = 22050  # what espeak-ng's voices are made at (pyttsx3's espeak driver assumes the same)
# How long synthesis may take before it counts as failed: generous, since a loaded machine is slow.
SYNTH_TIMEOUT = 15.0
SYNTH_TIMEOUT_PER_CHAR = 0.05


class SpeechLost(Exception):
    """The synthesiser did not deliver a complete utterance."""


class Voice:
    """The pyttsx3 engine, rendering text to samples at RATE; render() returns only complete utterances.

    pyttsx3's runAndWait() returns once synthesis has *started* with the espeak and NSSpeechSynthesizer
    drivers, which write the file later on a thread of their own. The espeak driver also cancels the
    next utterance when espeak is still busy with a queued setting. So with espeak-ng the sound is taken
    from pyttsx3's own binding (`pyttsx3.drivers._espeak`) straight into memory, and completion is
    espeak-ng's end-of-message event; NSSpeechSynthesizer announces its end ("finished-utterance");
    SAPI5 writes the file before save_to_file returns.
    """

    def __init__(self, config: SpeechConfig, workdir: Path) -> None:
        if sys.platform == "win32":  # SAPI5 is COM: this (speech) thread needs COM set up for itself
            import ctypes

            ctypes.windll.ole32.CoInitialize(None)
        try:
            import pyttsx3

            self.engine = pyttsx3.init()
        except Exception as exc:
            raise UserError(_("No speech synthesiser could be started, so nothing can be spoken."),
                            install_hint()) from exc
        self.name = DRIVER_NAMES.get(self.engine.driver_name, self.engine.driver_name)
        self.properties = {"rate": config.rate, "volume": config.volume}
        self.language = i18n.language().code  # the language our sentences are in
        self._installed = list(self.engine.getProperty("voices"))
        self._by_language: dict[str, str] = {}  # language -> voice id, or "" when none speaks it
        self.voice = _voice_id(self._installed, config.voice) if config.voice else self.for_language(self.language)
        # speaks when no voice fits the language: English, espeak-ng's own default (the engine's current
        # voice is whichever an earlier Speaker left set, pyttsx3 keeps one engine per process)
        self._default = self.for_language(language.DEFAULT)
        self.last = ""  # the voice of the latest utterance
        self.path = workdir / ("utterance.aiff" if self.engine.driver_name == "nsss" else "utterance.wav")
        self._ended = threading.Event()
        self._completed = False
        self._error: BaseException | None = None
        self._connections = [self.engine.connect("finished-utterance", self._on_finished),
                             self.engine.connect("error", self._on_error)]
        self._utterances = itertools.count(1)

    def _on_finished(self, name: str | None = None, completed: bool = True) -> None:
        self._completed = bool(completed)
        self._ended.set()

    def _on_error(self, name: str | None = None, exception: BaseException | None = None) -> None:
        self._error = exception or RuntimeError("unknown error")
        self._ended.set()

    def for_language(self, code: str) -> str:
        """The id of an installed voice for the language `code`, or "" when none speaks it."""
        if code not in self._by_language:
            self._by_language[code] = voice_for(self._installed, code)
        return self._by_language[code]

    def choose(self, text: str) -> str:
        """The user's voice, or, for a line clearly in another language, a voice for that language."""
        told = language.text_language(text)
        if told and told != self.language:
            return self.for_language(told) or self.voice
        return self.voice

    def describe(self) -> str:
        """Which voice speaks the user's language, in words (for `doctor`)."""
        if not self.voice:
            return _("No {driver} voice for the desktop language, {language}, is installed: the default voice "
                     "speaks.", driver=self.name, language=language.spoken_name(self.language))
        # espeak-ng names its voices by their language in English ("German"): its id ("gmw/de") is said instead,
        # a name the settings' speech.voice takes as well; other synthesisers' names are their own ("Microsoft Hedda")
        name = self.voice if self.engine.driver_name == "espeak" else next(
            (str(v.name) for v in self._installed if v.id == self.voice), self.voice)
        return _("The voice {name} speaks {language}; screen text clearly in another language is spoken with a "
                 "voice for that language.", name=name, language=language.spoken_name(self.language))

    def render(self, text: str) -> np.ndarray:
        """The whole utterance as samples, or SpeechLost: never a missing, half-written or cut sound."""
        chosen = self.choose(text)
        with _ENGINE_LOCK:
            render = self._render_espeak if self.engine.driver_name == "espeak" else self._render_file
            chosen = chosen or self._default
            samples = render(text, {**self.properties, "voice": chosen} if chosen else self.properties)
            self.last = str(self._engine_voice() or chosen)  # read back: the voice the engine really used
        if not len(samples) and any(c.isalnum() for c in text):
            raise SpeechLost("the synthesiser produced no sound")
        return samples

    def _engine_voice(self) -> str | None:
        driver = self.engine.proxy._driver if self.engine.driver_name == "espeak" else self.engine
        return driver.getProperty("voice")

    def _render_espeak(self, text: str, properties: dict[str, Any]) -> np.ndarray:
        import ctypes

        import numpy as np
        from pyttsx3.drivers import _espeak

        tag = next(self._utterances)  # user_data of this utterance: late sound of an abandoned one is ignored
        chunks: list[bytes] = []
        ended = threading.Event()

        def on_sound(wav: Any, count: int, events: Any) -> int:
            if events[0].user_data != tag:
                return 0
            if count > 0:
                chunks.append(ctypes.string_at(wav, count * 2))
            i = 0
            while events[i].type != _espeak.EVENT_LIST_TERMINATED:
                if events[i].type == _espeak.EVENT_MSG_TERMINATED:
                    ended.set()
                i += 1
            return 0

        try:
            _espeak.SetSynthCallback(on_sound)  # replaces the pyttsx3 driver's, which we never use to speak
            for name, value in properties.items():
                self.engine.proxy._driver.setProperty(name, value)  # the driver's own mapping, applied now
            status = _espeak.Synth(text, flags=_espeak.ENDPAUSE | _espeak.CHARS_UTF8, user_data=tag)
        except Exception as exc:
            raise SpeechLost(f"the synthesiser failed: {exc}") from exc
        if status != _espeak.EE_OK:
            raise SpeechLost(f"espeak-ng refused the text (status {status})")
        if not ended.wait(SYNTH_TIMEOUT + SYNTH_TIMEOUT_PER_CHAR * len(text)):
            _espeak.Cancel()
            raise SpeechLost("the synthesiser never finished the utterance")
        _espeak.Synchronize()  # espeak-ng is idle again before the next utterance's settings
        pcm = np.frombuffer(b"".join(chunks), "<i2").astype(np.float32) / 32768.0
        return resample(pcm, ESPEAK_RATE, RATE)

    def _render_file(self, text: str, properties: dict[str, Any]) -> np.ndarray:
        # set for every utterance: the engine is shared per process
        for name, value in properties.items():
            self.engine.setProperty(name, value)
        self.path.unlink(missing_ok=True)
        self._ended.clear()
        self._completed, self._error = False, None
        try:
            self.engine.save_to_file(text, str(self.path))
            self.engine.runAndWait()
        except Exception as exc:
            raise SpeechLost(f"the synthesiser failed: {exc}") from exc
        if self.engine.driver_name in _ANNOUNCES_END:
            if not self._ended.wait(SYNTH_TIMEOUT + SYNTH_TIMEOUT_PER_CHAR * len(text)):
                self.engine.stop()
                raise SpeechLost("the synthesiser never finished the utterance")
            if not self._completed:
                raise SpeechLost("the synthesiser cut the utterance short")
        if self._error is not None:
            raise SpeechLost(f"the synthesiser failed: {self._error}")
        try:
            return read_audio(self.path)
        except (UserError, OSError, ValueError, KeyError, struct.error) as exc:
            raise SpeechLost(f"the synthesised sound cannot be read: {exc}") from exc

    def close(self) -> None:
        """Unhook from the engine, which lives on (pyttsx3 keeps one per process)."""
        for token in self._connections:
            self.engine.disconnect(token)


def voice_for(voices: list[Any], code: str) -> str:
    """The id of the voice for language `code` among pyttsx3's `voices`: one for exactly that language
    first (espeak-ng's "de"), then the language's main voice (the file named after it: "roa/fr" before
    fr-be and fr-ch), then any regional one; "" when none speaks it."""
    best: tuple[int, str] | None = None
    for voice in voices:
        tags = [str(tag).lower().replace("_", "-") for tag in getattr(voice, "languages", None) or []]
        if not any(tag == code or tag.startswith(code + "-") for tag in tags):
            continue
        rank = 0 if code in tags else 1 if str(voice.id).lower().rsplit("/", 1)[-1] == code else 2
        if best is None or rank < best[0]:
            best = (rank, str(voice.id))
    return best[1] if best else ""


def _voice_id(voices: list[Any], wanted: str) -> str:
    for voice in voices:
        if wanted.lower() in (str(voice.id).lower(), str(voice.name).lower()):
            return voice.id
    names = ", ".join(sorted({str(v.name) for v in voices})[:12])
    raise UserError(_("The voice {wanted!r} set in speech.voice is not installed.", wanted=wanted),
                    _("Leave speech.voice empty for the default voice, or pick one of: {names}.", names=names))


def install_hint() -> str:
    if sys.platform == "win32":
        return _("Check that Windows speech (SAPI5) is installed, and reinstall describe-screen to get comtypes.")
    if sys.platform == "darwin":
        return _("Reinstall describe-screen so that pyobjc is installed.")
    return _("Install espeak-ng, for example with: sudo apt install espeak-ng.")


def read_audio(path: Path) -> np.ndarray:
    """Mono float32 samples at RATE from a WAV or AIFF file (what the pyttsx3 drivers write)."""
    samples, rate, _ = read_sound(path)
    return resample(samples, rate, RATE)
