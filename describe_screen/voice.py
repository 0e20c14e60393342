"""Spoken questions: record while the ask key is held, then turn the recording into words.

The daemon only calls start() and stop(); what stands in for the microphone (a WAV file named in the
settings or the request), silence trimming and the speech recogniser (loaded once) live here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from describe_screen.config import VoiceConfig
from describe_screen.errors import UserError
from describe_screen.i18n import N_, _

if TYPE_CHECKING:
    from describe_screen.microphone import Recorder
    from describe_screen.speech import Speaker

ASK_AGAIN = N_("Hold the ask key while you speak, then let go.")


class VoiceInput:
    """One question at a time, from the microphone (or a recording), to text."""

    def __init__(self, config: VoiceConfig, speaker: Speaker, models_dir: Path | None = None) -> None:
        self.config = config
        self.models_dir = models_dir  # where `describe-screen models install` puts speech models
        self.speaker = speaker  # cues when listening starts and ends, and notes such as "cut after 30 s"
        self._recorder: Recorder | None = None
        self._asr: Any = None

    @property
    def listening(self) -> bool:
        return self._recorder is not None

    def start(self, audio: str = "") -> None:
        """Start recording; `audio` (or a .wav in the settings) is a recorded question standing in for the
        microphone."""
        from describe_screen.microphone import MicrophoneRecorder, WavFileRecorder

        if self._recorder is not None:  # a second start (two quick presses) must not leave a microphone open
            self._recorder.stop()
            self._recorder = None
        mic = self.config.microphone
        audio = audio or (mic if mic.lower().endswith(".wav") else "")
        if audio:
            recorder: Recorder = WavFileRecorder(Path(audio).expanduser(), max_seconds=self.config.max_seconds)
        else:
            recorder = MicrophoneRecorder(mic, max_seconds=self.config.max_seconds)
        recorder.start()
        self._recorder = recorder
        self.speaker.cue("listen")

    def ready(self) -> None:
        """Raise the UserError that says why no question could be heard (no model, no voice extra), before
        anything is recorded or read ahead; nothing is loaded or downloaded here."""
        self.recognizer().choice()

    def stop(self) -> str:
        """End the recording and return the question in words."""
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            raise UserError(_("No question is being recorded."), _(ASK_AGAIN))
        audio = recorder.stop()
        self.speaker.cue("listen_end")
        if recorder.note:
            self.speaker.say(recorder.note)
        return self._recognise(audio)

    def transcribe_file(self, path: Path) -> str:
        """A question recorded beforehand, as words (cut at the same limit as a held key)."""
        from describe_screen.microphone import cut_note, read_wav

        limit = self.config.max_seconds
        audio, seconds = read_wav(path, limit)
        if seconds > limit:
            self.speaker.say(cut_note(limit))
        return self._recognise(audio)

    def warm_up(self) -> None:
        """Load the speech recogniser now, so the first spoken question is as quick as the others."""
        self.recognizer().warm_up()

    def recognizer(self) -> Any:
        if self._asr is None:
            try:
                from describe_screen.asr import SpeechRecognizer
            except ImportError as exc:
                raise UserError(_("Voice questions need the voice part of describe-screen, which is not installed."),
                                _("Install it with: pip install \"describe-screen[voice]\", or type the question "
                                  "with: describe-screen ask \"your question\".")) from exc
            self._asr = SpeechRecognizer(self.config.asr_model, self.config.asr_device, models_dir=self.models_dir)
        return self._asr

    def _recognise(self, audio: Any) -> str:
        from describe_screen.microphone import has_speech, trim_silence

        if self.config.trim_silence:
            audio = trim_silence(audio)
        if not has_speech(audio):
            raise UserError(_("I heard no speech."), _(ASK_AGAIN))
        text = self.recognizer().transcribe(audio).strip()
        if not text:
            raise UserError(_("I could not make out the question."),
                            _("Please ask again, a little closer to the microphone."))
        return text
