"""Audio input: WAV reading in every common layout, resampling, speech checks, push-to-talk recorders.

Speech comes from the real espeak-ng; no speech recognition model is loaded here (see test_asr.py).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from describe_screen import microphone as audio
from describe_screen.errors import UserError
from describe_screen.microphone import (
    SAMPLE_RATE,
    MicrophoneRecorder,
    WavFileRecorder,
    has_speech,
    load_wav,
    read_wav,
    trim_silence,
)
from describe_screen.sound import resample


def speak(folder: Path, text: str, name: str = "q.wav", voice: str = "en-us", rate: int = 140) -> Path:
    """A spoken question from espeak-ng (22050 Hz mono 16-bit), in `voice` (US English unless told) at `rate`
    words a minute (a calm 140 unless told)."""
    if not shutil.which("espeak-ng"):
        pytest.fail("espeak-ng is missing: install it (Debian: apt install espeak-ng).")
    path = folder / name
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(path), text], check=True, timeout=30)
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int, width: int = 2, fmt: int = 1,
              extensible: bool = False) -> Path:
    """Write samples in [-1, 1] (frames x channels) as a WAV of any width; float when fmt is 3."""
    samples = np.atleast_2d(samples.T).T if samples.ndim == 1 else samples
    channels = samples.shape[1]
    if fmt == 3:
        data = samples.astype("<f4" if width == 4 else "<f8").tobytes()
    elif width == 1:
        data = np.round(samples * 127 + 128).astype(np.uint8).tobytes()
    elif width == 3:
        ints = np.round(samples * (2**23 - 1)).astype("<i4").reshape(-1, 1).view(np.uint8)
        data = ints.reshape(-1, 4)[:, :3].tobytes()
    else:
        data = np.round(samples * (2 ** (8 * width - 1) - 1)).astype(f"<i{width}").tobytes()
    tag = 0xFFFE if extensible else fmt
    fmt_chunk = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * width, channels * width, width * 8)
    if extensible:  # cbSize, valid bits, channel mask, then the sub-format GUID starting with the real format
        fmt_chunk += struct.pack("<HHI", 22, width * 8, 0) + struct.pack("<H", fmt) + bytes(14)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
    body += b"LIST" + struct.pack("<I", 4) + b"INFO"  # an extra chunk that readers must step over
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)


def spectrum_peak(x: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """The loudest frequency in Hz."""
    mags = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(mags) * rate / len(x))


def amplitude_at(x: np.ndarray, freq: float, rate: int = SAMPLE_RATE) -> float:
    """The amplitude of one sine component (x holds a whole number of its periods closely enough)."""
    t = np.arange(len(x)) / rate
    return float(2 * np.hypot(np.mean(x * np.sin(2 * np.pi * freq * t)), np.mean(x * np.cos(2 * np.pi * freq * t))))


# -- reading and resampling ------------------------------------------------------------------


@pytest.mark.parametrize("rate", [22050, 44100, 48000, 8000])
def test_stereo_16bit_becomes_16khz_mono_with_same_duration_and_content(tmp_path, rate):
    left, right = tone(440, 2.0, rate), tone(1000, 2.0, rate)
    path = write_wav(tmp_path / "s.wav", np.stack([left, right], axis=1), rate)
    x = load_wav(path, 30)
    assert x.dtype == np.float32 and x.ndim == 1
    assert len(x) == 2 * SAMPLE_RATE
    inner = x[800:-800]  # away from the edges, where the filter sees padding
    assert amplitude_at(inner, 440) == pytest.approx(0.25, abs=0.005)  # each channel counts half
    assert amplitude_at(inner, 1000) == pytest.approx(0.25, abs=0.005)


def test_downsampling_removes_sound_above_8khz_instead_of_folding_it_down(tmp_path):
    # 12 kHz would fold to 4 kHz if 44.1 kHz were decimated without a low-pass filter
    x = resample(tone(12000, 1.0, 44100).astype(np.float32), 44100, SAMPLE_RATE)
    assert np.abs(x[800:-800]).max() < 0.02
    assert amplitude_at(x[800:-800], 4000) < 0.005


def test_resampled_sine_matches_the_exact_sine():
    x = resample(tone(440, 1.0, 44100).astype(np.float32), 44100, SAMPLE_RATE)
    exact = tone(440, 1.0, SAMPLE_RATE)
    assert np.abs(x - exact)[400:-400].max() < 1e-3


@pytest.mark.parametrize(("width", "fmt", "extensible"),
                         [(1, 1, False), (2, 1, True), (3, 1, False), (4, 1, False), (4, 3, False), (8, 3, True)])
def test_every_sample_width_decodes_to_the_same_values(tmp_path, width, fmt, extensible):
    samples = tone(500, 0.5, SAMPLE_RATE, amplitude=0.8)
    x = load_wav(write_wav(tmp_path / "w.wav", samples, SAMPLE_RATE, width, fmt, extensible), 30)
    assert np.abs(x - samples).max() < (0.01 if width == 1 else 1e-4)


def test_espeak_question_reads_at_its_real_length(tmp_path):
    path = speak(tmp_path, "What does the error say?")
    import wave

    with wave.open(str(path)) as w:
        seconds = w.getnframes() / w.getframerate()
    x = load_wav(path, 30)
    assert len(x) == pytest.approx(seconds * SAMPLE_RATE, abs=1)
    assert has_speech(x)


def test_sox_44khz_stereo_copy_reads_like_the_original(tmp_path):
    original = speak(tmp_path, "Is there a submit button?")
    copy = tmp_path / "copy.wav"
    subprocess.run(["sox", str(original), "-r", "44100", "-c", "2", "-b", "16", str(copy)], check=True, timeout=30)
    a, b = load_wav(original, 30), load_wav(copy, 30)
    assert abs(len(a) - len(b)) <= 2
    n = min(len(a), len(b))
    assert np.corrcoef(a[:n], b[:n])[0, 1] > 0.98


def test_long_file_is_cut_to_max_seconds_reading_only_the_start(tmp_path):
    speech = load_wav(speak(tmp_path, "Read the title of the window."), 30)
    path = write_wav(tmp_path / "long.wav", speech, SAMPLE_RATE)
    ten_minutes = 600 * SAMPLE_RATE * 2
    with path.open("r+b") as f:  # grow the data chunk with zeros (sparse on disk) and fix both sizes
        f.truncate(path.stat().st_size + ten_minutes - len(speech) * 2)
        size = path.stat().st_size
        f.seek(4)
        f.write(struct.pack("<I", size - 8))
        f.seek(size - 600 * SAMPLE_RATE * 2 - 4)
        f.write(struct.pack("<I", 600 * SAMPLE_RATE * 2))
    x, seconds = read_wav(path, 30)
    assert seconds == pytest.approx(600)
    assert len(x) == 30 * SAMPLE_RATE
    assert np.abs(x[: len(speech)] - speech).max() < 1e-4 and not x[len(speech):].any()


# -- unreadable files -------------------------------------------------------------------------


def _refusal(path: Path) -> UserError:
    with pytest.raises(UserError) as err:
        load_wav(path, 30)
    assert err.value.fix, "every refusal says what to do next"
    return err.value


def test_missing_file_is_refused_plainly(tmp_path):
    assert "does not exist" in _refusal(tmp_path / "nope.wav").problem


def test_folder_is_refused_plainly(tmp_path):
    assert "is a folder" in _refusal(tmp_path).problem


@pytest.mark.parametrize("content", [b"", b"ID3\x03\x00 mp3 data here", b"hello, this is text\n" * 10])
def test_non_wav_is_refused_plainly(tmp_path, content):
    path = tmp_path / "q.wav"
    path.write_bytes(content)
    error = _refusal(path)
    assert error.problem == "The file q.wav is not a WAV sound file."
    assert "sox" in error.fix


def test_wav_without_samples_is_refused_as_empty(tmp_path):
    error = _refusal(write_wav(tmp_path / "q.wav", np.zeros(0), SAMPLE_RATE))
    assert error.problem == "The sound file q.wav is empty."


def test_compressed_wav_is_refused_with_a_conversion_hint(tmp_path):
    path = write_wav(tmp_path / "q.wav", tone(440, 0.1, 8000), 8000)
    data = bytearray(path.read_bytes())
    data[20:22] = struct.pack("<H", 0x11)  # IMA ADPCM
    path.write_bytes(bytes(data))
    error = _refusal(path)
    assert "encoding I cannot read" in error.problem and "-b 16" in error.fix


# -- speech or not ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def question(tmp_path_factory) -> np.ndarray:
    return load_wav(speak(tmp_path_factory.mktemp("q"), "What is in the menu?"), 30)


def test_silence_noise_and_hum_are_not_speech():
    rng = np.random.default_rng(0)
    assert not has_speech(np.zeros(0, np.float32))
    assert not has_speech(np.zeros(3 * SAMPLE_RATE, np.float32))
    assert not has_speech(rng.normal(0, 0.001, 3 * SAMPLE_RATE).astype(np.float32))  # quiet hiss
    assert not has_speech(rng.normal(0, 0.3, 3 * SAMPLE_RATE).astype(np.float32))  # loud hiss
    assert not has_speech(tone(50, 3.0, SAMPLE_RATE, 0.4).astype(np.float32))  # mains hum
    assert len(trim_silence(rng.normal(0, 0.3, 3 * SAMPLE_RATE).astype(np.float32))) == 0


def test_speech_is_found_alone_and_over_background_noise(question):
    rng = np.random.default_rng(1)
    assert has_speech(question)
    noisy = question + rng.normal(0, 0.01, len(question)).astype(np.float32)  # a fan about 30 dB down
    assert has_speech(noisy)


def test_trim_keeps_the_speech_and_a_short_margin(question):
    gap = np.zeros(2 * SAMPLE_RATE, np.float32)
    trimmed = trim_silence(np.concatenate([gap, question, gap]))
    assert len(trimmed) < len(question) + 2 * (audio.MARGIN_SECONDS + audio.FRAME_SECONDS) * SAMPLE_RATE
    # every loud sample of the question survives the cut
    assert np.array_equal(trimmed[np.abs(trimmed) > 0.01], question[np.abs(question) > 0.01])


# -- push-to-talk recorders -------------------------------------------------------------------


def test_wav_recorder_push_to_talk_flow(tmp_path, question):
    path = write_wav(tmp_path / "q.wav", question, SAMPLE_RATE)
    rec = WavFileRecorder(path, max_seconds=30)
    assert len(rec.stop()) == 0, "nothing was recorded before the key was pressed"
    rec.start()
    rec.start()  # a held key repeats its press
    x = rec.stop()
    assert np.abs(x - question).max() < 1e-4 and rec.note == ""
    assert len(rec.stop()) == 0, "the recording is handed over once"


def test_wav_recorder_reports_a_bad_file_at_key_press_and_a_cut_after_release(tmp_path, question):
    with pytest.raises(UserError, match="does not exist"):
        WavFileRecorder(tmp_path / "missing.wav").start()
    path = write_wav(tmp_path / "q.wav", np.concatenate([question, np.zeros(3 * SAMPLE_RATE)]), SAMPLE_RATE)
    rec = WavFileRecorder(path, max_seconds=2)
    rec.start()
    assert len(rec.stop()) == 2 * SAMPLE_RATE
    assert rec.note == "Your question was long, so I only listened to the first 2 seconds."


def test_microphone_recorder_without_any_input_device_says_what_to_do():
    with pytest.raises(UserError) as err:
        MicrophoneRecorder().start()
    assert err.value.problem == "No microphone was found."
    assert "Plug in a microphone" in err.value.fix and 'describe-screen ask "your question"' in err.value.fix


def test_microphone_recorder_names_a_missing_configured_device():
    with pytest.raises(UserError) as err:
        MicrophoneRecorder("Studio Mic 3000").start()
    assert err.value.problem == 'No microphone named "Studio Mic 3000" was found.'
    assert "voice.microphone" in err.value.fix


def test_microphone_list_is_empty_here_and_names_only_recording_devices(monkeypatch):
    import sounddevice

    assert audio.microphones() == []  # this machine (and CI) has no sound card
    monkeypatch.setattr(sounddevice, "query_devices", lambda: [
        {"name": "HDMI out", "max_input_channels": 0}, {"name": "USB mic", "max_input_channels": 1}])
    assert audio.microphones() == ["USB mic"]


class FakeStream:
    """Stands in for sounddevice.InputStream: on start it delivers `source` in 10 ms blocks."""

    source = np.zeros(0)
    opened: ClassVar[list[dict]] = []

    def __init__(self, device, samplerate, channels, dtype, callback):
        self.samplerate, self.callback = samplerate, callback
        FakeStream.opened.append({"device": device, "samplerate": samplerate, "channels": channels})

    def start(self):
        block = int(self.samplerate) // 100
        for i in range(0, len(self.source), block):
            chunk = self.source[i:i + block].astype(np.float32)[:, None]
            self.callback(chunk, len(chunk), None, None)

    def stop(self):
        pass

    def close(self):
        pass


def test_microphone_recorder_resamples_the_device_rate_and_keeps_the_first_max_seconds(monkeypatch):
    import sounddevice

    FakeStream.source, FakeStream.opened = tone(440, 2.0, 48000), []
    monkeypatch.setattr(sounddevice, "InputStream", FakeStream)
    monkeypatch.setattr(sounddevice, "query_devices", lambda device=None, kind=None: {
        "name": "USB mic", "max_input_channels": 1, "default_samplerate": 48000.0})
    rec = MicrophoneRecorder("USB mic", max_seconds=1.5)
    rec.start()
    rec.start()  # key repeat: still one stream
    x = rec.stop()
    assert FakeStream.opened == [{"device": "USB mic", "samplerate": 48000, "channels": 1}]
    assert len(x) == int(1.5 * SAMPLE_RATE)
    assert spectrum_peak(x) == pytest.approx(440, abs=2)
    assert np.abs(x - tone(440, 1.5, SAMPLE_RATE))[400:-400].max() < 1e-3
    assert rec.note == "Your question was long, so I only listened to the first 1.5 seconds."
    assert len(rec.stop()) == 0


def test_compressed_recordings_are_decoded_like_their_wav(tmp_path):
    """FLAC and Ogg questions go through faster-whisper's decode_audio and match the WAV they came from."""
    original = speak(tmp_path, "Read the title of the window.")
    reference = load_wav(original, 30)
    for kind in ("flac", "ogg"):
        copy = tmp_path / f"question.{kind}"
        subprocess.run(["sox", str(original), str(copy)], check=True)
        decoded = load_wav(copy, 30)
        assert abs(len(decoded) - len(reference)) < SAMPLE_RATE // 20, kind
        n = min(len(decoded), len(reference))
        assert np.corrcoef(decoded[:n], reference[:n])[0, 1] > 0.9, kind
