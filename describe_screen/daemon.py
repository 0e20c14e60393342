"""The background service: requests from hotkeys and the CLI, one at a time, each spoken as it is made.

A new request cancels the running one and its speech (the newest wish of the user wins). Every
failure is spoken and printed as a plain sentence, and the daemon goes on serving the next request.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import re
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
from describe_screen.i18n import _, number, spoken_list
from describe_screen.options import DETAILS
from describe_screen.voice import VoiceInput

if TYPE_CHECKING:
    from describe_screen.capture import Capture
    from describe_screen.explore import Element, Exploration
    from describe_screen.speech import Speaker

Send = Callable[[dict], None]
MAX_NEWS_LINES = 12  # new lines said after a press; the rest is there to explore or read

SHUTDOWN_SECONDS = 10.0  # how long a stop waits for running work to reach a cancellation check

WORK = ("describe", "read", "ask", "listen_start", "listen_stop", "explore", "activate")
QUIET = ("explore",)  # no start tone: moving through elements is quick, and a tone per step is noise

# request fields that must be JSON strings (the socket accepts any JSON from any program of this user)
TEXT_FIELDS = ("cmd", "image", "audio", "target", "detail", "question", "text", "move", "click")
# a question that asks where something is moves the explore cursor there when it is found
WHERE_IS = re.compile(r"(?:where is|where's|where are|find)\s+(?:the\s+|a\s+|an\s+)?(.+?)(?:\s+(?:button|field))?"
                      r"\s*[?.!]*", re.IGNORECASE)


def _check_fields(request: dict) -> None:
    for key in TEXT_FIELDS:
        if key in request and not isinstance(request[key], str):
            raise UserError(_("The request field \"{key}\" must be text, not {kind}.",
                              key=key, kind=type(request[key]).__name__),
                            _("Send it as a JSON string, for example {\"cmd\": \"describe\", \"target\": "
                              "\"window\"}."))


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
        self._closing = False  # set at shutdown: work arriving after it is answered as cancelled
        self._busy: str = ""
        self._explored: tuple[Scene, Exploration] | None = None  # the explore cursor, over the last capture
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
                raise UserError(_("Unknown request {cmd!r}.", cmd=cmd), _("Known requests are {known}.", known=known))
            return {"event": "done", "result": quick[cmd](request)}
        except UserError as exc:
            return self.report_error(exc)
        except Exception as exc:  # one broken request must never take the daemon down
            traceback.print_exc(file=sys.stderr)
            return self.report_error(UserError(
                _("Something went wrong inside describe-screen ({kind}: {exc}).",
                  kind=type(exc).__name__, exc=exc),
                _("I am still running, so you can try again. If it keeps happening, run describe-screen doctor.")))

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
            if self._latest > ticket or self._closing:  # a newer request or a stop came meanwhile
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
        if cmd not in QUIET:
            self.speaker.cue("start")
        with self.speaker.working(cancelled):
            pieces = self._pieces(request, cancelled)
            # explored elements and presses are made at once, in parts: no clause to say early
            text = self.speaker.say_stream(self._forward(pieces, send), cancelled,
                                           early=cmd not in ("explore", "activate"))
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
        if cmd in ("explore", "activate"):
            return self._explore(request) if cmd == "explore" else self._activate(request, cancelled)
        if cmd == "ask" and (found := self._find_asked(request)):
            return iter([found])
        if cmd == "ask":
            scene = self._scene_for_question(request)
            pieces = self.describer.ask(scene, str(request.get("question", "")), cancelled)
        elif cmd == "read":
            scene = self._new_scene(request)
            pieces = self.describer.read(scene, cancelled)
        else:
            detail = request.get("detail") or self.config.describe.detail
            if detail not in DETAILS:
                raise UserError(_("Detail {detail!r} is not known.", detail=detail),
                                _("Use {items}.", items=spoken_list(list(DETAILS), either=True)))
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

    # -- explore and press ---------------------------------------------------------------------
    def _exploration(self, request: dict) -> Exploration:
        """The cursor over the last capture's elements; a new capture starts a new one, and with no
        capture yet one is taken (of the settings' target). Its text is read to the end even when the
        next key comes meanwhile: that key needs the same text, and would otherwise start reading anew."""
        from describe_screen.explore import Exploration

        scene = self.scene or self._new_scene(request)
        if self._explored is None or self._explored[0] is not scene:
            lines = self.describer.lines(scene, lambda: False)
            self._explored = (scene, Exploration(lines, scene.capture.image.size))
        return self._explored[1]

    def _explore(self, request: dict) -> Iterator[str]:
        from describe_screen.explore import MOVES

        move = request.get("move") or "next"
        if move not in (*MOVES, "find"):
            raise UserError(_("There is no explore move called {move!r}.", move=move), _("Use one of: {items} or find.",
                                                                            items=', '.join(MOVES)))
        if move == "find" and not str(request.get("text", "")).strip():
            raise UserError(_("Nothing was given to find."), _("Say or type what to find, for example: explore find "
                                                            "Save."))
        exploration = self._exploration(request)
        if move == "find":
            query = str(request["text"]).strip()
            yield exploration.find(query) or _("I found nothing called {name} on this capture.", name=query)
        else:
            yield exploration.move(move)

    def _find_asked(self, request: dict) -> str:
        """A question "where is Save?" moves the explore cursor to Save on the capture it is about and says
        where it is; "" when it asks something else or nothing matches (it is then answered as usual)."""
        match = WHERE_IS.fullmatch(str(request.get("question", "")).strip())
        if not match:
            return ""
        self._scene_for_question(request)  # the last capture while it is fresh, else a new one
        return self._exploration(request).find(match.group(1)) or ""

    def _activate(self, request: dict, cancelled: Cancelled) -> Iterator[str]:
        """Press the element the explore cursor is on, after saying what will be pressed; then say what
        changed. Refused without a capture, on a picture file, off the screen; a stale capture is
        captured again and the element found anew, and the user presses again."""
        from describe_screen import capture, press

        how = request.get("click") or "click"
        if how not in press.CLICKS:
            raise UserError(_("There is no click called {how!r}.", how=how), _("Use one of: {items}.",
                                                                    items=', '.join(press.CLICKS)))
        if self.scene is None:
            raise UserError(_("Nothing has been captured yet, so there is nothing to press."),
                            _("Describe the screen or a window, move to a control with the explore keys, then "
                              "press."))
        shot = self.scene.capture
        if not shot.on_screen:
            raise UserError(_("This capture is a picture, not the screen, so nothing on it can be pressed."),
                            _("Describe the screen or a window, then press."))
        exploration = self._exploration(request)
        element = exploration.current
        if element is None:
            raise UserError(_("No element is chosen yet, so I do not know what to press."),
                            _("Move to one first with the explore keys, then press."))
        press.route()
        name = exploration.describe(element)
        x, y = shot.to_screen(*element.centre)
        if not capture.visible(x, y):
            raise UserError(_("{name} is off the screen, so I will not press it.", name=name),
                            _("Bring it onto the screen, capture it again, and press."))
        if press.changed(shot.image, self._capture_again(shot).image):
            yield _("The screen changed since the capture, so I captured it again.") + " "
            self.scene = Scene(self._recapture(shot))
            again = self._exploration(request)
            yield (_("{element} Press again to press it.", element=again.say()) if again.locate(element) else
                   _("{name} is no longer there.", name=name))
            return
        before = capture.windows()
        yield _(press.CLICK_WORDS[how], name=name) + " "
        self.speaker.wait_idle(10)  # the user hears what is pressed before it is pressed
        if cancelled():
            return
        press.click(x, y, how, self._say_now)
        yield self._what_changed(shot, exploration, element, before) + " "
        if self._explored is None or self._explored[0] is not self.scene:  # changed: read it all while it is said
            self._exploration(request).locate(element)  # the cursor stays on the element pressed

    def _capture_again(self, shot: Capture) -> Capture:
        """The capture's region as it is now."""
        from describe_screen import capture

        return capture.grab(shot.region, shot.target, shot.title, self.config.capture.wayland)

    def _recapture(self, shot: Capture) -> Capture:
        """A new capture of what a stale one showed: the active window anew (it may have moved), else
        the same region."""
        from describe_screen import capture

        if shot.target == "window":
            with contextlib.suppress(UserError):  # no window is active now: the region it had
                return capture.capture("window", wayland=self.config.capture.wayland)
        return self._capture_again(shot)

    def _what_changed(self, shot: Capture, exploration: Exploration, pressed: Element, before: dict) -> str:
        """After a press: the windows that closed, a window that appeared (described, and explored next),
        else the new text where the screen changed, else that nothing changed."""
        from describe_screen import capture, press, reader

        after, shown = press.settled(lambda: self._capture_again(shot), capture.windows)
        closed = "".join((_("The window {title} closed.", title=title) if title else _("A window closed.")) + " "
                         for wid, (title, _rect) in before.items() if wid not in shown)
        new = [window for wid, window in shown.items() if wid not in before]
        if new:
            title, rect = new[-1]  # the topmost
            self.scene = Scene(capture.grab(rect, "window", title, self.config.capture.wayland))
            appeared = (_("A window appeared, titled {title}:", title=title) if title else
                        _("A window appeared:"))
            return f"{closed}{appeared} " + self._exploration({}).overview()
        margin = 8  # the pressed control's border and its lit state while the pointer rests on it
        x0, y0, x1, y1 = pressed.box
        where = press.changed(shot.image, after.image, (x0 - margin, y0 - margin, x1 + margin, y1 + margin))
        if where is None:
            shot.image, shot.taken_at = after.image, after.taken_at  # the same text: the cursor stays
            return closed + _("Nothing changed on screen.")
        self.scene = Scene(after)
        old = {line.text for line in exploration.lines}
        pad, (width, height) = 16, after.image.size  # only the part that changed is read now: it is said sooner
        part = after.image.crop((max(0, where[0] - pad), max(0, where[1] - pad), min(width, where[2] + pad),
                                 min(height, where[3] + pad)))
        fresh = [ln.text for ln in self.describer.ocr.iter_lines(part) if ln.text not in old]
        if not fresh:
            return closed + _("The screen changed {place}, but its text did not.",
                              place=reader.where(where, after.image.size))
        return closed + _("The screen changed: {text}", text=" ".join(reader.as_sentence(text)
                                                                    for text in fresh[:MAX_NEWS_LINES]))

    # -- voice --------------------------------------------------------------------------------
    def _listen_start(self, request: dict) -> dict:
        self.voice.ready()
        self.describer.read_ahead(self._scene_for_question(request))  # while the question is spoken
        self.voice.start(str(request.get("audio") or ""))
        return {"event": "done", "result": {"listening": True}}

    def close(self, timeout: float = SHUTDOWN_SECONDS) -> None:
        """At shutdown: cancel the running and waiting requests and the describer's background work, and
        wait for them (at most `timeout` seconds), so no thread is inside onnxruntime when the interpreter
        exits: that aborts the process ("terminate called without an active exception"). Work arriving
        during the stop is answered as cancelled instead of being started."""
        self._closing = True
        self._stop({})
        deadline = time.monotonic() + timeout
        finished = self.describer.close(timeout)
        if self._run.acquire(timeout=max(0.0, deadline - time.monotonic())):  # the running request has ended
            self._run.release()
        else:
            finished = False
        if not finished:
            print(_("describe-screen: work was still running {seconds} seconds after the stop.",
                    seconds=number(timeout)), file=sys.stderr, flush=True)

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
            raise UserError(_("There is nothing to repeat yet."), _("Describe the screen first."))
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
            raise UserError(_("There is nothing to copy yet."), _("Describe the screen first."))
        copy_text(self.last_text)
        self.speaker.say(_("Copied."))
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
        print(_("describe-screen is stopping."), flush=True)
        if listener:
            listener.stop()
        server.close()
        daemon.close()
        server.finish(SHUTDOWN_SECONDS)  # the cancelled requests' clients are told so before the exit
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
        daemon.report_error(UserError(_("Something went wrong while loading the models ({kind}: {exc}).",
                                        kind=type(exc).__name__, exc=exc),
                                      _("I am still running with the text reader. If it keeps "
                                                    "happening, run describe-screen doctor.")))
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
        note = str(exc) if exc.problem.startswith(_("Voice questions are off")) else _(
            "Voice questions are off. {problem}", problem=exc)
    except Exception as exc:  # the same promise as Daemon.handle: one broken part never stops the daemon
        traceback.print_exc(file=sys.stderr)
        note = _("Voice questions are off: speech recognition failed to start ({kind}: {exc}). "
                 "Typed questions still work; run describe-screen doctor.", kind=type(exc).__name__, exc=exc)
    print(f"describe-screen: {note}", file=sys.stderr, flush=True)
    daemon.speaker.say(note)
