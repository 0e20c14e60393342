"""The local channel between the describe-screen command and its daemon: one JSON object per line.

Linux and macOS use a Unix socket in a folder only this user can enter, so file permissions are the
access control. Python on Windows has no dependable AF_UNIX, so there the daemon listens on 127.0.0.1
at a random port and writes the port and a random token to a per-user file; every request must carry
that token, because any local program may connect to a TCP port.

Request: {"cmd": "describe", ...}. Events back: {"event": "text", "text": "..."} pieces as they come,
then one final {"event": "done", "result": {...}} or {"event": "error", "problem": "...", "fix": "..."}.
One request per connection keeps both ends simple: the connection closes after the final event.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import re
import secrets
import socket
import socketserver
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from describe_screen.errors import UserError
from describe_screen.i18n import N_, _

log = logging.getLogger(__name__)

APP = "describe-screen"
USE_TCP = sys.platform == "win32"
MAX_REQUEST = 64 * 1024
FINAL_EVENTS = frozenset({"done", "error"})

Event = dict[str, Any]
Send = Callable[[Event], None]
Handler = Callable[[Event, Send], Event | None]

START_FIX = N_("Start it with the command: describe-screen daemon. Then try again.")
BUSY_WAIT = 5.0  # seconds a client retries a daemon whose queue of new connections is full


def socket_path() -> Path:
    """Where the daemon listens (on Windows: the file holding its port and token).

    DESCRIBE_SCREEN_SOCKET overrides it, for tests and for running two setups side by side.
    """
    if env := os.environ.get("DESCRIBE_SCREEN_SOCKET"):
        return Path(env)
    if sys.platform == "win32":
        # The profile's local app-data folder is private to the user by its access list.
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        folder = base / APP
        folder.mkdir(parents=True, exist_ok=True)
        return folder / "daemon-endpoint.json"
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        return _private_dir(Path(runtime) / APP) / "daemon.sock"
    return _private_dir(Path(tempfile.gettempdir()) / f"{APP}-{os.getuid()}") / "daemon.sock"


def _private_dir(folder: Path) -> Path:
    """Create `folder` as 0700, or accept an existing one only if this user owns it.

    The temp dir is shared by all users: a folder someone else made there could hold a fake daemon
    that hears every question and answers with anything.
    """
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
    except OSError as exc:
        raise UserError(_("describe-screen cannot create its private folder {folder}: {strerror}.",
                          folder=folder, strerror=exc.strerror),
                        _("Check that the folder above it exists and that you may write to it.")) from exc
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise UserError(_("{folder} belongs to another user or is not a plain folder, so describe-screen will not "
                          "use it.",
                          folder=folder),
                        _("Remove it, or set XDG_RUNTIME_DIR to a private folder of yours, then try again."))
    if stat.S_IMODE(info.st_mode) != 0o700:
        folder.chmod(0o700)
    return folder


class Server:
    """Serves requests from the describe-screen command; each connection runs on its own thread.

    `handler(request, send)` does the work, calls `send` with streamed events, and ends the stream
    either by sending a "done" or "error" event or by returning one (returning None means an empty
    "done"); if it raises, the error goes back as an "error" event. `send` never raises when the
    client has gone away (the daemon keeps going, e.g. finishes speaking), and events after the
    final one are dropped.
    """

    request_timeout = 10.0  # seconds a client gets to send its request, and to take each event

    def __init__(self, handler: Handler, path: Path | None = None) -> None:
        self.handler = handler
        self.path = path or socket_path()
        self._listener: _Listener | None = None
        self._lock: BinaryIO | None = None
        self._token = ""
        self._open = 0  # connections being served; a stop waits for their last event (finish)
        self._idle = threading.Condition()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start listening on a background thread; refuse if a daemon already serves this path."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = _take_lock(self.path)
        if self._lock is None or daemon_running(self.path):
            self._release()
            raise UserError(_("describe-screen is already running, so a second copy was not started."),
                            _("Use the one that is running. To restart it, stop that one first."))
        try:
            self._remove_stale()
            self._listener = self._listen()
        except Exception as exc:
            self._release()
            if not isinstance(exc, OSError):
                raise
            raise UserError(_("describe-screen could not open its control channel at {path}: {reason}.",
                              path=self.path, reason=exc.strerror or exc),
                            _("Check that this folder is yours and writable, or set DESCRIBE_SCREEN_SOCKET to a "
                              "short path in a private folder, then start it again.")) from exc
        threading.Thread(target=self._listener.serve_forever, kwargs={"poll_interval": 0.2},
                         name="ipc-server", daemon=True).start()

    def close(self) -> None:
        """Stop accepting connections and remove the socket (or endpoint) file. Safe to call twice."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown()
            listener.server_close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self._release()

    def finish(self, timeout: float) -> bool:
        """Wait until every connection being served has sent its last event, at most `timeout` seconds;
        False if some had not. The process must not exit between a request's end and its reply: the
        client would hear only that the connection broke, not that its request was cancelled."""
        with self._idle:
            return self._idle.wait_for(lambda: self._open == 0, timeout)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _remove_stale(self) -> None:
        """Delete what a crashed daemon left behind, but never a file that is not ours to delete."""
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not USE_TCP and not stat.S_ISSOCK(mode):
            raise UserError(_("{path} exists and is not a describe-screen socket, so it was left alone.",
                              path=self.path),
                            _("Move that file away, or set DESCRIBE_SCREEN_SOCKET to another path."))
        self.path.unlink()

    def _listen(self) -> _Listener:
        if USE_TCP:
            self._token = secrets.token_urlsafe(32)
            listener = _Listener(self, socket.AF_INET, ("127.0.0.1", 0))
        else:
            listener = _Listener(self, socket.AF_UNIX, str(self.path))
        try:
            listener.server_bind()
            if not USE_TCP:
                os.chmod(self.path, 0o600)  # before listen(): no one connects while it is open to others
            listener.server_activate()
            if USE_TCP:  # only once listening, so a client that reads the file can connect
                endpoint = {"port": listener.server_address[1], "token": self._token, "pid": os.getpid()}
                _write_private(self.path, json.dumps(endpoint))
        except BaseException:
            listener.server_close()
            raise
        return listener

    def serve_connection(self, conn: socket.socket) -> None:
        """Read one request from `conn`, run the handler, stream its events back."""
        with self._idle:
            self._open += 1
        try:
            self._serve(conn)
        finally:
            with self._idle:
                self._open -= 1
                self._idle.notify_all()

    def _serve(self, conn: socket.socket) -> None:
        channel = _Channel(conn)
        try:
            request = self._read_request(conn)
        except UserError as exc:
            channel.send(_error_event(exc))
            _drain(conn)
            return
        if request is None:  # connected and left without a word: a liveness check
            return
        conn.settimeout(self.request_timeout)
        try:
            final = self.handler(request, channel.send)
            channel.send(final or {"event": "done", "result": {}})  # dropped if the stream already ended
        except Exception as exc:
            log.exception("request %r failed", request.get("cmd"))
            channel.send(_error_event(exc))

    def _read_request(self, conn: socket.socket) -> Event | None:
        line = _read_line(conn, time.monotonic() + self.request_timeout)
        if line is None:
            return None
        if len(line) > MAX_REQUEST:
            raise UserError(_("The request to describe-screen is larger than {kib} KiB.",
                              kib=MAX_REQUEST // 1024),
                            _("Send a shorter request."))
        try:
            request = json.loads(line.decode("utf-8"))
        except ValueError as exc:
            raise UserError(_("The request to describe-screen is not valid JSON."),
                            _("Send one JSON object per line, encoded as UTF-8.")) from exc
        except RecursionError as exc:
            raise UserError(_("The request to describe-screen is nested too deeply to read."),
                            _("Send a flat object such as {\"cmd\": \"describe\"}.")) from exc
        if not isinstance(request, dict):
            raise UserError(_("The request to describe-screen is not a JSON object."),
                            _("Send an object such as {\"cmd\": \"describe\"}."))
        if USE_TCP and not hmac.compare_digest(str(request.pop("token", "")).encode(), self._token.encode()):
            raise UserError(_("The request to describe-screen did not carry the right access token."),
                            _("Use the describe-screen command, which reads the token from your user folder."))
        if not isinstance(request.get("cmd"), str) or not request["cmd"]:
            raise UserError(_("The request to describe-screen does not say what to do: it has no \"cmd\"."),
                            _("Add a \"cmd\" key, for example {\"cmd\": \"describe\"}."))
        _check_text(request)
        return request


class _Listener(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """socketserver's threaded server for either address family (UnixStreamServer differs only in that)."""

    daemon_threads = True  # a request still running must not hold up shutdown
    block_on_close = False
    request_queue_size = 128  # a burst of hotkey and command requests must not overflow it

    def __init__(self, owner: Server, family: socket.AddressFamily, address: Any) -> None:
        self.owner = owner
        self.address_family = family
        super().__init__(address, socketserver.BaseRequestHandler, bind_and_activate=False)

    def server_bind(self) -> None:
        if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):  # Windows: no other program may bind our port too
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        super().server_bind()

    def finish_request(self, request: Any, client_address: Any) -> None:
        self.owner.serve_connection(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("control connection failed")


class _Channel:
    """The event stream of one connection: thread-safe, ends at the first final event."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._ended = False
        self._client_gone = False

    def send(self, event: Event) -> None:
        kind = event.get("event")
        if not isinstance(kind, str):
            raise TypeError(f'an event needs an "event" name, got {event!r}')
        data = _encode(event)
        with self._lock:
            if self._ended:
                return
            self._ended = kind in FINAL_EVENTS
            if self._client_gone:
                return
            try:
                self._conn.sendall(data)
            except OSError:  # includes timeouts: a client that stops reading is treated as gone
                self._client_gone = True
                log.info("client left before the reply was complete")


_NOT_CHARACTERS = re.compile("[\ud800-\udfff]")  # in a str, a surrogate is always a lone one


def _check_text(request: Event) -> None:
    """JSON may carry a lone UTF-16 surrogate ("\\ud800"), which is no character: no file name, question
    or sentence can hold it, and every later step (a path, speech, the reply) would fail on it."""
    for key, value in request.items():
        if _NOT_CHARACTERS.search(json.dumps({key: value}, ensure_ascii=False)):
            raise UserError(_("The request field \"{sub}\" is not valid text: it holds a lone surrogate, which is "
                              "not a character.",
                              sub=_NOT_CHARACTERS.sub("?", key)),
                            _("Send text encoded as UTF-8, with real characters only."))


def _encode(message: Event) -> bytes:
    """One JSON line as UTF-8; anything that is not a character becomes U+FFFD, so a reply quoting odd
    text (a file name in another encoding) is still sent, and read, whole."""
    return (_NOT_CHARACTERS.sub("\ufffd", json.dumps(message, ensure_ascii=False)) + "\n").encode("utf-8")


def _error_event(exc: Exception) -> Event:
    if isinstance(exc, UserError):
        return {"event": "error", "problem": exc.problem, "fix": exc.fix}
    return {"event": "error", "problem": _("describe-screen failed inside: {kind}: {exc}.", kind=type(exc).__name__,
                                           exc=exc),
            "fix": _("Try again. If it keeps happening, restart the daemon and report this message.")}


def _read_line(conn: socket.socket, deadline: float) -> bytes | None:
    """One line (without its newline), at most MAX_REQUEST + 1 bytes of it; None if the client sent nothing.

    The deadline covers the whole line, so a client trickling one byte at a time cannot hold a thread.
    """
    buf = bytearray()
    while b"\n" not in buf and len(buf) <= MAX_REQUEST:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            conn.settimeout(remaining)
            chunk = conn.recv(65536)
        except TimeoutError as exc:
            raise UserError(_("The request to describe-screen did not arrive in time."),
                            _("Send the whole request as one line right after connecting.")) from exc
        except OSError:  # the client vanished (reset): nothing to answer
            return None
        if not chunk:
            if not buf:
                return None
            break
        buf += chunk
    return bytes(buf).split(b"\n", 1)[0][: MAX_REQUEST + 1]


def _drain(conn: socket.socket) -> None:
    """Read what the client still sends before closing, for at most a second.

    Closing with unread input resets the connection, and the client could lose the error we just sent.
    """
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(1.0)
        for _ in range(64):
            if not conn.recv(65536):
                break


def _take_lock(path: Path) -> BinaryIO | None:
    """An exclusive lock beside the socket, held while the daemon runs; None if another holds it.

    Checking for a live socket alone races: two daemons starting together could both find none,
    and the second would delete the first one's socket.
    """
    handle = os.fdopen(os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600), "r+b")
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def _write_private(path: Path, text: str) -> None:
    """Write a file only this user may read, replacing any old one in one step."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


class NotRunning(UserError):
    """Nothing listens at the socket path: no daemon (unlike one that is busy or out of reach)."""


class Busy(UserError):
    """A daemon listens, but its queue of new connections stayed full (a burst of requests)."""


def _connect(path: Path, timeout: float) -> tuple[socket.socket, str]:
    """Open a connection to the daemon; returns it with the token requests must carry ("" on Unix).

    A full queue of new connections (EAGAIN) means a daemon is there and busy, so the connection is
    retried for up to BUSY_WAIT seconds instead of being taken for "not running".
    """
    deadline = time.monotonic() + min(timeout, BUSY_WAIT)
    while True:
        try:
            return _open(path, timeout)
        except BlockingIOError as exc:
            if time.monotonic() >= deadline:
                raise Busy(_("describe-screen is running but too busy to take this request: many requests arrived "
                             "at once."), _("Wait a moment, then try again.")) from exc
            time.sleep(0.02)
        except (FileNotFoundError, ConnectionRefusedError, ValueError, KeyError, TypeError) as exc:
            # ValueError/KeyError/TypeError: a half-written or foreign endpoint file, i.e. no daemon.
            raise NotRunning(_("describe-screen is not running, so nothing can answer this request."),
                             _(START_FIX)) from exc
        except OSError as exc:
            raise UserError(_("describe-screen could not be reached at {path}: {reason}.",
                              path=path, reason=exc.strerror or exc),
                            _("Check that this folder is yours, or restart the daemon with: describe-screen "
                              "daemon.")) from exc


def _open(path: Path, timeout: float) -> tuple[socket.socket, str]:
    if USE_TCP:
        endpoint = json.loads(path.read_text(encoding="utf-8"))
        port, token = int(endpoint["port"]), str(endpoint["token"])
        return socket.create_connection(("127.0.0.1", port), timeout=timeout), token
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        raise
    return conn, ""


def daemon_running(path: Path | None = None) -> bool:
    """True if a daemon listens at `path` (default: socket_path()), even one too busy to accept now.

    False for no daemon and also for a socket path that cannot be used at all (a refused folder):
    callers that must tell those apart (status, stop) connect themselves and say the UserError.
    """
    path = path or socket_path()
    try:
        conn, _ = _connect(path, timeout=2.0)
    except Busy:
        return True
    except UserError:
        return False
    conn.close()
    return True


class Client:
    """Sends one request per call to the daemon and follows its events.

    `timeout` is the longest wait for the next event, so a long answer that streams text never
    times out while a stuck daemon does.
    """

    def __init__(self, path: Path | None = None, timeout: float = 120.0) -> None:
        self.path = path or socket_path()
        self.timeout = timeout

    def request(self, message: Event, on_event: Callable[[Event], None] | None = None) -> Event:
        """Send `message`; call `on_event` for each streamed event; return the final done/error event."""
        conn, token = _connect(self.path, self.timeout)
        with conn:
            if token:
                message = {**message, "token": token}
            data = _encode(message)
            if len(data) > MAX_REQUEST:
                raise UserError(_("This request is larger than {kib} KiB, so describe-screen would refuse it.",
                                  kib=MAX_REQUEST // 1024), _("Send a shorter request."))
            with contextlib.closing(self._events(conn, data)) as events:
                for event in events:
                    if event.get("event") in FINAL_EVENTS:
                        return event
                    if on_event is not None:
                        on_event(event)
        raise UserError(_("describe-screen stopped before it finished the request."),
                        _("Check that it is still running; if not, start it with: describe-screen daemon. Then "
                          "try again."))

    def _events(self, conn: socket.socket, data: bytes) -> Iterator[Event]:
        """Yield the daemon's events until it closes, turning socket failures into plain errors."""
        try:
            conn.sendall(data)
            with conn.makefile("rb") as reader:
                for line in reader:
                    try:
                        event = json.loads(line.decode("utf-8"))
                    except ValueError as exc:
                        raise UserError(_("describe-screen sent an answer that cannot be read."),
                                        _("Make sure the daemon and the command come from the same installation, "
                                          "restart the daemon, and try again.")) from exc
                    if isinstance(event, dict):
                        yield event
        except TimeoutError as exc:
            raise UserError(_("describe-screen did not answer for {timeout:g} seconds.", timeout=self.timeout),
                            _("It may be stuck: restart it with describe-screen daemon, then try again.")) from exc
        except OSError as exc:
            raise UserError(_("The connection to describe-screen broke: {reason}.", reason=exc.strerror or exc),
                            _("Check that it is still running; if not, start it with: describe-screen daemon. "
                              "Then try again.")) from exc
