"""The CLI-daemon channel: real sockets on this machine, real threads, misbehaving clients."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from describe_screen import ipc
from describe_screen.errors import UserError


def echo_words(request: dict, send: Callable[[dict], None]) -> None:
    """Streams each word of request["text"], then a result that proves the request arrived whole."""
    if request["cmd"] == "fail":
        raise ValueError("disk on fire")
    if request["cmd"] == "refuse":
        raise UserError("The camera is off.", "Turn it on.")
    words = request.get("text", "").split()
    for word in words:
        send({"event": "text", "text": word})
    send({"event": "done", "result": {"cmd": request["cmd"], "words": len(words)}})


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "daemon.sock"


@pytest.fixture
def server(sock: Path) -> Iterator[ipc.Server]:
    with ipc.Server(echo_words, sock) as srv:
        yield srv


def raw_exchange(path: Path, payload: bytes) -> list[dict]:
    """Send raw bytes as a misbehaving client would; return every event until the server closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(5)
        conn.connect(str(path))
        conn.sendall(payload)
        with conn.makefile("rb") as reader:
            return [json.loads(line) for line in reader]


def test_round_trip_streams_text_then_done(server: ipc.Server, sock: Path) -> None:
    pieces: list[dict] = []
    final = ipc.Client(sock).request({"cmd": "describe", "text": "Save changes? ünïcode ✓"}, pieces.append)
    assert [p["text"] for p in pieces] == ["Save", "changes?", "ünïcode", "✓"]
    assert all(p["event"] == "text" for p in pieces)
    assert final == {"event": "done", "result": {"cmd": "describe", "words": 4}}


def test_handler_errors_come_back_as_error_events(server: ipc.Server, sock: Path) -> None:
    client = ipc.Client(sock)
    assert client.request({"cmd": "refuse"}) == {"event": "error", "problem": "The camera is off.",
                                                 "fix": "Turn it on."}
    crash = client.request({"cmd": "fail"})
    assert crash["event"] == "error"
    assert "ValueError: disk on fire" in crash["problem"]
    assert "restart the daemon" in crash["fix"]
    assert client.request({"cmd": "describe", "text": "still here"})["result"]["words"] == 2


def test_handler_without_final_event_gets_an_empty_done(sock: Path) -> None:
    def quiet(request: dict, send: Callable[[dict], None]) -> None:
        send({"event": "text", "text": "only this"})

    with ipc.Server(quiet, sock):
        seen: list[dict] = []
        assert ipc.Client(sock).request({"cmd": "x"}, seen.append) == {"event": "done", "result": {}}
        assert seen == [{"event": "text", "text": "only this"}]


def test_handler_may_return_its_final_event(sock: Path) -> None:
    def returns(request: dict, send: Callable[[dict], None]) -> dict:
        send({"event": "text", "text": "streamed"})
        return {"event": "done", "result": {"text": "streamed", "cmd": request["cmd"]}}

    def sends_and_returns(request: dict, send: Callable[[dict], None]) -> dict:
        send({"event": "error", "problem": "First final wins.", "fix": "None needed."})
        return {"event": "done", "result": {}}

    with ipc.Server(returns, sock):
        seen: list[dict] = []
        final = ipc.Client(sock).request({"cmd": "read"}, seen.append)
    assert seen == [{"event": "text", "text": "streamed"}]
    assert final == {"event": "done", "result": {"text": "streamed", "cmd": "read"}}
    with ipc.Server(sends_and_returns, sock):
        assert ipc.Client(sock).request({"cmd": "x"})["problem"] == "First final wins."


def test_a_stop_waits_for_the_running_request_to_send_its_last_event(sock: Path) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(request: dict, send: Callable[[dict], None]) -> dict:
        started.set()
        release.wait(10)
        return {"event": "done", "result": {"cancelled": True, "text": ""}}

    replies: list[dict] = []
    server = ipc.Server(slow, sock)
    server.start()
    client = threading.Thread(target=lambda: replies.append(ipc.Client(sock).request({"cmd": "read"})))
    client.start()
    assert started.wait(5)
    assert not server.finish(0.5)  # the request is still running
    server.close()  # no new connections; the open one goes on
    release.set()
    assert server.finish(5)
    client.join(5)
    assert replies == [{"event": "done", "result": {"cancelled": True, "text": ""}}]


def test_socket_is_0600_and_folder_0700(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESCRIBE_SCREEN_SOCKET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = ipc.socket_path()
    assert path == tmp_path / "describe-screen" / "daemon.sock"
    with ipc.Server(echo_words):
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert ipc.Client().request({"cmd": "describe", "text": "a b c"})["result"]["words"] == 3


def test_fallback_folder_in_temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESCRIBE_SCREEN_SOCKET", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(ipc.tempfile, "gettempdir", lambda: str(tmp_path))
    folder = tmp_path / f"describe-screen-{os.getuid()}"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    assert ipc.socket_path() == folder / "daemon.sock"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # tightened, since it is ours


def test_fallback_folder_of_another_user_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESCRIBE_SCREEN_SOCKET", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(ipc.tempfile, "gettempdir", lambda: str(tmp_path))
    other = os.getuid() + 1000
    (tmp_path / f"describe-screen-{other}").mkdir()  # owned by us, so not by "other"
    monkeypatch.setattr(ipc.os, "getuid", lambda: other)
    with pytest.raises(UserError, match="belongs to another user") as err:
        ipc.socket_path()
    assert "XDG_RUNTIME_DIR" in err.value.fix


def test_symlinked_fallback_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESCRIBE_SCREEN_SOCKET", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(ipc.tempfile, "gettempdir", lambda: str(tmp_path))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / f"describe-screen-{os.getuid()}").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError, match="not a plain folder"):
        ipc.socket_path()


@pytest.mark.parametrize(("payload", "problem"), [
    (b"this is not json\n", "not valid JSON"),
    (b"\xff\xfe{}\n", "not valid JSON"),
    (b"[1, 2, 3]\n", "not a JSON object"),
    (b'{"text": "no command"}\n', 'no "cmd"'),
    (b'{"cmd": ""}\n', 'no "cmd"'),
    (b"\n", "not valid JSON"),
    (b'{"cmd": ' + b"[" * 30_000 + b"]" * 30_000 + b"}\n", "nested too deeply"),
    (b'{"cmd": "describe", "text": "' + b"x" * (70 * 1024) + b'"}\n', "larger than 64 KiB"),
])
def test_bad_requests_get_an_error_and_the_server_keeps_serving(
        server: ipc.Server, sock: Path, payload: bytes, problem: str) -> None:
    events = raw_exchange(sock, payload)
    assert len(events) == 1
    assert events[0]["event"] == "error"
    assert problem in events[0]["problem"]
    assert events[0]["fix"]
    assert ipc.Client(sock).request({"cmd": "describe", "text": "next one"})["result"]["words"] == 2


@pytest.mark.parametrize("field", ["text", "image", "question", "audio"])
def test_a_lone_surrogate_in_any_field_is_a_plain_error(server: ipc.Server, sock: Path, field: str) -> None:
    """JSON can spell a UTF-16 half ("\\ud800") that is no character: said in a sentence, never a crash."""
    events = raw_exchange(sock, b'{"cmd": "describe", "%s": "report\\ud800.png"}\n' % field.encode())
    assert events == [{"event": "error", "problem": f'The request field "{field}" is not valid text: it holds a '
                       "lone surrogate, which is not a character.",
                       "fix": "Send text encoded as UTF-8, with real characters only."}]
    assert ipc.Client(sock).request({"cmd": "describe", "text": "next one"})["result"]["words"] == 2


def test_a_reply_quoting_text_that_is_no_character_still_arrives(sock: Path) -> None:
    """A file name in another encoding reaches Python as lone surrogates; the reply carries U+FFFD."""
    def quote_name(request: dict, send: Callable[[dict], None]) -> dict:
        send({"event": "text", "text": "Reading caf\udce9.png"})
        raise UserError("The file caf\udce9.png is empty.", "Choose another one.")

    with ipc.Server(quote_name, sock):
        pieces: list[dict] = []
        final = ipc.Client(sock).request({"cmd": "read"}, pieces.append)
    assert pieces == [{"event": "text", "text": "Reading caf\ufffd.png"}]
    assert final == {"event": "error", "problem": "The file caf\ufffd.png is empty.", "fix": "Choose another one."}


def test_request_of_exactly_the_limit_is_accepted(server: ipc.Server, sock: Path) -> None:
    head, tail = b'{"cmd": "describe", "text": "', b'"}'
    line = head + b"w " * ((ipc.MAX_REQUEST - len(head) - len(tail)) // 2) + tail
    line += b" " * (ipc.MAX_REQUEST - len(line))
    assert len(line) == ipc.MAX_REQUEST
    events = raw_exchange(sock, line + b"\n")
    assert events[-1]["event"] == "done"
    assert events[-1]["result"]["words"] == len(events) - 1 > 30000


def test_idle_client_times_out_and_others_are_served(server: ipc.Server, sock: Path) -> None:
    server.request_timeout = 0.3
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
        idle.settimeout(5)
        idle.connect(str(sock))
        idle.sendall(b'{"cmd": "desc')  # starts, then stalls
        assert ipc.Client(sock).request({"cmd": "describe", "text": "meanwhile"})["result"]["words"] == 1
        start = time.monotonic()
        reply = idle.makefile("rb").readline()
        assert time.monotonic() - start < 3
    assert "did not arrive in time" in json.loads(reply)["problem"]


def test_client_that_leaves_mid_stream_does_not_hurt_the_server(sock: Path) -> None:
    finished = threading.Event()

    def chatty(request: dict, send: Callable[[dict], None]) -> None:
        for i in range(20000):
            send({"event": "text", "text": f"piece {i} " + "y" * 200})
        send({"event": "done", "result": {}})
        finished.set()

    with ipc.Server(chatty, sock):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(sock))
            conn.sendall(b'{"cmd": "talk"}\n')
            assert json.loads(conn.makefile("rb").readline())["text"].startswith("piece 0 ")
        assert finished.wait(10), "handler did not run to the end after the client left"
        assert ipc.Client(sock).request({"cmd": "talk"})["event"] == "done"


def test_connections_are_served_in_parallel(sock: Path) -> None:
    released = threading.Event()

    def gate(request: dict, send: Callable[[dict], None]) -> None:
        if request["cmd"] == "wait":
            send({"event": "done", "result": {"released": released.wait(5)}})
        else:
            released.set()
            send({"event": "done", "result": {}})

    with ipc.Server(gate, sock):
        results: list[dict] = []
        waiter = threading.Thread(target=lambda: results.append(ipc.Client(sock).request({"cmd": "wait"})))
        waiter.start()
        time.sleep(0.2)
        ipc.Client(sock).request({"cmd": "release"})
        waiter.join(5)
    assert results == [{"event": "done", "result": {"released": True}}]


def test_second_server_is_refused(server: ipc.Server, sock: Path) -> None:
    with pytest.raises(UserError, match="already running"):
        ipc.Server(echo_words, sock).start()
    assert ipc.Client(sock).request({"cmd": "describe", "text": "first"})["result"]["words"] == 1


def test_foreign_listener_counts_as_running(sock: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(str(sock))
        other.listen()
        assert ipc.daemon_running(sock)
        with pytest.raises(UserError, match="already running"):
            ipc.Server(echo_words, sock).start()


def test_stale_socket_is_replaced(sock: Path) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock))
    dead.close()  # a crashed daemon leaves the file behind
    assert sock.exists()
    assert not ipc.daemon_running(sock)
    with ipc.Server(echo_words, sock):
        assert ipc.Client(sock).request({"cmd": "describe", "text": "fresh"})["result"]["words"] == 1


def test_a_plain_file_at_the_socket_path_is_left_alone(sock: Path) -> None:
    sock.write_text("precious")
    with pytest.raises(UserError, match="not a describe-screen socket"):
        ipc.Server(echo_words, sock).start()
    assert sock.read_text() == "precious"
    sock.unlink()
    with ipc.Server(echo_words, sock):  # the refusal did not keep the lock
        assert ipc.daemon_running(sock)


def test_unusable_socket_path_is_a_plain_error(tmp_path: Path) -> None:
    too_long = tmp_path / ("x" * 120) / "daemon.sock"
    with pytest.raises(UserError, match="could not open its control channel") as err:
        ipc.Server(echo_words, too_long).start()
    assert "DESCRIBE_SCREEN_SOCKET" in err.value.fix


def test_close_removes_the_socket_and_allows_a_restart(sock: Path) -> None:
    srv = ipc.Server(echo_words, sock)
    srv.start()
    assert ipc.daemon_running(sock)
    srv.close()
    srv.close()
    assert not sock.exists()
    assert not ipc.daemon_running(sock)
    with ipc.Server(echo_words, sock):
        assert ipc.daemon_running(sock)


def test_no_daemon(sock: Path) -> None:
    assert not ipc.daemon_running(sock)
    with pytest.raises(UserError) as err:
        ipc.Client(sock).request({"cmd": "describe"})
    assert "not running" in err.value.problem
    assert "describe-screen daemon" in err.value.fix


def test_slow_daemon_times_out_on_the_client(sock: Path) -> None:
    def slow(request: dict, send: Callable[[dict], None]) -> None:
        time.sleep(1.0)
        send({"event": "done", "result": {}})

    with ipc.Server(slow, sock), pytest.raises(UserError, match=r"did not answer for 0\.2 seconds"):
        ipc.Client(sock, timeout=0.2).request({"cmd": "describe"})


def test_daemon_that_dies_mid_request(sock: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as fake:
        fake.bind(str(sock))
        fake.listen()

        def answer_then_vanish() -> None:
            conn, _ = fake.accept()
            with conn:
                conn.makefile("rb").readline()
                conn.sendall(b'{"event": "text", "text": "half"}\n')

        threading.Thread(target=answer_then_vanish, daemon=True).start()
        seen: list[dict] = []
        with pytest.raises(UserError, match="stopped before it finished"):
            ipc.Client(sock).request({"cmd": "describe"}, seen.append)
    assert seen == [{"event": "text", "text": "half"}]


def test_client_refuses_an_oversized_request_itself(server: ipc.Server, sock: Path) -> None:
    with pytest.raises(UserError, match="larger than 64 KiB"):
        ipc.Client(sock).request({"cmd": "ask", "text": "q" * ipc.MAX_REQUEST})


class TestWindowsTransport:
    """The TCP-plus-token channel Windows uses, run here by switching the transport flag."""

    @pytest.fixture(autouse=True)
    def tcp(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(ipc, "USE_TCP", True)

    def test_round_trip_and_endpoint_file(self, server: ipc.Server, sock: Path) -> None:
        endpoint = json.loads(sock.read_text())
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert len(endpoint["token"]) >= 32
        assert endpoint["pid"] == os.getpid()
        pieces: list[dict] = []
        final = ipc.Client(sock).request({"cmd": "describe", "text": "over tcp"}, pieces.append)
        assert [p["text"] for p in pieces] == ["over", "tcp"]
        assert final["result"] == {"cmd": "describe", "words": 2}

    def test_requests_without_the_token_are_refused(self, server: ipc.Server, sock: Path) -> None:
        port = json.loads(sock.read_text())["port"]
        for request in ({"cmd": "describe"}, {"cmd": "describe", "token": "guess"},
                        {"cmd": "describe", "token": ["not", "text"]}, {"cmd": "describe", "token": "é"}):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(json.dumps(request).encode() + b"\n")
                events = [json.loads(line) for line in conn.makefile("rb")]
            assert len(events) == 1
            assert "right access token" in events[0]["problem"]

    def test_second_server_refused_and_close_removes_endpoint(self, server: ipc.Server, sock: Path) -> None:
        with pytest.raises(UserError, match="already running"):
            ipc.Server(echo_words, sock).start()
        server.close()
        assert not sock.exists()
        assert not ipc.daemon_running(sock)
        with pytest.raises(UserError, match="not running"):
            ipc.Client(sock).request({"cmd": "describe"})

    def test_stale_endpoint_file_is_replaced(self, sock: Path) -> None:
        sock.write_text('{"port": 1, "token": "old"}')
        assert not ipc.daemon_running(sock)
        with ipc.Server(echo_words, sock):
            assert json.loads(sock.read_text())["token"] != "old"
            assert ipc.Client(sock).request({"cmd": "describe", "text": "new"})["result"]["words"] == 1


@contextlib.contextmanager
def busy_listener(path: Path) -> Iterator[socket.socket]:
    """A listener that does not accept, with its queue of new connections full (a daemon in a burst)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(0)
        queued = []
        while True:  # Linux queues one connection for listen(0); the next is refused with EAGAIN
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.setblocking(False)
            try:
                conn.connect(str(path))
            except BlockingIOError:
                conn.close()
                break
            queued.append(conn)
        try:
            yield listener
        finally:
            for conn in queued:
                conn.close()


@pytest.fixture
def full_backlog(sock: Path) -> Iterator[socket.socket]:
    with busy_listener(sock) as listener:
        yield listener


def test_a_full_backlog_is_busy_not_gone(sock: Path, full_backlog: socket.socket,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert ipc.daemon_running(sock)
    monkeypatch.setattr(ipc, "BUSY_WAIT", 0.3)
    with pytest.raises(ipc.Busy) as err:
        ipc.Client(sock).request({"cmd": "stop"})
    assert "busy" in err.value.problem and "not running" not in err.value.problem


def test_a_request_waits_out_a_short_burst(sock: Path, full_backlog: socket.socket) -> None:
    """The client retries while the queue is full and is served once the daemon catches up."""
    def serve() -> None:
        time.sleep(0.5)
        for _ in range(3):  # the connection queued before, which never speaks, then ours
            conn, _ = full_backlog.accept()
            conn.settimeout(1.0)
            with conn, contextlib.suppress(TimeoutError):
                if conn.makefile("rb").readline():
                    conn.sendall(b'{"event": "done", "result": {"stopped": true}}\n')
                    return

    threading.Thread(target=serve, daemon=True).start()
    assert ipc.Client(sock).request({"cmd": "stop"})["result"] == {"stopped": True}


def test_a_burst_of_reads_and_stops_all_reach_the_server(sock: Path) -> None:
    """40 reads and 20 stops at once, each on its own connection: every stop arrives and is answered."""
    stops = []

    def daemon_like(request: dict, send: Callable[[dict], None]) -> dict:
        if request["cmd"] == "stop":
            stops.append(request["n"])
            return {"event": "done", "result": {"stopped": True}}
        time.sleep(0.2)  # a read at work
        return {"event": "done", "result": {"text": "words"}}

    requests = [{"cmd": "read", "n": n} for n in range(40)] + [{"cmd": "stop", "n": n} for n in range(20)]
    replies: list[dict] = []
    start = threading.Barrier(len(requests))

    def send(request: dict) -> None:
        start.wait()
        try:
            replies.append(ipc.Client(sock, timeout=30).request(request))
        except UserError as exc:
            replies.append({"event": "error", "problem": exc.problem})

    with ipc.Server(daemon_like, sock):
        threads = [threading.Thread(target=send, args=(r,)) for r in requests]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert sorted(stops) == list(range(20))
    assert [r for r in replies if r["event"] != "done"] == []
    assert len(replies) == 60
