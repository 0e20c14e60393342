"""Speech through the user's screen reader: a real speech-dispatcher (espeak-ng module, playing into a
PulseAudio null sink in real time) started for these tests, its log at level 5 recording every message
it is asked to say; and the choice of output on every platform (Windows and macOS: the logic only)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from describe_screen.config import SpeechConfig
from describe_screen.errors import UserError
from describe_screen.screenreader import Candidate, Unavailable, choose, import_system
from describe_screen.speech import Speaker

# speechd's client thread ends with SystemExit when its connection closes: its normal way out
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


class SpeechServer:
    """speech-dispatcher on its own socket, with its own settings and log, playing into a silent sink."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        for sub in ("conf", "log", "run", "pulse", "home"):
            (folder / sub).mkdir(parents=True)
        self.env = dict(os.environ, HOME=str(folder / "home"), XDG_RUNTIME_DIR=str(folder / "pulse"),
                        PULSE_SERVER=f"unix:{folder / 'pulse' / 'native'}")
        self.pulse = subprocess.Popen(
            ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
             "--load=module-null-sink sink_name=silent",
             f"--load=module-native-protocol-unix socket={folder / 'pulse' / 'native'} auth-anonymous=1"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_for(folder / "pulse" / "native")
        shutil.copytree("/etc/speech-dispatcher/modules", folder / "conf" / "modules")
        (folder / "conf" / "speechd.conf").write_text(
            'LogLevel 5\nDefaultModule espeak-ng\nAddModule "espeak-ng" "sd_espeak-ng" "espeak-ng.conf"\n'
            'AudioOutputMethod "pulse"\nDefaultRate 60\n')
        self.socket = folder / "run" / "speechd.sock"
        self.server = subprocess.Popen(
            ["speech-dispatcher", "-s", "-t", "0", "-l", "5", "-L", str(folder / "log"), "-C", str(folder / "conf"),
             "-c", "unix_socket", "-S", str(self.socket), "-P", str(folder / "run" / "pid")],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_for(self.socket)
        self.address = f"unix_socket:{self.socket}"

    @staticmethod
    def _wait_for(path: Path) -> None:
        deadline = time.monotonic() + 20
        while not path.exists():
            assert time.monotonic() < deadline, f"{path} never appeared"
            time.sleep(0.05)

    def log(self) -> str:
        return (self.folder / "log" / "speech-dispatcher.log").read_text(errors="replace")

    def said(self) -> list[str]:
        """Every message the server was asked to say, in order."""
        return re.findall(r"Queueing message \|(.*?)\| with priority", self.log())

    def close(self) -> None:
        for process in (self.server, self.pulse):
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path, monkeypatch) -> Iterator[SpeechServer]:
    s = SpeechServer(tmp_path / "speechd")
    monkeypatch.setenv("SPEECHD_ADDRESS", s.address)
    yield s
    s.close()


SCREEN_READER = SpeechConfig(output="screen-reader", cues=False)


def wait_for(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_sentences_go_through_speech_dispatcher_one_by_one(server) -> None:
    speaker = Speaker(SCREEN_READER)
    try:
        assert "speaking through speech-dispatcher" in speaker.reason
        assert speaker.driver().startswith("speech-dispatcher")
        speaker.say("The window shows two buttons. One says OK.")
        assert speaker.wait_idle(60)
    finally:
        speaker.close()
    assert server.said() == ["The window shows two buttons.", "One says OK."]
    assert "priority 3" in server.log()  # TEXT, the priority Orca speaks at


def test_stop_cancels_speech_dispatcher_at_once(server) -> None:
    speaker = Speaker(SCREEN_READER)
    try:
        speaker.say(" ".join(f"This is sentence number {n} of a long reading." for n in range(1, 9)))
        wait_for(lambda: len(server.said()) == 1)
        time.sleep(0.5)
        started = time.monotonic()
        speaker.stop()
        assert speaker.wait_idle(2)
        assert time.monotonic() - started < 0.5
        time.sleep(1)
    finally:
        speaker.close()
    assert server.said() == ["This is sentence number 1 of a long reading."]
    assert re.search(r"DATA:\|CANCEL self", server.log()), "no cancel reached the server"


def test_a_new_request_interrupts_the_old_one(server, tmp_path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    from describe_screen.config import Config
    from describe_screen.daemon import Daemon

    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 26)
    images = {}
    for name, lines in {"long": [f"Paragraph {n} of the annual report" for n in range(1, 9)],
                        "short": ["Battery low"]}.items():
        image = Image.new("RGB", (900, 60 + 50 * len(lines)), "white")
        for n, line in enumerate(lines):
            ImageDraw.Draw(image).text((30, 30 + 50 * n), line, fill="black", font=font)
        image.save(tmp_path / f"{name}.png")
        images[name] = str(tmp_path / f"{name}.png")
    config = Config()
    config.speech = SCREEN_READER
    speaker = Speaker(config.speech)
    daemon = Daemon(config, speaker)
    try:
        old = threading.Thread(target=daemon.handle, args=({"cmd": "read", "image": images["long"]},))
        old.start()
        wait_for(lambda: len(server.said()) >= 1, 60)
        result = daemon.handle({"cmd": "read", "image": images["short"]})
        old.join(30)
        assert speaker.wait_idle(60)
    finally:
        speaker.close()
    said = server.said()
    assert "Battery low" in result["result"]["text"]
    assert any("Battery low" in s for s in said[-2:]), said
    assert not any("Paragraph 8" in s for s in said), said  # the old reading never finished
    assert len(server.log().split("CANCEL self")) > 1


def test_the_screen_reader_speaking_interrupts_us_and_we_drop_the_rest(server) -> None:
    """Orca speaks at the same priority: when the user moves on, our answer stops, as Orca's own would."""
    speechd = import_system("speechd")
    speaker = Speaker(SCREEN_READER)
    orca = speechd.SSIPClient("orca", address=server.address)
    try:
        speaker.say(" ".join(f"Line {n} of our long answer." for n in range(1, 9)))
        wait_for(lambda: len(server.said()) == 1)
        time.sleep(0.3)
        orca.set_priority(speechd.Priority.TEXT)
        orca.speak("Focus moved to the address bar.")
        assert speaker.wait_idle(10)
        speaker.say("A late sentence of the same answer, still streaming.")  # dropped too
        assert speaker.wait_idle(10)
        time.sleep(1)
        speaker.stop()  # what the daemon does for the next request, which is heard again
        speaker.say("The next answer.")
        assert speaker.wait_idle(30)
    finally:
        orca.close()
        speaker.close()
    assert server.said() == ["Line 1 of our long answer.", "Focus moved to the address bar.", "The next answer."]


@pytest.mark.parametrize("command", ["describe", "read", "ask"])
def test_one_shot_commands_speak_through_speech_dispatcher(server, tmp_path, command) -> None:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (900, 130), "white")
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 26)
    ImageDraw.Draw(image).text((30, 30), "Error", fill="black", font=font)
    ImageDraw.Draw(image).text((30, 80), "The disk is full", fill="black", font=font)
    image.save(tmp_path / "error.png")
    config = tmp_path / "config.toml"
    config.write_text('[speech]\noutput = "screen-reader"\ncues = false\n')
    env = dict(os.environ, DESCRIBE_SCREEN_SOCKET=str(tmp_path / "none.sock"), DESCRIBE_SCREEN_CONFIG=str(config),
               DESCRIBE_SCREEN_DATA=str(tmp_path / "data"))
    question = ["what does the error say?"] if command == "ask" else []
    run = subprocess.run([sys.executable, "-m", "describe_screen", command, *question, "--image",
                          str(tmp_path / "error.png")], capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode == 0, run.stderr
    said = " ".join(server.said())
    assert "The disk is full" in said, said
    assert said.split() == run.stdout.split()  # every printed word was spoken, in order


# -- which output speaks: the choice, on every platform ------------------------------------------------

class FakeReader:
    def __init__(self, name: str) -> None:
        self.name = name

    def speak(self, text, interrupted) -> bool:
        return True

    def cancel(self) -> None: ...

    def close(self) -> None: ...


def candidate(name: str, running: bool, works: bool = True) -> Candidate:
    def opener() -> FakeReader:
        if not works:
            raise Unavailable("it does not answer")
        return FakeReader(name)

    return Candidate(name, lambda: running, opener)


def test_auto_uses_a_running_screen_reader_and_says_why() -> None:
    choice = choose("auto", [candidate("NVDA", running=False), candidate("Orca", running=True)])
    assert choice.reader.name == "Orca"
    assert choice.reason == "Orca is running: speaking through Orca."


def test_auto_falls_back_to_pyttsx3_when_none_runs_or_answers() -> None:
    assert choose("auto", [candidate("Orca", running=False)]).reader is None
    assert choose("auto", []).reason == "No screen reader is running: speaking with pyttsx3."
    broken = choose("auto", [candidate("Orca", running=True, works=False)])
    assert broken.reader is None and "Orca: it does not answer" in broken.reason


def test_screen_reader_output_connects_even_when_none_is_detected_and_refuses_plainly_otherwise() -> None:
    choice = choose("screen-reader", [candidate("speech-dispatcher", running=False)])
    assert choice.reader.name == "speech-dispatcher"
    with pytest.raises(UserError, match="no screen reader could be reached") as err:
        choose("screen-reader", [candidate("Orca", running=False, works=False)])
    assert 'speech.output = "auto"' in err.value.fix


def test_pyttsx3_output_never_looks_for_a_screen_reader() -> None:
    def boom() -> bool:
        raise AssertionError("looked")

    assert choose("pyttsx3", [Candidate("Orca", boom, boom)]).reader is None


class FakeTolk:
    """cytolk's tolk module as a stand-in: these paths cannot run on Linux."""

    def __init__(self, running: str | None) -> None:
        self.running, self.said, self.silenced = running, [], 0

    def detect_screen_reader(self) -> str | None:
        return self.running

    def output(self, text: str, interrupt: bool) -> None:
        self.said.append(text)

    def silence(self) -> None:
        self.silenced += 1

    def unload(self) -> None: ...


def test_windows_speaks_through_the_running_screen_reader_tolk_detects() -> None:
    from describe_screen.screenreader import windows

    tolk = FakeTolk("NVDA")
    choice = choose("auto", windows.candidates(lambda: tolk))
    assert choice.reason == "NVDA is running: speaking through NVDA."
    assert choice.reader.speak("Saved.", lambda: True)  # interrupted at once: silenced
    assert tolk.said == ["Saved."] and tolk.silenced == 1


def test_windows_without_a_screen_reader_or_cytolk_uses_pyttsx3() -> None:
    from describe_screen.screenreader import windows

    assert choose("auto", windows.candidates(lambda: FakeTolk(None))).reader is None  # e.g. Narrator
    assert windows.candidates(lambda: None) == []
    with pytest.raises(UserError, match="no screen reader that programs can speak through is running"):
        choose("screen-reader", windows.candidates(lambda: FakeTolk(None)))


class FakeAppKit:
    """pyobjc's AppKit as a stand-in, recording announcements."""

    NSAccessibilityAnnouncementRequestedNotification = "AXAnnouncementRequested"
    NSAccessibilityAnnouncementKey = "AXAnnouncementKey"
    NSAccessibilityPriorityKey = "AXPriorityKey"
    NSAccessibilityPriorityHigh = 90

    def __init__(self, voiceover: bool) -> None:
        self.voiceover, self.posted = voiceover, []
        outer = self

        class Workspace:
            def isVoiceOverEnabled(self) -> bool:
                return outer.voiceover

        self.NSWorkspace = type("NSWorkspace", (), {"sharedWorkspace": staticmethod(Workspace)})
        self.NSApplication = type("NSApplication", (), {"sharedApplication": staticmethod(lambda: "app")})

    def NSAccessibilityPostNotificationWithUserInfo(self, element, notification, info) -> None:
        self.posted.append((element, notification, info))


def test_macos_announces_through_voiceover_when_it_runs() -> None:
    from describe_screen.screenreader import macos

    appkit = FakeAppKit(voiceover=True)
    choice = choose("auto", macos.candidates(lambda: appkit))
    assert choice.reason == "VoiceOver is running: speaking through VoiceOver."
    choice.reader.speak("Two windows are open.", lambda: False)
    element, notification, info = appkit.posted[0]
    assert element == "app"
    assert notification == "AXAnnouncementRequested"
    assert info == {"AXAnnouncementKey": "Two windows are open.", "AXPriorityKey": 90}
    assert choose("auto", macos.candidates(lambda: FakeAppKit(voiceover=False))).reader is None
    assert macos.candidates(lambda: None) == []


def test_linux_prefers_orca_on_d_bus_and_otherwise_speech_dispatcher(monkeypatch) -> None:
    from describe_screen.screenreader import linux

    names = [(c.name, c.open) for c in linux.candidates()]
    assert names == [("Orca", linux.OrcaRemote), ("Orca", linux.SpeechDispatcher)]
    monkeypatch.setattr(linux, "orca_running", lambda: False)
    assert choose("auto", linux.candidates()).reason == "No screen reader is running: speaking with pyttsx3."


def test_orca_is_found_by_its_process_name(tmp_path) -> None:
    from describe_screen.screenreader.linux import orca_running

    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "comm").write_text("bash\n")
    assert not orca_running(tmp_path)
    (tmp_path / "4243").mkdir()
    (tmp_path / "4243" / "comm").write_text("orca\n")
    assert orca_running(tmp_path)


def test_without_orca_on_d_bus_the_remote_controller_is_unavailable(tmp_path, monkeypatch) -> None:
    """A real session bus (dbus-daemon) with no Orca on it."""
    from describe_screen.screenreader.linux import OrcaRemote

    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address"], stdout=subprocess.PIPE,
                           text=True)
    try:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus.stdout.readline().strip())
        with pytest.raises(Unavailable, match="no D-Bus remote controller"):
            OrcaRemote()
    finally:
        bus.terminate()
        bus.wait(timeout=10)


def test_a_system_module_is_loaded_alone_and_a_missing_one_is_unavailable() -> None:
    speechd = import_system("speechd")
    assert hasattr(speechd, "SSIPClient")
    with pytest.raises(Unavailable, match="no_such_client is not installed"):
        import_system("no_such_client")


def test_doctor_says_which_output_speaks_and_why(server, tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[speech]\noutput = "screen-reader"\n')
    env = dict(os.environ, DESCRIBE_SCREEN_CONFIG=str(config), DESCRIBE_SCREEN_SOCKET=str(tmp_path / "none.sock"),
               DESCRIBE_SCREEN_DATA=str(tmp_path / "data"))
    run = subprocess.run([sys.executable, "-m", "describe_screen", "doctor"], capture_output=True, text=True,
                         timeout=300, env=env)
    speech = next(line for line in run.stdout.splitlines() if "Speech" in line)
    assert "speech.output is screen-reader: speaking through speech-dispatcher" in speech, run.stdout


FALLBACK_NOTE = "Orca's remote control failed, so speech-dispatcher speaks instead."


class OrcaStandIn:
    """tests/fake_orca.py (Orca's documented remote controller on real GDBus, as Orca publishes it) on a
    private session bus of its own (dbus-daemon); `calls()` are the calls it received, in order."""

    def __init__(self, folder: Path, version: str, *options: str) -> None:
        self.bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address"],
                                    stdout=subprocess.PIPE, text=True)
        self.address = self.bus.stdout.readline().strip()
        self.calls_file = folder / f"orca-{version}-calls.jsonl"
        self.calls_file.touch()
        self.orca = subprocess.Popen(["/usr/bin/python3", str(Path(__file__).parent / "fake_orca.py"), self.address,
                                      version, str(self.calls_file), *options], stdout=subprocess.PIPE, text=True)
        assert self.orca.stdout.readline().strip() == "ready"

    def calls(self) -> list[tuple[str, str, str, tuple]]:
        lines = self.calls_file.read_text().splitlines()
        return [(path, interface, method, tuple(args)) for path, interface, method, args in map(json.loads, lines)]

    def close(self) -> None:
        for process in (self.orca, self.bus):
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
def orca(tmp_path, monkeypatch) -> Iterator[Callable[..., OrcaStandIn]]:
    """Start a stand-in Orca of a version (and options), with the session bus pointing at it."""
    started: list[OrcaStandIn] = []

    def start(version: str, *options: str) -> OrcaStandIn:
        stand_in = OrcaStandIn(tmp_path, version, *options)
        started.append(stand_in)
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", stand_in.address)
        return stand_in

    yield start
    for stand_in in started:
        stand_in.close()


# Each version's calls, from Orca's remote-controller documentation: (service, present, interrupt)
ORCA_VERSIONS = {
    "49": ("org.gnome.Orca.Service", ("/org/gnome/Orca/Service", "org.gnome.Orca.Service", "PresentMessage"),
           ("/org/gnome/Orca/Service/SpeechAndVerbosityManager", "org.gnome.Orca.Module", "ExecuteCommand",
            ("InterruptSpeech", False))),
    "50": ("org.gnome.Orca.Service", ("/org/gnome/Orca/Service", "org.gnome.Orca.Service", "PresentMessage"),
           ("/org/gnome/Orca/Service/SpeechManager", "org.gnome.Orca.Module", "ExecuteCommand",
            ("InterruptSpeech", False))),
    "51": ("org.gnome.Orca1.Service", ("/org/gnome/Orca1/Service", "org.gnome.Orca1.Service", "PresentMessage"),
           ("/org/gnome/Orca1/Service/SpeechManager", "org.gnome.Orca1.SpeechManager", "InterruptSpeech", (False,))),
}


@pytest.mark.parametrize("version", ["49", "50", "51"])
def test_each_orca_version_is_spoken_to_in_its_own_dialect(orca, version) -> None:
    from describe_screen.screenreader.linux import OrcaRemote

    stand_in = orca(version)
    service, present, interrupt = ORCA_VERSIONS[version]
    reader = OrcaRemote()
    try:
        assert reader.name == f"Orca {version}'s remote controller ({service})"
        started = time.monotonic()
        assert reader.speak("Two buttons.", lambda: False)
        assert time.monotonic() - started >= 0.5  # paced: Orca does not report the end
        reader.speak("A long sentence that the stop key cuts short at once.", lambda: True)
    finally:
        reader.close()
    assert stand_in.calls() == [(*present, ("Two buttons.",)),
                                (*present, ("A long sentence that the stop key cuts short at once.",)), interrupt]


def test_stop_interrupts_orca_51_through_its_speech_manager_and_drops_the_rest(orca) -> None:
    stand_in = orca("51")
    speaker = Speaker(SCREEN_READER, braille=False)
    try:
        assert speaker.reason == ("speech.output is screen-reader: speaking through Orca 51's remote controller "
                                  "(org.gnome.Orca1.Service).")
        speaker.say(" ".join(f"This is sentence number {n} of a long reading." for n in range(1, 9)))
        wait_for(lambda: len(stand_in.calls()) == 1)
        speaker.stop()
        assert speaker.wait_idle(2)
        time.sleep(1)
    finally:
        speaker.close()
    assert speaker.spoken == ["This is sentence number 1 of a long reading."]
    first, *rest = stand_in.calls()
    assert first[2:] == ("PresentMessage", ("This is sentence number 1 of a long reading.",))
    # stop() interrupts, and so may the sentence being waited on: the same call, never another message
    assert rest and set(rest) == {("/org/gnome/Orca1/Service/SpeechManager", "org.gnome.Orca1.SpeechManager",
                                   "InterruptSpeech", (False,))}


def test_a_finished_answer_is_not_cut_when_the_speaker_closes(orca) -> None:
    """A one-shot command closes its speaker once the answer is said: Orca may still be saying the end."""
    stand_in = orca("51")
    speaker = Speaker(SCREEN_READER, braille=False)
    speaker.say("Saved.")
    assert speaker.wait_idle(10)
    speaker.close()
    assert [call[2] for call in stand_in.calls()] == ["PresentMessage"]


def send(address: str, path: str, interface: str, method: str, signature: str, body: tuple, service: str):
    """A raw method call on the bus at `address`; the reply message (a method return or an error)."""
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    with open_dbus_connection(address) as connection:
        target = DBusAddress(path, bus_name=service, interface=interface)
        return connection.send_and_get_reply(new_method_call(target, method, signature, body), timeout=5)


def error_name(reply) -> str | None:
    from jeepney import HeaderFields

    return reply.header.fields.get(HeaderFields.error_name)


def test_the_stand_in_refuses_calls_orca_does_not_offer_as_gdbus_does(orca) -> None:
    """The stop Orca 51 was sent before (49's module path and ExecuteCommand under 51's names), a
    documented method with other arguments, and 49's module path on 50 all get GDBus's errors."""
    new = orca("51")
    old_stop = ("/org/gnome/Orca1/Service/SpeechAndVerbosityManager", "org.gnome.Orca1.Module", "ExecuteCommand")
    reply = send(new.address, *old_stop, "sb", ("InterruptSpeech", False), "org.gnome.Orca1.Service")
    assert error_name(reply) in ("org.freedesktop.DBus.Error.UnknownObject", "org.freedesktop.DBus.Error.UnknownMethod")
    reply = send(new.address, "/org/gnome/Orca1/Service/SpeechManager", "org.gnome.Orca1.Module", "ExecuteCommand",
                 "sb", ("InterruptSpeech", False), "org.gnome.Orca1.Service")
    assert error_name(reply) in ("org.freedesktop.DBus.Error.UnknownInterface",
                                 "org.freedesktop.DBus.Error.UnknownMethod")
    reply = send(new.address, "/org/gnome/Orca1/Service/SpeechManager", "org.gnome.Orca1.SpeechManager",
                 "InterruptSpeech", "sb", ("InterruptSpeech", False), "org.gnome.Orca1.Service")
    assert error_name(reply) == "org.freedesktop.DBus.Error.InvalidArgs"
    assert new.calls() == []
    fifty = orca("50")
    reply = send(fifty.address, "/org/gnome/Orca/Service/SpeechAndVerbosityManager", "org.gnome.Orca.Module",
                 "ExecuteCommand", "sb", ("InterruptSpeech", False), "org.gnome.Orca.Service")
    assert error_name(reply) in ("org.freedesktop.DBus.Error.UnknownObject", "org.freedesktop.DBus.Error.UnknownMethod")
    assert fifty.calls() == []


def test_a_client_with_the_old_orca_51_stop_speaks_through_speech_dispatcher_and_doctor_says_why(
        orca, server, monkeypatch) -> None:
    from describe_screen.commands.doctor import check_speech
    from describe_screen.config import Config
    from describe_screen.screenreader import linux

    orca("51")
    present = linux.Call("/org/gnome/Orca1/Service", "org.gnome.Orca1.Service", "PresentMessage", "s")
    old_stop = linux.Call("/org/gnome/Orca1/Service/SpeechAndVerbosityManager", "org.gnome.Orca1.Module",
                          "ExecuteCommand", "sb", ("InterruptSpeech", False))
    monkeypatch.setitem(linux.DIALECTS, "org.gnome.Orca1.Service", [linux.Dialect("Orca 51", present, old_stop)])
    config = Config()
    config.speech = SpeechConfig(output="screen-reader", cues=False)
    line = check_speech(config).says
    assert line.startswith("speech.output is screen-reader: speaking through speech-dispatcher (Orca: "
                           "org.gnome.Orca1.Service has no org.gnome.Orca1.Module.ExecuteCommand(sb) at "
                           "/org/gnome/Orca1/Service/SpeechAndVerbosityManager"), line


def test_orca_without_its_speech_module_is_passed_over_and_doctor_says_why(orca, server) -> None:
    from describe_screen.commands.doctor import check_speech
    from describe_screen.config import Config

    orca("51", "--no-speech-module")
    config = Config()
    config.speech = SpeechConfig(output="screen-reader", cues=False)
    assert check_speech(config).says.startswith(
        "speech.output is screen-reader: speaking through speech-dispatcher (Orca: org.gnome.Orca1.Service has no "
        "org.gnome.Orca1.SpeechManager.InterruptSpeech(b) at /org/gnome/Orca1/Service/SpeechManager")


def test_orca_refusing_the_stop_hands_speech_to_speech_dispatcher_and_says_so(orca, server, caplog) -> None:
    stand_in = orca("51", "--refuse", "InterruptSpeech")
    speaker = Speaker(SCREEN_READER, braille=False)
    try:
        speaker.say(" ".join(f"Line {n} of our long answer." for n in range(1, 9)))
        wait_for(lambda: len(stand_in.calls()) == 1)
        speaker.stop()  # refused by Orca: speech-dispatcher silences every client, Orca's speech of ours too
        assert speaker.wait_idle(2)
        speaker.say("The next answer.")
        assert speaker.wait_idle(30)
        speaker.stop()
        driver = speaker.driver()
    finally:
        speaker.close()
    first, *rest = [call[2] for call in stand_in.calls()]
    assert first == "PresentMessage" and rest and set(rest) == {"InterruptSpeech"}  # never again after the fallback
    problem = ("Orca answered an error to InterruptSpeech: not.known.Error.SpeechServerGone: "
               "the speech server is not running")
    assert driver.startswith(f"speech-dispatcher: {problem}")
    assert server.said() == [FALLBACK_NOTE, "The next answer."]
    assert re.search(r"DATA:\|CANCEL all", server.log()), "Orca's speech of our answer was not silenced"
    warnings = [r.getMessage() for r in caplog.records if "speech-dispatcher from now on" in r.getMessage()]
    assert warnings == [f"{problem}; speaking through speech-dispatcher from now on"]


def test_orca_answering_false_to_a_message_hands_it_to_speech_dispatcher(orca, server) -> None:
    from describe_screen.screenreader.linux import OrcaRemote

    stand_in = orca("50", "--false", "PresentMessage")
    reader = OrcaRemote()
    try:
        assert reader.speak("Battery low.", lambda: False)
        assert reader.speak("Plug in the charger.", lambda: False)
        assert reader.name == "speech-dispatcher: Orca answered False to PresentMessage"
    finally:
        reader.close()
    assert [call[2:] for call in stand_in.calls()] == [("PresentMessage", ("Battery low.",))]
    assert server.said() == [FALLBACK_NOTE, "Battery low.",
                             "Plug in the charger."]


def test_doctor_names_the_orca_dialect_in_use(orca, tmp_path) -> None:
    stand_in = orca("51")
    config = tmp_path / "config.toml"
    config.write_text('[speech]\noutput = "screen-reader"\n')
    env = dict(os.environ, DESCRIBE_SCREEN_CONFIG=str(config), DESCRIBE_SCREEN_SOCKET=str(tmp_path / "none.sock"),
               DESCRIBE_SCREEN_DATA=str(tmp_path / "data"), DBUS_SESSION_BUS_ADDRESS=stand_in.address)
    run = subprocess.run([sys.executable, "-m", "describe_screen", "doctor"], capture_output=True, text=True,
                         timeout=300, env=env)
    speech = next(line for line in run.stdout.splitlines() if "Speech" in line)
    assert ("speech.output is screen-reader: speaking through Orca 51's remote controller (org.gnome.Orca1.Service)."
            in speech), run.stdout


def test_stop_still_silences_us_when_speech_dispatcher_has_gone(server) -> None:
    """The screen reader's speech server quits while we run: stop() must not fail (the daemon calls it
    before every request), and our own queue is still emptied."""
    speaker = Speaker(SCREEN_READER)
    try:
        speaker.say("First sentence.")
        assert speaker.wait_idle(60)
        server.close()
        speaker.stop()
        speaker.stop()
        assert speaker.wait_idle(5)
    finally:
        speaker.close()
    assert server.said() == ["First sentence."]
