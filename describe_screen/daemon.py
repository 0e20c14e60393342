"""The background service: requests from hotkeys and the CLI, one at a time, each spoken as it is made.

A new request cancels the running one and its speech (the newest wish of the user wins). Every
failure is spoken and printed as a plain sentence, and the daemon goes on serving the next request.
"""

from __future__ import annotations

import itertools
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from describe_screen.config import Config
from describe_screen.describer import Cancelled, Describer, Scene
from describe_screen.errors import UserError

if TYPE_CHECKING:
    from describe_screen.microphone import Recorder
    from describe_screen.speech import Speaker

Send = Callable[[dict], None]

TARGETS = ("screen", "window", "pointer", "all", "focus", "clipboard", "image")
WORK = ("describe", "read", "ask", "listen_start", "listen_stop")

# hotkey action -> the request it makes
HOTKEY_REQUESTS: dict[str, dict[str, Any]] = {
    "describe_screen": {"cmd": "describe", "target": "screen"},
    "describe_window": {"cmd": "describe", "target": "window"},
    "describe_pointer": {"cmd": "describe", "target": "pointer"},
    "read_text": {"cmd": "read"},
    "ask": {"cmd": "listen_start"},
    "repeat": {"cmd": "repeat"},
    "stop": {"cmd": "stop"},
    "copy": {"cmd": "copy"},
    "describe_focus": {"cmd": "describe", "target": "focus"},
}


def spoken_hotkey(combo: str) -> str:
    """'<ctrl>+<alt>+d' -> 'Control Alt D', the way a person says it."""
    names = {"ctrl": "Control", "alt": "Alt", "shift": "Shift", "cmd": "Command", "super": "Super"}
    parts = [p.strip("<>") for p in combo.split("+")]
    return " ".join(names.get(p, p.upper() if len(p) == 1 else p.capitalize()) for p in parts)


# request fields and their JSON types (the socket accepts any JSON from any program of this user)
TEXT_FIELDS = ("cmd", "image", "audio", "target", "detail", "question")


def _check_fields(request: dict) -> None:
    for key in TEXT_FIELDS:
        if key in request and not isinstance(request[key], str):
            raise UserError(f'The request field "{key}" must be text, not {type(request[key]).__name__}.',
                            'Send it as a JSON string, for example {"cmd": "describe", "target": "window"}.')


class Daemon:
    """Request handling and the state kept between requests (last capture, conversation, last text)."""

    def __init__(self, config: Config, speaker: Speaker, describer: Describer | None = None) -> None:
        self.config = config
        self.speaker = speaker
        self.describer = describer or Describer(config)
        self.scene: Scene | None = None
        self.last_text = ""
        self._run = threading.Lock()
        self._order = threading.Lock()
        self._tickets = itertools.count(1)
        self._latest = 0  # requests with a smaller ticket are cancelled, running or waiting
        self._busy: str = ""
        self._recorder: Recorder | None = None
        self._asr: Any = None

    # -- entry point --------------------------------------------------------------------------
    def handle(self, request: dict, send: Send = lambda event: None) -> dict:
        """Serve one request; returns the final event (also what the IPC client receives last)."""
        cmd = request.get("cmd")
        if cmd == "listen":  # one key that starts a question and, pressed again, sends it
            cmd = "listen_stop" if self._recorder is not None else "listen_start"
            request = {**request, "cmd": cmd}
        try:
            _check_fields(request)
            if cmd in WORK:
                return self._work(request, send)
            quick = {"stop": self._stop, "status": self._status, "repeat": self._repeat,
                     "copy": self._copy, "say": self._say, "ping": lambda r: {}}
            if cmd not in quick:
                known = ", ".join((*WORK[:3], *quick))
                raise UserError(f"Unknown request {cmd!r}.", f"Known requests are {known}.")
            return {"event": "done", "result": quick[cmd](request)}
        except UserError as exc:
            return self.report_error(exc)
        except Exception as exc:  # one broken request must never take the daemon down
            traceback.print_exc(file=sys.stderr)
            return self.report_error(UserError(
                f"Something went wrong inside describe-screen ({type(exc).__name__}: {exc}).",
                "I am still running, so you can try again. If it keeps happening, run describe-screen doctor."))

    def report_error(self, exc: UserError) -> dict:
        """Say and print a failure; the caller goes on serving."""
        print(f"describe-screen: {exc}", file=sys.stderr, flush=True)
        self.speaker.cue("error")
        self.speaker.say(str(exc))
        return {"event": "error", "problem": exc.problem, "fix": exc.fix}

    # -- work requests: one at a time, newest wins -------------------------------------------
    def _work(self, request: dict, send: Send) -> dict:
        with self._order:
            ticket = next(self._tickets)
            if request["cmd"] != "listen_stop":  # letting go of the ask key finishes that question
                self._latest = ticket
        if request["cmd"] != "listen_stop":
            self.speaker.stop()
        with self._run:
            if self._latest > ticket:  # a newer request or a stop came while this one waited
                return {"event": "done", "result": {"cancelled": True, "text": ""}}
            self._busy = request["cmd"]
            try:
                return self._run_work(request, send, lambda: self._latest > ticket)
            finally:
                self._busy = ""

    def _run_work(self, request: dict, send: Send, cancelled: Cancelled) -> dict:
        cmd = request["cmd"]
        if cmd == "listen_start":
            return self._listen_start(request)
        if cmd == "listen_stop":
            question = self._listen_stop()
            send({"event": "question", "text": question})
            request = {**request, "cmd": "ask", "question": question}
        elif cmd == "ask" and request.get("audio"):
            request = {**request, "question": self._transcribe_file(Path(request["audio"]))}
            send({"event": "question", "text": request["question"]})
        self.speaker.cue("start")
        with self.speaker.working(cancelled):
            pieces = self._pieces(request, cancelled)
            text = self.speaker.say_stream(self._forward(pieces, send), cancelled)
        text = text.strip()
        if cancelled():
            return {"event": "done", "result": {"cancelled": True, "text": text}}
        self.last_text = text
        result: dict[str, Any] = {"text": text, "cmd": request["cmd"]}
        if request.get("question"):
            result["question"] = request["question"]
        return {"event": "done", "result": result}

    @staticmethod
    def _forward(pieces: Iterator[str], send: Send) -> Iterator[str]:
        for piece in pieces:
            send({"event": "text", "text": piece})
            yield piece

    def _pieces(self, request: dict, cancelled: Cancelled) -> Iterator[str]:
        cmd = request["cmd"]
        if cmd == "ask":
            scene = self._scene_for_question(request)
            return self.describer.ask(scene, str(request.get("question", "")), cancelled)
        scene = self._new_scene(request)
        if cmd == "read":
            return self.describer.read(scene, cancelled)
        detail = request.get("detail") or self.config.describe.detail
        if detail not in ("brief", "full"):
            raise UserError(f"Detail {detail!r} is not known.", "Use brief or full.")
        return self.describer.describe(scene, detail, cancelled)

    def _new_scene(self, request: dict) -> Scene:
        from describe_screen.capture import capture

        image = request.get("image")
        target = "image" if image else (request.get("target") or self.config.capture.target)
        if target not in TARGETS:
            raise UserError(f"Capture target {target!r} is not known.", f"Use one of {', '.join(TARGETS)}.")
        shot = capture(target, image_path=Path(image) if image else None,
                       pointer_size=self.config.capture.pointer_size, say=self._say_now,
                       wayland=self.config.capture.wayland)
        self.scene = Scene(shot)
        return self.scene

    def _scene_for_question(self, request: dict) -> Scene:
        """Follow-ups talk about the last capture while it is fresh; otherwise capture anew."""
        if request.get("image") or request.get("target"):
            return self._new_scene(request)
        age = time.time() - self.scene.capture.taken_at if self.scene else float("inf")
        if self.scene is not None and (self.scene.history or age <= self.config.ask.reuse_capture_seconds):
            return self.scene
        return self._new_scene(request)

    def _say_now(self, text: str) -> None:
        """Say `text` in full before going on (the desktop's permission question comes next)."""
        self.speaker.say(text)
        self.speaker.wait_idle(30)

    # -- voice --------------------------------------------------------------------------------
    def _listen_start(self, request: dict) -> dict:
        from describe_screen.microphone import MicrophoneRecorder, WavFileRecorder

        self.describer.read_ahead(self._scene_for_question(request))
        voice = self.config.voice
        audio = request.get("audio") or (voice.microphone if voice.microphone.lower().endswith(".wav") else "")
        if audio:  # a recorded question stands in for the microphone
            self._recorder = WavFileRecorder(Path(audio).expanduser(), max_seconds=voice.max_seconds)
        else:
            self._recorder = MicrophoneRecorder(voice.microphone, max_seconds=voice.max_seconds)
        self._recorder.start()
        self.speaker.cue("listen")
        return {"event": "done", "result": {"listening": True}}

    def _listen_stop(self) -> str:
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            raise UserError("No question is being recorded.", "Hold the ask key while you speak, then let go.")
        audio = recorder.stop()
        self.speaker.cue("listen_end")
        if recorder.note:
            self.speaker.say(recorder.note)
        return self._recognise(audio)

    def _transcribe_file(self, path: Path) -> str:
        from describe_screen.microphone import cut_note, read_wav

        limit = self.config.voice.max_seconds
        audio, seconds = read_wav(path, limit)
        if seconds > limit:
            self.speaker.say(cut_note(limit))
        return self._recognise(audio)

    def _recognise(self, audio: Any) -> str:
        from describe_screen.microphone import has_speech, trim_silence

        if self.config.voice.trim_silence:
            audio = trim_silence(audio)
        if not has_speech(audio):
            raise UserError("I heard no speech.", "Hold the ask key while you speak, then let go.")
        text = self.asr().transcribe(audio).strip()
        if not text:
            raise UserError("I could not make out the question.",
                            "Please ask again, a little closer to the microphone.")
        return text

    def asr(self) -> Any:
        if self._asr is None:
            try:
                from describe_screen.asr import SpeechRecognizer
            except ImportError as exc:
                raise UserError("Voice questions need the voice part of describe-screen, which is not installed.",
                                'Install it with: pip install "describe-screen[voice]", or type the question '
                                'with: describe-screen ask "your question".') from exc
            self._asr = SpeechRecognizer(self.config.voice.asr_model, self.config.voice.asr_device)
        return self._asr

    # -- quick requests -----------------------------------------------------------------------
    def _stop(self, request: dict) -> dict:
        """Cancel the running request and every waiting one, and silence the speech, at once."""
        with self._order:
            self._latest = next(self._tickets)
        self.speaker.stop()
        return {"stopped": True}

    def _status(self, request: dict) -> dict:
        return {"busy": self._busy, "speaking": not self.speaker.wait_idle(0), "last": self.last_text,
                "spoken": self.speaker.spoken[-20:],
                "capture": self.scene.capture.target if self.scene else "",
                "questions": len(self.scene.history) if self.scene else 0}

    def _repeat(self, request: dict) -> dict:
        if not self.last_text:
            raise UserError("There is nothing to repeat yet.", "Describe the screen first.")
        self.speaker.stop()
        self.speaker.say(self.last_text)
        return {"text": self.last_text}

    def _say(self, request: dict) -> dict:
        """Speak a short message from another describe-screen command, e.g. a model install's progress."""
        text = str(request.get("text", "")).strip()[:500]
        if text:
            self.speaker.say(text)
        return {"text": text}

    def _copy(self, request: dict) -> dict:
        from describe_screen.clipboard import copy_text

        if not self.last_text:
            raise UserError("There is nothing to copy yet.", "Describe the screen first.")
        copy_text(self.last_text)
        self.speaker.say("Copied.")
        return {"text": self.last_text}


def run(config: Config, speech_file: Path | None = None, hotkeys: bool = True) -> int:
    """Run the daemon until Ctrl+C or SIGTERM; returns the exit code."""
    from describe_screen import ipc
    from describe_screen.speech import Speaker

    speaker = Speaker(config.speech, speech_file)
    daemon = Daemon(config, speaker)
    server = ipc.Server(daemon.handle)
    try:
        server.start()
    except UserError as exc:
        print(f"describe-screen: {exc}", file=sys.stderr)
        speaker.say(str(exc))
        speaker.wait_idle(30)
        speaker.close()
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    listener = _start_hotkeys(config, daemon) if hotkeys else None
    try:
        daemon.describer.warm_up()
    except UserError as exc:
        daemon.report_error(exc)
    _warm_up_voice(daemon)
    combo = config.hotkeys.describe_screen
    ready = "describe-screen is ready." + (f" Press {spoken_hotkey(combo)} to describe the screen." if combo else "")
    print(ready, flush=True)
    speaker.say(ready)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        print("describe-screen is stopping.", flush=True)
        if listener:
            listener.stop()
        server.close()
        speaker.stop()
        speaker.close()
    return 0


def _warm_up_voice(daemon: Daemon) -> None:
    """Load speech recognition at start when it is installed, so the first spoken question is as quick
    as the others; without the voice extra there is nothing to load, and typed questions still work."""
    try:
        daemon.asr().warm_up()
    except UserError as exc:
        print(f"describe-screen: voice questions are off. {exc}", file=sys.stderr, flush=True)


def _start_hotkeys(config: Config, daemon: Daemon) -> Any:
    """Hotkeys call the daemon on their own threads: the listener thread must never wait for work."""
    from dataclasses import asdict

    from describe_screen.capture import session
    from describe_screen.hotkeys import HotkeyListener

    def fire(request: dict) -> None:
        threading.Thread(target=daemon.handle, args=(dict(request),), daemon=True).start()

    def pressed(action: str) -> None:
        fire(HOTKEY_REQUESTS[action])

    def released(action: str) -> None:
        if action == "ask":
            fire({"cmd": "listen_stop"})

    bindings = {action: combo for action, combo in asdict(config.hotkeys).items() if combo}
    if session.current().kind == "wayland":
        from describe_screen import wayland_keys

        return wayland_keys.start(bindings, pressed, released, daemon.report_error)
    listener = HotkeyListener(bindings, pressed, released)
    try:
        listener.start()
    except UserError as exc:
        daemon.report_error(UserError(f"Hotkeys are off. {exc.problem}", exc.fix + " Commands from describe-screen "
                               "in a terminal still work."))
        return None
    return listener
