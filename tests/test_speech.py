"""Speech through real espeak-ng into a real-time speech file: what a listener would have heard."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from describe_screen.config import SpeechConfig
from describe_screen.errors import UserError
from describe_screen.sound import RATE
from describe_screen.speech import Speaker
from describe_screen.synthesis import Voice, read_audio
from describe_screen.utterances import first_utterance, split_sentences

FAST = SpeechConfig(rate=400)
READING = " ".join(f"This is sentence number {n} of a long reading about the screen." for n in range(1, 11))


def samples(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.float32) / 32768


def loud_fraction(audio: np.ndarray, window: int = RATE // 20) -> float:
    """Share of 50 ms windows that are clearly not silence."""
    frames = audio[: len(audio) // window * window].reshape(-1, window)
    return float(np.mean(np.sqrt(np.mean(frames**2, axis=1)) > 0.02)) if len(frames) else 0.0


@pytest.fixture
def speaker(tmp_path) -> Iterator[Speaker]:
    s = Speaker(FAST, tmp_path / "speech.wav")
    yield s
    s.close()


def test_split_sentences_keeps_abbreviations_and_numbers_together() -> None:
    done, rest = split_sentences("Dr. Smith wrote e.g. this. Version 3.5 is out!\nNext line\nHalf a sent")
    assert done == ["Dr. Smith wrote e.g. this.", "Version 3.5 is out!", "Next line"]
    assert rest == "Half a sent"
    assert split_sentences('He said "stop." Then left') == (['He said "stop."'], "Then left")


def test_speech_file_holds_speech_and_spoken_lists_it(speaker, tmp_path) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    speaker.say(text)
    assert speaker.wait_idle(20)
    assert speaker.spoken == [text]
    assert "espeak-ng via pyttsx3" in speaker.driver() and "speech.wav" in speaker.driver()
    speaker.close()
    audio = samples(tmp_path / "speech.wav")
    assert 0.8 < len(audio) / RATE < 6
    assert loud_fraction(audio) > 0.4
    speaker.say("Nobody hears this.")  # after close(): ignored, never waited for
    assert speaker.wait_idle(0.1)
    assert speaker.spoken == [text]


def test_stop_cuts_a_long_reading_at_once(tmp_path) -> None:
    speaker = Speaker(FAST, tmp_path / "speech.wav", paced=True)  # real time: what a listener hears
    speaker.say(READING)
    deadline = time.monotonic() + 10
    while not speaker.spoken and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    with wave.open(str(tmp_path / "speech.wav"), "rb") as growing:  # readable while it grows
        assert growing.getnframes() > RATE // 4
    started = time.monotonic()
    speaker.stop()
    assert speaker.wait_idle(2)
    assert time.monotonic() - started < 0.3
    speaker.say("After the stop.")
    assert speaker.wait_idle(10)
    speaker.close()
    heard = len(samples(tmp_path / "speech.wav")) / RATE
    reading = split_sentences(READING + " ")[0]
    assert len(reading) == 10
    assert speaker.spoken[0] == reading[0]
    assert speaker.spoken[-1] == "After the stop."
    assert len(speaker.spoken) <= 3  # one or two sentences of the reading, then the new one
    voice = Voice(FAST, tmp_path)  # the whole reading, rendered without playing it
    full = sum(len(voice.render(sentence)) for sentence in reading) / RATE
    assert full > 10
    assert heard < full / 3


def test_say_stream_speaks_the_first_sentence_before_the_stream_ends(speaker) -> None:
    heard_before_end: list[str] = []

    def slow() -> Iterator[str]:
        yield from ("Two buttons ", "are shown. ")
        for word in ("The ", "rest ", "of ", "this ", "answer ", "takes ", "a ", "while"):
            time.sleep(0.15)
            yield word
        heard_before_end.extend(speaker.spoken)
        yield "."

    text = speaker.say_stream(slow())
    assert text == "Two buttons are shown. The rest of this answer takes a while."
    assert heard_before_end == ["Two buttons are shown."]
    assert speaker.wait_idle(20)
    assert speaker.spoken == ["Two buttons are shown.", "The rest of this answer takes a while."]


def test_say_stream_speaks_the_first_clause_of_a_long_first_sentence_before_the_rest_comes(speaker) -> None:
    heard_before_end: list[str] = []

    def tokens() -> Iterator[str]:
        yield from ("A", " file", " manager", " window", ",", " with")
        deadline = time.monotonic() + 10  # the rest of the sentence is still being decoded
        while not speaker.spoken and time.monotonic() < deadline:
            time.sleep(0.02)
        heard_before_end.extend(speaker.spoken)
        yield from (" two", " panes", " and", " a", " toolbar", ".", " Later", ",", " a", " second", " sentence",
                    ",", " with", " commas", ",", " is", " said", " whole", ".")

    text = speaker.say_stream(tokens())
    assert text == ("A file manager window, with two panes and a toolbar. "
                    "Later, a second sentence, with commas, is said whole.")
    assert heard_before_end == ["A file manager window,"]
    assert speaker.wait_idle(20)
    assert speaker.spoken == ["A file manager window,", "with two panes and a toolbar.",
                              "Later, a second sentence, with commas, is said whole."]


def test_say_stream_keeps_a_short_clause_or_a_short_first_sentence_whole(speaker) -> None:
    assert speaker.say_stream(iter(["Menu bar: File, Edit", " and", " Help.", " Saved, as you asked, at 10:30. "]))
    assert speaker.say_stream(iter(["Saved.", " Then, after", " a while, it closed."]))
    assert speaker.wait_idle(20)
    assert speaker.spoken == ["Menu bar: File, Edit and Help.", "Saved, as you asked, at 10:30.",
                              "Saved.", "Then, after a while, it closed."]


@pytest.mark.parametrize(("text", "first"), [
    ("1,000 files are in the folder, sorted", "1,000 files are in the folder,"),  # no break inside a number
    ("The clock says 10:30 in the corner. Next", "The clock says 10:30 in the corner."),
    ("The Network Settings window — a list", "The Network Settings window —"),
    ("Two dialogs are open—one asks", "Two dialogs are open—"),
    ("Dr. Smith wrote to you: two new", "Dr. Smith wrote to you:"),
    ("A dialog asks: save", ""),  # not yet: three words, and the sentence goes on
    # a first sentence that is here whole is said whole (an explored element, an answer sent at once)
    ("Field, Name, March, 1 of 1, at the top of the dialog. Button",
     "Field, Name, March, 1 of 1, at the top of the dialog."),
])
def test_first_utterance_ends_at_a_clause_break_after_four_words(text: str, first: str) -> None:
    head, rest = first_utterance(text)
    assert head == first
    assert (head + rest).replace(" ", "") == text.replace(" ", "")  # nothing lost


def test_say_stream_stops_reading_when_cancelled(speaker) -> None:
    cancel = threading.Event()

    def pieces() -> Iterator[str]:
        yield "First part. "
        cancel.set()
        yield "Second part. "

    assert speaker.say_stream(pieces(), cancel.is_set) == "First part. "
    assert speaker.wait_idle(10)
    assert speaker.spoken == ["First part."]


def dominant_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.fft.rfftfreq(len(audio), 1 / RATE)[int(np.argmax(spectrum))])


def test_cues_are_tones_and_can_be_turned_off(tmp_path) -> None:
    with_cues = Speaker(SpeechConfig(), tmp_path / "cues.wav")
    with_cues.cue("listen")
    assert with_cues.wait_idle(5)
    with pytest.raises(ValueError, match="unknown cue"):
        with_cues.cue("bogus")
    with_cues.close()
    tone = samples(tmp_path / "cues.wav")
    assert abs(len(tone) / RATE - 0.1) < 0.03
    assert abs(dominant_hz(tone) - 1000) < 20
    silent = Speaker(SpeechConfig(cues=False), tmp_path / "none.wav")
    silent.cue("error")
    assert silent.wait_idle(5)
    silent.close()
    assert len(samples(tmp_path / "none.wav")) == 0
    assert with_cues.spoken == [] and silent.spoken == []


def test_working_ticks_while_busy(tmp_path) -> None:
    speaker = Speaker(SpeechConfig(tick_seconds=0.5), tmp_path / "ticks.wav")
    with speaker.working():
        time.sleep(1.35)
    assert speaker.wait_idle(5)
    speaker.close()
    audio = samples(tmp_path / "ticks.wav")
    assert abs(len(audio) / RATE - 2 * 0.025) < 0.01  # two ticks, nothing else
    assert abs(dominant_hz(audio) - 1200) < 60


def test_bad_settings_and_paths_are_explained(tmp_path, monkeypatch) -> None:
    with pytest.raises(UserError, match=r"speech\.voice") as err:
        Speaker(SpeechConfig(voice="No Such Voice"), tmp_path / "v.wav")
    assert "Leave speech.voice empty" in err.value.fix
    with pytest.raises(UserError, match="cannot be written"):
        Speaker(FAST, tmp_path / "missing-folder" / "v.wav")
    import sounddevice

    def no_device(*args, **kwargs):
        raise sounddevice.PortAudioError("Error querying device -1")

    monkeypatch.setattr(sounddevice, "query_devices", no_device)
    with pytest.raises(UserError, match="No sound output device") as err:
        Speaker(FAST)
    assert "--speech-file" in err.value.fix


def test_read_audio_converts_aiff_stereo_to_mono_at_output_rate(tmp_path) -> None:
    """macOS voices write big-endian AIFF; the 80-bit rate field and byte order must come out right."""
    rate, frames = 11025, 100
    left = np.full(frames, 8192)
    right = np.full(frames, 16384)
    pcm = np.stack([left, right], axis=1).astype(">i2").tobytes()
    exponent = 16383 + rate.bit_length() - 1
    comm = struct.pack(">hIh", 2, frames, 16) + struct.pack(">HQ", exponent, rate << (64 - rate.bit_length()))
    ssnd = struct.pack(">II", 0, 0) + pcm
    body = b"AIFF" + b"COMM" + struct.pack(">I", len(comm)) + comm + b"SSND" + struct.pack(">I", len(ssnd)) + ssnd
    path = tmp_path / "voice.aiff"
    path.write_bytes(b"FORM" + struct.pack(">I", len(body)) + body)
    audio = read_audio(path)
    assert len(audio) == frames * RATE // rate
    assert np.allclose(audio, (0.25 + 0.5) / 2, atol=1e-4)


def test_spoken_text_is_rendered_in_memory_not_on_disk(monkeypatch, tmp_path):
    """Privacy: the per-sentence sound files live in a tmpfs folder (XDG_RUNTIME_DIR or /dev/shm)."""
    from describe_screen.speech import memory_dir

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert memory_dir() == str(tmp_path)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    assert memory_dir() == "/dev/shm"


def test_every_sentence_is_rendered_whole_however_many_in_a_row(tmp_path) -> None:
    """The espeak driver writes its file on a thread of its own: render waits for the real end."""
    voice = Voice(FAST, tmp_path)
    try:
        sounds = [voice.render("Every sentence must arrive whole, however busy the machine is.") for _ in range(25)]
    finally:
        voice.close()
    lengths = [len(sound) for sound in sounds]
    assert max(lengths) - min(lengths) < 0.02 * max(lengths), lengths  # espeak-ng itself varies below 1 %
    assert min(lengths) / RATE > 1.0
    for sound in sounds:  # each ends with espeak-ng's closing pause: nothing was cut off
        assert np.abs(sound[-RATE // 50:]).max() < 1e-3


def test_a_sentence_that_fails_twice_is_reported_and_the_rest_still_spoken(tmp_path, monkeypatch) -> None:
    from pyttsx3.drivers import _espeak

    synth = _espeak.Synth
    attempts = []

    def failing(text: str, *args, **kwargs):
        if "Zebra" in text:
            attempts.append(text)
            raise RuntimeError("synthesis refused")
        return synth(text, *args, **kwargs)

    monkeypatch.setattr(_espeak, "Synth", failing)
    speaker = Speaker(SpeechConfig(rate=400, cues=False), tmp_path / "s.wav", paced=False)
    speaker.say("First one is fine. Zebra crossing ahead. Last one is fine too.")
    assert speaker.wait_idle(30)
    speaker.close()
    assert len(attempts) == 2  # tried once more before giving up
    assert speaker.lost == ["Zebra crossing ahead."]
    assert speaker.spoken == ["First one is fine.", "Last one is fine too."]
    from describe_screen.speech import LOST_NOTICE, lost_speech_error

    assert "1 sentence of the answer could not be spoken: Zebra crossing ahead." in str(lost_speech_error(speaker.lost))
    notice = len(_render_once(tmp_path, LOST_NOTICE))
    parts = sum(len(_render_once(tmp_path, s)) for s in speaker.spoken)
    assert len(samples(tmp_path / "s.wav")) > parts + notice - RATE // 10  # the notice was spoken too


def _render_once(tmp_path: Path, text: str) -> np.ndarray:
    voice = Voice(SpeechConfig(rate=400), tmp_path)
    try:
        return voice.render(text)
    finally:
        voice.close()


def test_speech_file_is_private(tmp_path) -> None:
    path = tmp_path / "screen-text.wav"
    path.write_bytes(b"")
    path.chmod(0o644)
    Speaker(FAST, path).close()
    assert path.stat().st_mode & 0o777 == 0o600


# -- one-shot runs of the command line: the whole answer is heard, or the command says it was not -------

def _describe(tmp_path: Path, image: Path, speech: Path, rate: int = 400, **env: str) -> subprocess.CompletedProcess:
    config = tmp_path / "config.toml"
    config.write_text(f"[speech]\nrate = {rate}\ncues = false\n")
    full_env = dict(os.environ, DESCRIBE_SCREEN_SOCKET=str(tmp_path / "none.sock"),
                    DESCRIBE_SCREEN_CONFIG=str(config), DESCRIBE_SCREEN_DATA=str(tmp_path / "data"),
                    DESCRIBE_SCREEN_FAST_SPEECH_FILE="1", **env)
    return subprocess.run([sys.executable, "-m", "describe_screen", "describe", "--image", str(image),
                           "--speech-file", str(speech)], capture_output=True, text=True, timeout=300, env=full_env)


def _text_image(path: Path, lines: list[str]) -> Path:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (900, 60 + 50 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 26)
    for n, line in enumerate(lines):
        draw.text((30, 30 + 50 * n), line, fill="black", font=font)
    image.save(path)
    return path


def test_thirty_one_shot_describes_on_busy_cores_all_speak_the_whole_answer(tmp_path) -> None:
    image = _text_image(tmp_path / "bill.png", ["Invoice due on Friday"])
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        runs = [_describe(tmp_path, image, tmp_path / f"run{n}.wav") for n in range(30)]
    finally:
        for process in busy:
            process.kill()
            process.wait()
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "Invoice due on Friday" in run.stdout
    seconds = [len(samples(tmp_path / f"run{n}.wav")) / RATE for n in range(30)]
    middle = sorted(seconds)[15]
    assert middle > 1.0
    assert all(abs(s - middle) <= 0.02 * middle for s in seconds), seconds
    assert all((tmp_path / f"run{n}.wav").stat().st_mode & 0o777 == 0o600 for n in range(30))


def test_a_forced_synthesis_failure_is_spoken_printed_and_exits_non_zero(tmp_path) -> None:
    """espeak-ng refuses every sentence naming Friday: the rest and the notice are heard, the exit code is 1."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "from pyttsx3.drivers import _espeak\n"
        "_synth = _espeak.Synth\n"
        "def _refuse(text, *args, **kwargs):\n"
        "    if 'Friday' in text:\n"
        "        raise RuntimeError('refused for the test')\n"
        "    return _synth(text, *args, **kwargs)\n"
        "_espeak.Synth = _refuse\n")
    image = _text_image(tmp_path / "bill.png", ["Invoice due on Friday"])
    speech = tmp_path / "out.wav"
    path = os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])
    run = _describe(tmp_path, image, speech, rate=170, PYTHONPATH=path)
    assert run.returncode == 1, run.stderr
    assert "Invoice due on Friday" in run.stdout  # the answer is printed in full
    assert "could not be spoken" in run.stderr and "Invoice due on Friday" in run.stderr
    from describe_screen.asr import transcribe_wav

    heard = set(re.findall(r"[a-z]+", transcribe_wav(speech).lower()))
    assert {"answer", "could", "spoken", "printed"} <= heard, heard
    assert "friday" not in heard


def test_the_pyttsx3_internals_speech_uses_exist_and_the_version_is_bounded_both_ways():
    """synthesis.py uses pyttsx3's private espeak binding and driver: the dependency must name a version range
    whose internals are these, and the installed one must be in it."""
    import importlib.metadata

    import pyttsx3
    from packaging.requirements import Requirement
    from pyttsx3.drivers import _espeak

    from describe_screen.models import tomllib

    declared = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    [requirement] = [Requirement(r) for r in declared["project"]["dependencies"] if r.startswith("pyttsx3")]
    assert {spec.operator for spec in requirement.specifier} == {">=", "<"}, requirement
    assert importlib.metadata.version("pyttsx3") in requirement.specifier
    for name in ("SetSynthCallback", "Synth", "Cancel", "Synchronize", "ENDPAUSE", "CHARS_UTF8", "EE_OK",
                 "EVENT_LIST_TERMINATED", "EVENT_MSG_TERMINATED"):
        assert hasattr(_espeak, name), name
    assert {"type", "user_data"} <= {field[0] for field in _espeak.EVENT._fields_}
    engine = pyttsx3.init()
    assert engine.driver_name == "espeak" and callable(engine.proxy._driver.setProperty)
