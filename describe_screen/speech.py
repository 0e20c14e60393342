"""Speak results aloud, sentence by sentence, and stop at once when asked.

When the user runs a screen reader (speech.output, see describe_screen/screenreader), it says the
sentences in the user's own voice and a braille display shows them. Otherwise one speech thread owns
the pyttsx3 engine (SAPI5's COM objects belong to the thread that made them) and renders each utterance
to samples, completely or not at all (a sentence that fails twice is reported in `lost`); an output then
plays them: the sound card (sounddevice), or, with a speech file, one growing WAV file paced in real
time so it holds exactly what a listener would have heard, including speech cut short by stop().
Cues and ticks are short tones through the same output, so they never talk over our own speech.
"""

from __future__ import annotations

import contextlib
import itertools
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

from describe_screen import i18n, language
from describe_screen.config import SpeechConfig
from describe_screen.errors import UserError
from describe_screen.i18n import N_, _, ngettext
from describe_screen.sound import read_sound, resample

if TYPE_CHECKING:
    import numpy as np

    from describe_screen.screenreader import Choice, ScreenReader
    from describe_screen.screenreader.braille import BrailleDisplay

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
# A clause ends at a comma, semicolon or colon followed by white space (so not in "1,000" or "10:30"), or
# at a dash between words. The first utterance of a stream may end at one (first_utterance).
_CLAUSE = re.compile(r"[,;:]\s+|\s+[-–—]+\s+|—")
FIRST_CLAUSE_WORDS = 4  # fewer words than this before a clause break are too little to say on their own

DRIVER_NAMES = {"espeak": "espeak-ng", "sapi5": "SAPI5", "nsss": "NSSpeechSynthesizer", "avspeech": "AVSpeech"}


def split_sentences(text: str) -> tuple[list[str], str]:
    """Complete sentences at the start of `text`, and the unfinished rest."""
    sentences, start = [], 0
    for end in _sentence_ends(text):
        if sentence := text[start:end].strip():
            sentences.append(sentence)
        start = end
    return sentences, text[start:]


def _sentence_ends(text: str) -> Iterator[int]:
    """Where each sentence of `text` ends (after the white space that follows it)."""
    start = 0
    for match in _END.finditer(text):
        if "\n" not in match.group() and _ABBREVIATION.search(text, start, match.start() + 1):
            continue
        yield match.end()
        start = match.end()


def first_utterance(text: str) -> tuple[str, str]:
    """The first utterance of a stream once `text` holds it, and the rest (("", text) until then).

    It is the first sentence once that has arrived whole; until then, its first clause with
    FIRST_CLAUSE_WORDS words before the break: a long first sentence would otherwise hold back the first
    words until its last token is decoded. Later utterances are whole sentences (split_sentences)."""
    text = text.lstrip()
    if (end := next(_sentence_ends(text), None)) is not None:  # here whole: nothing to wait for
        return text[:end].strip(), text[end:]
    for match in _CLAUSE.finditer(text):
        if len(text[:match.end()].split()) >= FIRST_CLAUSE_WORDS:
            return text[:match.end()].strip(), text[match.end():]
    return "", text


class Speaker:
    """Queue speech and cues; play them in order on one thread; stop() silences everything at once."""

    def __init__(self, config: SpeechConfig, speech_file: Path | None = None, paced: bool | None = None,
                 braille: bool | None = None) -> None:
        """`paced=False` writes a speech file as fast as it is made instead of in real time (tests that do
        not time the stop key); None follows DESCRIBE_SCREEN_FAST_SPEECH_FILE, which test suites set.
        `braille`: show answers on a connected braille display (default: when speaking to a person, i.e.
        without a speech file)."""
        self.config = config
        self.spoken: list[str] = []  # utterances actually started, in order
        self.lost: list[str] = []  # sentences the synthesiser failed on twice: the user did not hear them
        self.voices: list[tuple[str, str]] = []  # (sentence, our own voice that said it); none for a screen reader
        if paced is None:
            paced = os.environ.get("DESCRIBE_SCREEN_FAST_SPEECH_FILE", "") != "1"
        # a speech file is always our own voice (tests, headless machines); else speech.output decides
        self._reader: ScreenReader | None = None
        self.reason = _("A speech file was asked for: speaking with our own voice into it.")
        if speech_file is None:
            choice = choose_reader(config.output)
            self._reader, self.reason = choice.reader, choice.reason
        self._output: _FileOutput | _DeviceOutput | None
        if speech_file:
            self._output = _FileOutput(speech_file, paced)
        elif self._reader is None:
            self._output = _DeviceOutput()
        else:  # the screen reader speaks; our cues still need a sound card, and go without one
            self._output = _optional_device()
        self._braille: BrailleDisplay | None = None
        if braille or (braille is None and speech_file is None):
            from describe_screen.screenreader.braille import connect

            self._braille = connect()
        self._queue: queue.Queue[tuple[int, str, str] | None] = queue.Queue()
        self._state = threading.Condition()
        self._generation = 0  # bumped by stop(): queued or playing items of older generations are dropped
        self._pending = 0  # items queued or playing
        self._driver = ""
        self._voice_words = ""  # which voice speaks which language, for `doctor`
        self._failure: UserError | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name="speech", daemon=True)
        self._thread.start()
        started.wait()
        if self._failure is not None:
            self._close_outputs()
            raise self._failure

    def say(self, text: str) -> None:
        """Queue `text`, one utterance per sentence so stop() and the first words come quickly."""
        sentences, rest = split_sentences(text)
        for sentence in [*sentences, rest.strip()]:
            if sentence:
                self._enqueue("say", sentence)

    def say_stream(self, pieces: Iterable[str], cancelled: Callable[[], bool] = lambda: False,
                   early: bool = True) -> str:
        """Speak text as it is produced: the first clause (first_utterance) the moment it is complete, so
        the first words come early, then each sentence the moment it is complete. `early=False` for text
        made at once in parts (an explored element): its first sentence is said whole.

        Returns all the text received (up to cancellation).
        """
        received, buffer, started = [], "", not early
        for piece in pieces:
            if cancelled():
                break
            received.append(piece)
            buffer += piece
            if not started:
                first, buffer = first_utterance(buffer)
                if not first:
                    continue
                self._enqueue("say", first)
                started = True
            sentences, buffer = split_sentences(buffer)
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
        for end in (self._reader and self._reader.cancel, self._braille and self._braille.release):
            if end:
                try:
                    end()
                except Exception:  # the screen reader or braille server went away: our own silence holds
                    log.exception("stopping the screen reader's speech or braille failed")

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
        """Stop speaking, end the speech thread and finish the speech file. A finished answer is left
        alone: a screen reader may still be saying its last words, which stop() would cut."""
        if not self._thread.is_alive():
            return
        if self._pending:
            self.stop()
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._close_outputs()

    def _close_outputs(self) -> None:
        if self._output is not None:
            self._output.close()
        if self._reader is not None:
            self._reader.close()
        if self._braille is not None:
            self._braille.close()

    def braille(self) -> str:
        """The braille display answers are shown on, for `doctor`; "" when none."""
        return self._braille.name if self._braille is not None else ""

    def driver(self) -> str:
        """What speaks and where to, for `doctor`, e.g. "espeak-ng via pyttsx3, playing on default"."""
        if self._reader is not None:
            if self._output and self.config.cues:
                return _("{reader}, cues {output}", reader=self._reader.name, output=self._output.describe())
            return _("{reader}, no cues", reader=self._reader.name)
        assert self._output is not None
        return _("{driver} via pyttsx3, {output}. {voice}", driver=self._driver, output=self._output.describe(),
                 voice=self._voice_words)

    def _enqueue(self, kind: str, payload: str) -> None:
        with self._state:
            if not self._thread.is_alive():  # closed: nothing would ever play it
                return
            self._pending += 1
            self._queue.put((self._generation, kind, payload))

    def _run(self, started: threading.Event) -> None:
        if self._reader is not None:
            started.set()
            self._run_reader(self._reader)
            return
        with tempfile.TemporaryDirectory(prefix="describe-screen-speech-", dir=memory_dir()) as tmp:
            try:
                voice = _Voice(self.config, Path(tmp))
                self._driver, self._voice_words = voice.name, voice.describe()
            except UserError as exc:
                self._failure = exc
                return
            except Exception as exc:  # a broken driver install fails in many ways; all mean "no voice"
                self._failure = UserError(_("The speech synthesiser failed to start ({exc}).", exc=exc),
                                          _install_hint())
                return
            finally:
                started.set()
            threading.Thread(target=language.warm_up, name="language-warm-up", daemon=True).start()
            tones = {name: _tone(notes, level * self.config.volume) for name, (notes, level) in CUES.items()}
            try:
                while (item := self._queue.get()) is not None:
                    generation, kind, payload = item
                    try:
                        if generation == self._generation:
                            samples = self._render(voice, payload) if kind == "say" else tones[payload]
                            if generation == self._generation:
                                if kind == "say":
                                    self._started(payload, generation)
                                    self.voices.append((payload, voice.last))
                                    del self.voices[:-KEEP_SPOKEN]
                                self._play(samples, generation)
                    except SpeechLost:
                        self._report_lost(voice, payload, tones["error"], generation)
                    except Exception:  # one bad utterance must not silence everything after it
                        log.exception("speaking %r failed", payload)
                    finally:
                        with self._state:
                            self._pending -= 1
                            self._state.notify_all()
            finally:
                voice.close()

    def _run_reader(self, reader: ScreenReader) -> None:
        """The screen reader says the sentences; tones still play here (when there is a sound card)."""
        tones = {name: _tone(notes, level * self.config.volume) for name, (notes, level) in CUES.items()}
        silenced = -1  # an answer the screen reader talked over: the rest of it, even still streaming, is dropped
        while (item := self._queue.get()) is not None:
            generation, kind, payload = item
            try:
                if generation != self._generation or generation == silenced:
                    continue
                if kind == "tone":
                    if self._output is not None:
                        self._play(tones[payload], generation)
                    continue
                self._started(payload, generation)
                said = reader.speak(payload, lambda g=generation: g != self._generation)
                if not said and generation == self._generation:
                    log.info("the screen reader interrupted us: the rest of this answer is dropped")
                    silenced = generation
            except Exception:  # the screen reader went away mid-answer: keep serving, say it in the log
                log.exception("speaking %r through %s failed", payload, reader.name)
            finally:
                with self._state:
                    self._pending -= 1
                    self._state.notify_all()

    def _started(self, sentence: str, generation: int) -> None:
        """A sentence starts being spoken: list it, and show it in braille."""
        self.spoken.append(sentence)
        del self.spoken[:-KEEP_SPOKEN]
        if self._braille is not None:
            self._braille.show(generation, sentence)

    def _play(self, samples: np.ndarray, generation: int) -> None:
        assert self._output is not None
        self._output.play(samples, lambda: generation != self._generation)

    @staticmethod
    def _render(voice: _Voice, text: str) -> np.ndarray:
        """Synthesise `text`, trying a second time before giving the sentence up as lost."""
        try:
            return voice.render(text)
        except SpeechLost as exc:
            log.warning("speech synthesis failed (%s); trying %r once more", exc, text)
            return voice.render(text)

    def _report_lost(self, voice: _Voice, text: str, error_tone: np.ndarray, generation: int) -> None:
        """A sentence failed twice: remember it (the CLI then exits non-zero), log it and say so."""
        self.lost.append(text)
        del self.lost[:-KEEP_SPOKEN]
        log.error("speech synthesis failed twice; the user did not hear: %r", text)
        if generation != self._generation:
            return
        try:
            notice = voice.render(_(LOST_NOTICE))
        except SpeechLost:  # the synthesiser is broken for good: the tone and the printed error remain
            notice = None
        self._play(error_tone, generation)
        if notice is not None:
            self._play(notice, generation)


def choose_reader(output: str) -> Choice:
    from describe_screen.screenreader import choose

    return choose(output)


def _optional_device() -> _DeviceOutput | None:
    try:
        return _DeviceOutput()
    except UserError:
        return None


def memory_dir() -> str | None:
    """A folder in memory (tmpfs) for the synthesiser's per-sentence sound files, so spoken screen text
    never reaches the disk; None (the system temp folder) where there is none, as on Windows and macOS."""

    for folder in (os.environ.get("XDG_RUNTIME_DIR", ""), "/dev/shm"):
        if folder and os.path.isdir(folder) and os.access(folder, os.W_OK):
            return folder
    return None


# pyttsx3.init() hands every caller the same engine per process: two Speakers must take turns.
_ENGINE_LOCK = threading.Lock()

# Drivers that write their file on a thread of their own and announce its end ("finished-utterance").
_ANNOUNCES_END = {"nsss"}
ESPEAK_RATE = 22050  # what espeak-ng's voices are made at (pyttsx3's espeak driver assumes the same)
# How long synthesis may take before it counts as failed: generous, since a loaded machine is slow.
SYNTH_TIMEOUT = 15.0
SYNTH_TIMEOUT_PER_CHAR = 0.05

LOST_NOTICE = N_("Part of the answer could not be spoken. It is printed in full.")


class SpeechLost(Exception):
    """The synthesiser did not deliver a complete utterance."""


def lost_speech_error(lost: list[str]) -> UserError:
    """What the user is told when sentences could not be spoken even on a second try."""
    return UserError(ngettext("The speech synthesiser failed, so {n} sentence of the answer could not be spoken: "
                              "{lost}", "The speech synthesiser failed, so {n} sentences of the answer could not be "
                              "spoken: {lost}", len(lost), lost=" ".join(lost)),
                     _("Run the command again; if it keeps failing, run describe-screen doctor."))


class _Voice:
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
                            _install_hint()) from exc
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


def _install_hint() -> str:
    if sys.platform == "win32":
        return _("Check that Windows speech (SAPI5) is installed, and reinstall describe-screen to get comtypes.")
    if sys.platform == "darwin":
        return _("Reinstall describe-screen so that pyobjc is installed.")
    return _("Install espeak-ng, for example with: sudo apt install espeak-ng.")


def read_audio(path: Path) -> np.ndarray:
    """Mono float32 samples at RATE from a WAV or AIFF file (what the pyttsx3 drivers write)."""
    samples, rate, _ = read_sound(path)
    return resample(samples, rate, RATE)


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


class _DeviceOutput:
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
