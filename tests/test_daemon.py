"""Request handling in the daemon with a fake describer and real speech: newest request wins, stop
silences the running and every waiting request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from describe_screen.config import Config, SpeechConfig
from describe_screen.daemon import Daemon
from describe_screen.speech import Speaker


class FakeDescriber:
    """Says what it is told per image name; "slow" images keep working until cancelled, "stubborn"
    ones until the test lets them go (like a long text detection that cannot look at the flag)."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.saw_cancel: list[str] = []
        self.release = threading.Event()

    def describe(self, scene, detail: str, cancelled) -> Iterator[str]:
        name = Path(scene.capture.title).stem
        self.started.append(name)
        yield f"Words from {name}. "
        if name == "stubborn":
            self.release.wait(30)
        while name in ("slow", "stubborn"):
            if cancelled():
                self.saw_cancel.append(name)
                return
            time.sleep(0.01)
        yield "All done. "

    def read(self, scene, cancelled) -> Iterator[str]:
        return self.describe(scene, "full", cancelled)

    def close(self, timeout: float) -> bool:
        return True


@pytest.fixture
def images(tmp_path: Path) -> dict[str, str]:
    paths = {}
    for name in ("slow", "stubborn", "quick", "waiting"):
        Image.new("RGB", (64, 48), "white").save(tmp_path / f"{name}.png")
        paths[name] = str(tmp_path / f"{name}.png")
    return paths


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    config = Config()
    config.speech = SpeechConfig(rate=400, cues=False)
    speaker = Speaker(config.speech, tmp_path / "speech.wav")
    d = Daemon(config, speaker, FakeDescriber())  # type: ignore[arg-type]
    yield d
    speaker.close()


def in_thread(d: Daemon, request: dict) -> tuple[threading.Thread, dict]:
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(d.handle(request)), daemon=True)
    thread.start()
    return thread, out


def wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_newer_request_cancels_the_running_one(daemon: Daemon, images: dict[str, str]) -> None:
    old, old_result = in_thread(daemon, {"cmd": "describe", "image": images["slow"]})
    wait_for(lambda: daemon.describer.started == ["slow"])
    final = daemon.handle({"cmd": "describe", "image": images["quick"]})
    old.join(5)
    assert old_result["result"] == {"cancelled": True, "text": "Words from slow."}
    assert final["result"]["text"] == "Words from quick. All done."
    assert daemon.describer.saw_cancel == ["slow"]
    daemon.speaker.wait_idle(20)
    assert "Words from quick." in daemon.speaker.spoken and "All done." in daemon.speaker.spoken
    assert daemon.last_text == "Words from quick. All done."


def test_stop_cancels_the_running_and_every_waiting_request(daemon: Daemon, images: dict[str, str]) -> None:
    running, running_result = in_thread(daemon, {"cmd": "describe", "image": images["stubborn"]})
    wait_for(lambda: daemon.describer.started == ["stubborn"])
    waiting, waiting_result = in_thread(daemon, {"cmd": "read", "image": images["waiting"]})
    time.sleep(0.2)  # the second request is now queued behind the first
    assert daemon.handle({"cmd": "stop"})["result"] == {"stopped": True}
    daemon.describer.release.set()
    running.join(5)
    waiting.join(5)
    assert running_result["result"]["cancelled"] and waiting_result["result"]["cancelled"]
    assert daemon.describer.started == ["stubborn"]  # the waiting request never ran
    daemon.speaker.wait_idle(20)
    assert not any("waiting" in said or "All done" in said for said in daemon.speaker.spoken)
    # and the daemon serves the next request as usual
    assert daemon.handle({"cmd": "read", "image": images["quick"]})["result"]["text"].endswith("All done.")


def test_work_arriving_while_the_daemon_stops_is_cancelled_not_started(daemon: Daemon, images: dict[str, str]) -> None:
    daemon.close(timeout=5)
    final = daemon.handle({"cmd": "describe", "image": images["quick"]})
    assert final == {"event": "done", "result": {"cancelled": True, "text": ""}}
    assert daemon.describer.started == []


@pytest.mark.parametrize("request_", [
    {"cmd": "describe", "image": 5}, {"cmd": "ask", "question": {"text": "what?"}},
    {"cmd": "describe", "target": ["screen"]}, {"cmd": "describe", "detail": None}, {"cmd": 7},
])
def test_fields_of_the_wrong_type_are_plain_errors(daemon: Daemon, request_: dict) -> None:
    final = daemon.handle(request_)
    assert final["event"] == "error"
    assert "must be text" in final["problem"] and "went wrong" not in final["problem"]
    assert daemon.describer.started == []


def test_an_animated_picture_is_said_to_be_described_from_its_first_frame(daemon: Daemon, tmp_path: Path) -> None:
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "blue")]
    frames[0].save(tmp_path / "quick.gif", save_all=True, append_images=frames[1:], duration=100)
    final = daemon.handle({"cmd": "describe", "image": str(tmp_path / "quick.gif")})
    assert final["result"]["text"].startswith("This picture is animated; I describe its first frame.")
    daemon.speaker.wait_idle(20)
    assert daemon.speaker.spoken[0] == "This picture is animated; I describe its first frame."
    assert daemon.handle({"cmd": "ask", "question": "and?"})  # a follow-up does not say it again


def test_voice_input_turns_a_held_key_recording_into_the_question(tmp_path: Path) -> None:
    """start() when the ask key goes down, stop() when it comes up: the question in words."""
    from test_microphone import speak

    from describe_screen.config import VoiceConfig
    from describe_screen.errors import UserError
    from describe_screen.voice import VoiceInput

    speaker = Speaker(SpeechConfig(rate=400, cues=False), tmp_path / "speech.wav")
    try:
        voice = VoiceInput(VoiceConfig(), speaker)
        voice.start(str(speak(tmp_path, "What does the error say?")))
        assert voice.listening
        assert "error" in voice.stop().lower()
        assert not voice.listening
        with pytest.raises(UserError, match="No question is being recorded"):
            voice.stop()
    finally:
        speaker.close()


def test_an_unexpected_error_loading_speech_recognition_is_said_and_the_daemon_goes_on(
        daemon: Daemon, images: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from describe_screen import daemon as daemon_module

    def broken() -> None:
        raise RuntimeError("libctranslate2 could not be opened")

    monkeypatch.setattr(daemon.voice, "warm_up", broken)
    daemon_module._warm_up_voice(daemon)  # the start-up step: it must neither raise nor stay silent
    daemon.speaker.wait_idle(20)
    said = " ".join(daemon.speaker.spoken)
    assert said.startswith("Voice questions are off: speech recognition failed to start (RuntimeError: "
                           "libctranslate2 could not be opened).")
    assert daemon.handle({"cmd": "read", "image": images["quick"]})["result"]["text"].endswith("All done.")
