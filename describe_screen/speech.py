"""Speak results aloud, sentence by sentence, and stop at once when asked.

When the user runs a screen reader (speech.output, see describe_screen/screenreader), it says the
sentences in the user's own voice and a braille display shows them. Otherwise one speech thread owns
the pyttsx3 engine (SAPI5's COM objects belong to the thread that made them: synthesis.py) and renders each
utterance to samples, completely or not at all (a sentence that fails twice is reported in `lost`); an output
then plays them (playback.py: the sound card, or a speech file paced in real time). Text is cut into
utterances by utterances.py. Cues and ticks are short tones through the same output, so they never talk over
our own speech.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from describe_screen import language
from describe_screen.config import SpeechConfig
from describe_screen.errors import UserError
from describe_screen.i18n import N_, _, ngettext
from describe_screen.playback import DeviceOutput, FileOutput, tone
from describe_screen.synthesis import SpeechLost, Voice, install_hint
from describe_screen.utterances import first_utterance, split_sentences

if TYPE_CHECKING:
    import numpy as np

    from describe_screen.screenreader import Choice, ScreenReader
    from describe_screen.screenreader.braille import BrailleDisplay

log = logging.getLogger(__name__)

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
        self._output: FileOutput | DeviceOutput | None
        if speech_file:
            self._output = FileOutput(speech_file, paced)
        elif self._reader is None:
            self._output = DeviceOutput()
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
                voice = Voice(self.config, Path(tmp))
                self._driver, self._voice_words = voice.name, voice.describe()
            except UserError as exc:
                self._failure = exc
                return
            except Exception as exc:  # a broken driver install fails in many ways; all mean "no voice"
                self._failure = UserError(_("The speech synthesiser failed to start ({exc}).", exc=exc),
                                          install_hint())
                return
            finally:
                started.set()
            threading.Thread(target=language.warm_up, name="language-warm-up", daemon=True).start()
            tones = {name: tone(notes, level * self.config.volume) for name, (notes, level) in CUES.items()}
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
        tones = {name: tone(notes, level * self.config.volume) for name, (notes, level) in CUES.items()}
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
    def _render(voice: Voice, text: str) -> np.ndarray:
        """Synthesise `text`, trying a second time before giving the sentence up as lost."""
        try:
            return voice.render(text)
        except SpeechLost as exc:
            log.warning("speech synthesis failed (%s); trying %r once more", exc, text)
            return voice.render(text)

    def _report_lost(self, voice: Voice, text: str, error_tone: np.ndarray, generation: int) -> None:
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


def _optional_device() -> DeviceOutput | None:
    try:
        return DeviceOutput()
    except UserError:
        return None


def memory_dir() -> str | None:
    """A folder in memory (tmpfs) for the synthesiser's per-sentence sound files, so spoken screen text
    never reaches the disk; None (the system temp folder) where there is none, as on Windows and macOS."""

    for folder in (os.environ.get("XDG_RUNTIME_DIR", ""), "/dev/shm"):
        if folder and os.path.isdir(folder) and os.access(folder, os.W_OK):
            return folder
    return None


LOST_NOTICE = N_("Part of the answer could not be spoken. It is printed in full.")


def lost_speech_error(lost: list[str]) -> UserError:
    """What the user is told when sentences could not be spoken even on a second try."""
    return UserError(ngettext("The speech synthesiser failed, so {n} sentence of the answer could not be spoken: "
                              "{lost}", "The speech synthesiser failed, so {n} sentences of the answer could not be "
                              "spoken: {lost}", len(lost), lost=" ".join(lost)),
                     _("Run the command again; if it keeps failing, run describe-screen doctor."))
