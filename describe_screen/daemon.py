"""The background service: requests from hotkeys and the CLI, one at a time, each spoken as it is made.

A new request cancels the running one and its speech (the newest wish of the user wins). Every
failure is spoken and printed as a plain sentence, and the daemon goes on serving the next request.
"""

from __future__ import annotations

import contextlib
import ctypes
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
from describe_screen.hotkeys import ready_words, start_hotkeys
from describe_screen.options import DETAILS
from describe_screen.voice import VoiceInput

if TYPE_CHECKING:
    from describe_screen.speech import Speaker

Send = Callable[[dict], None]

SHUTDOWN_SECONDS = 10.0  # how long a stop waits for running work to reach a cancellation check

WORK = ("describe", "read", "ask", "listen_start", "listen_stop")

# request fields that must be JSON strings (the socket accepts any JSON from any program of this user)
TEXT_FIELDS = ("cmd", "image", "audio", "target", "detail", "question", "text")


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
        self.voice = VoiceInput(config.voice, speaker, config.models_dir())

    # -- entry point --------------------------------------------------------------------------
    def handle(self, request: dict, send: Send = lambda event: None) -> dict:
        """Serve one request; returns the final event (also what the IPC client receives last)."""
        cmd = request.get("cmd")
        if cmd == "listen":  # one key that starts a question and, pressed again, sends it
            cmd = "listen_stop" if self.voice.listening else "listen_start"
            request = {**request, "cmd": cmd}
        try:
            _check_fields(request)
            if cmd in WORK:
                return self._work(request, send)
            quick = {"stop": self._stop, "status": self._status, "repeat": self._repeat,
                     "copy": self._copy, "say": self._say,
                     "models_changed": lambda r: self.describer.models_changed() or {}, "ping": lambda r: {}}
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
                _return_freed_memory()

    def _run_work(self, request: dict, send: Send, cancelled: Cancelled) -> dict:
        cmd = request["cmd"]
        if cmd == "listen_start":
            return self._listen_start(request)
        if cmd == "listen_stop":
            question = self.voice.stop()
            send({"event": "question", "text": question})
            request = {**request, "cmd": "ask", "question": question}
        elif cmd == "ask" and request.get("audio"):
            request = {**request, "question": self.voice.transcribe_file(Path(request["audio"]))}
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
            pieces = self.describer.ask(scene, str(request.get("question", "")), cancelled)
        elif cmd == "read":
            scene = self._new_scene(request)
            pieces = self.describer.read(scene, cancelled)
        else:
            detail = request.get("detail") or self.config.describe.detail
            if detail not in DETAILS:
                raise UserError(f"Detail {detail!r} is not known.", f"Use {' or '.join(DETAILS)}.")
            scene = self._new_scene(request)
            pieces = self.describer.describe(scene, detail, cancelled)
        note, scene.capture.note = scene.capture.note, ""  # said once per capture, before its words
        return itertools.chain([note] if note else [], pieces)

    def _new_scene(self, request: dict) -> Scene:
        from describe_screen.capture import capture

        image = request.get("image")
        target = "image" if image else (request.get("target") or self.config.capture.target)
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
        self.voice.ready()
        self.describer.read_ahead(self._scene_for_question(request))  # while the question is spoken
        self.voice.start(str(request.get("audio") or ""))
        return {"event": "done", "result": {"listening": True}}

    def close(self, timeout: float = SHUTDOWN_SECONDS) -> None:
        """At shutdown: cancel the running and waiting requests and the describer's background work, and
        wait for them (at most `timeout` seconds), so no thread is inside onnxruntime when the interpreter
        exits: that aborts the process ("terminate called without an active exception")."""
        self._stop({})
        deadline = time.monotonic() + timeout
        finished = self.describer.close(timeout)
        if self._run.acquire(timeout=max(0.0, deadline - time.monotonic())):  # the running request has ended
            self._run.release()
        else:
            finished = False
        if not finished:
            print(f"describe-screen: work was still running {timeout:g} seconds after the stop.", file=sys.stderr,
                  flush=True)

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


def _return_freed_memory() -> None:
    """Hand freed heap pages back to the system: glibc keeps them, and after a 10000 x 10000 picture the
    daemon stayed 350 MB larger than it needed to for the rest of the session."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # another C library (musl) has no malloc_trim
            ctypes.CDLL(None).malloc_trim(0)


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
    listener = None
    try:  # from here on the socket exists: whatever happens, it is removed and speech is closed
        listener = start_hotkeys(config, daemon.handle, daemon.report_error) if hotkeys else None
        _warm_up(daemon)
        ready = ready_words(listener)
        print(ready, flush=True)
        speaker.say(ready)
        while not stop.wait(0.5):
            pass
    finally:
        print("describe-screen is stopping.", flush=True)
        if listener:
            listener.stop()
        server.close()
        daemon.close()
        speaker.stop()
        speaker.close()
    return 0


def _warm_up(daemon: Daemon) -> None:
    """Load the models now so the first request is fast. A model that fails to load is said (it
    happens in the describer, which falls back to the text reader); nothing here may stop the daemon."""
    try:
        daemon.describer.warm_up()
    except UserError as exc:
        daemon.report_error(exc)
    except Exception as exc:  # the same promise as Daemon.handle: one broken part never stops the daemon
        traceback.print_exc(file=sys.stderr)
        daemon.report_error(UserError(f"Something went wrong while loading the models ({type(exc).__name__}: "
                                      f"{exc}).", "I am still running with the text reader. If it keeps "
                                      "happening, run describe-screen doctor."))
    for note in [*daemon.describer.notes, *daemon.describer.after]:  # for the log; said with the next answer
        print(f"describe-screen: {note}", file=sys.stderr, flush=True)
    _warm_up_voice(daemon)


def _warm_up_voice(daemon: Daemon) -> None:
    """Load speech recognition at start when it is installed, so the first spoken question is as quick
    as the others. When it cannot load (no model, no voice extra, or anything unexpected) that is said
    once, voice questions stay off, typed questions still work, and the daemon goes on."""
    try:
        daemon.voice.warm_up()
        return
    except UserError as exc:
        note = str(exc) if exc.problem.startswith("Voice questions are off") else f"Voice questions are off. {exc}"
    except Exception as exc:  # the same promise as Daemon.handle: one broken part never stops the daemon
        traceback.print_exc(file=sys.stderr)
        note = (f"Voice questions are off: speech recognition failed to start ({type(exc).__name__}: {exc}). "
                "Typed questions still work; run describe-screen doctor.")
    print(f"describe-screen: {note}", file=sys.stderr, flush=True)
    daemon.speaker.say(note)
