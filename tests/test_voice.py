"""Voice input holds one recording at a time: a second start never leaves the first microphone open."""

from __future__ import annotations

import numpy as np
import pytest

from describe_screen import microphone
from describe_screen.config import VoiceConfig
from describe_screen.voice import VoiceInput


class Cues:
    """What VoiceInput says and plays, recorded (there is no sound device here)."""

    def __init__(self) -> None:
        self.heard: list[str] = []

    def cue(self, name: str) -> None:
        self.heard.append(name)

    def say(self, text: str) -> None:
        self.heard.append(text)


def test_a_second_start_closes_the_first_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two quick presses of a press-twice ask key both arrive as start: the first microphone is closed."""
    opened, closed = [], []

    class Recorder:  # the microphone: no sound device exists on the test machine
        note = ""

        def __init__(self, *args: object, **kwargs: object) -> None:
            opened.append(self)

        def start(self) -> None:
            pass

        def stop(self) -> np.ndarray:
            closed.append(self)
            return np.zeros(16000, np.float32)

    monkeypatch.setattr(microphone, "MicrophoneRecorder", Recorder)
    voice = VoiceInput(VoiceConfig(), Cues())  # type: ignore[arg-type]
    voice.start()
    voice.start()
    assert len(opened) == 2 and closed == [opened[0]]
    assert voice.listening
    assert voice.speaker.heard == ["listen", "listen"]
