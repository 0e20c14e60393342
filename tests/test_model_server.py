"""Describe and ask through the user's own model server: a real llama-server (built from llama.cpp's source
package, see llama_cpp.py) running the tests' random-weight SmolVLM, converted by llama.cpp's own converter.

A random model says gibberish, so the tests assert that what is spoken is exactly what the server
streamed, that the request it received carried the conversation, and what the user hears when the
server is down, killed mid-answer, lacks the model or cannot take images.
"""

from __future__ import annotations

import http.server
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import llama_cpp
import pytest
from PIL import Image, ImageDraw, ImageFont
from tiny import build_tiny_smolvlm, tiny_smolvlm_bundle

from describe_screen import config as settings
from describe_screen import vlm
from describe_screen.config import Config
from describe_screen.daemon import Daemon
from describe_screen.errors import UserError
from describe_screen.model_server import chat_messages, encode_image
from describe_screen.speech import Speaker

pytestmark = pytest.mark.slow
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
MANY = 2000  # tokens asked for when a test must act while the answer is still streaming


@pytest.fixture(scope="module")
def gguf(tmp_path_factory) -> llama_cpp.Gguf:
    """The tiny SmolVLM as GGUF text model plus vision projector (and llama-server built)."""
    root = tmp_path_factory.mktemp("llama")
    llama_cpp.build()
    return llama_cpp.convert(build_tiny_smolvlm(root / "source"), root / "gguf")


@pytest.fixture(scope="module")
def server(gguf, tmp_path_factory) -> Iterator[llama_cpp.Server]:
    with llama_cpp.serve(gguf, tmp_path_factory.mktemp("log") / "server.log", extra=("--verbose",)) as running:
        yield running


@pytest.fixture(scope="module")
def screen() -> Image.Image:
    image = Image.new("RGB", (640, 360), "white")
    draw = ImageDraw.Draw(image)
    draw.text((40, 40), "Sign up for the newsletter", fill="black", font=ImageFont.truetype(FONT, 28))
    draw.text((70, 210), "Submit", fill="black", font=ImageFont.truetype(FONT, 24))
    return image


def make_daemon(url: str, tmp_path: Path, models: Path | None = None, tokens: int = 24, **keys) -> Daemon:
    config = Config()
    config.models.server = url
    config.models.dir = str(models or tmp_path / "no-models")
    config.models.max_new_tokens = tokens
    config.speech.cues = False
    for key, value in keys.items():
        setattr(config.models, key, value)
    return Daemon(config, Speaker(config.speech, tmp_path / "speech.wav"))


def direct(url: str, image: Image.Image, request: vlm.Request, tokens: int) -> str:
    """What the server answers to the same conversation, asked without streaming."""
    reply = httpx2.post(f"{url}/chat/completions", timeout=60, json={
        "model": "tiny-smolvlm", "messages": chat_messages(encode_image(image), request),
        "max_tokens": tokens, "temperature": 0.0})
    reply.raise_for_status()
    return reply.json()["choices"][0]["message"]["content"]


def handle(daemon: Daemon, request: dict) -> dict:
    """One request, heard to the end (a new request would cut the speech still queued)."""
    final = daemon.handle(request)
    daemon.speaker.wait_idle(60)
    return final


def spoken(daemon: Daemon) -> str:
    daemon.speaker.wait_idle(60)
    daemon.speaker.close()
    return " ".join(daemon.speaker.spoken)


def said_as(spoken_text: str, text: str) -> bool:
    return spoken_text.replace(" ", "") == text.replace(" ", "")


def requests_received(server: llama_cpp.Server) -> list[dict]:
    """The chat requests in llama-server's verbose log, parsed."""
    bodies = [line.split("request:", 1)[1].strip() for line in server.log_text().splitlines() if "request:  {" in line]
    return [body for body in map(json.loads, bodies) if "messages" in body]


@pytest.fixture(scope="module")
def local_models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("local")
    tiny_smolvlm_bundle(root)
    return root / "models"


def test_unreachable_server_is_said_once_and_the_text_reader_answers(screen, tmp_path):
    path = tmp_path / "form.png"
    screen.save(path)
    daemon = make_daemon(f"http://127.0.0.1:{llama_cpp.free_port()}/v1", tmp_path)
    first = handle(daemon, {"cmd": "describe", "image": str(path)})["result"]["text"]
    second = handle(daemon, {"cmd": "describe", "image": str(path)})["result"]["text"]
    said = spoken(daemon)
    assert said.count("cannot be reached") == 1 and "Until it answers again, I use the text reader." in said
    assert "Submit" in first and "Submit" in second and "cannot be reached" not in second


class Broken(http.server.BaseHTTPRequestHandler):
    """An OpenAI-lookalike that lists a model, then answers chats with a stream that is not JSON, or not
    at all (the two failures a real engine cannot be made to produce on demand)."""

    mode = "garbage"

    def do_GET(self) -> None:
        self._send("application/json", json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}))

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if Broken.mode == "silent":
            time.sleep(3)
            return
        self._send("text/event-stream", 'data: {"choices": [{"delta": {"content": "Hel\n\ndata: {oops\n\n')

    def _send(self, kind: str, body: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize(("mode", "heard"), [("garbage", "sent an answer I cannot read"),
                                             ("silent", "did not answer within 1 seconds")])
def test_malformed_stream_and_timeout_are_said_and_the_text_reader_answers(mode, heard, screen, tmp_path):
    Broken.mode = mode
    stand_in = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    try:
        daemon = make_daemon(f"http://127.0.0.1:{stand_in.server_port}/v1", tmp_path, server_timeout=1.0)
        path = tmp_path / "form.png"
        screen.save(path)
        final = handle(daemon, {"cmd": "describe", "image": str(path)})
    finally:
        stand_in.shutdown()
    assert heard in spoken(daemon)
    assert final["event"] == "done" and "Submit" in final["result"]["text"]


def test_plain_http_to_another_machine_needs_consent():
    with pytest.raises(UserError, match="server_allow_remote"):
        settings.from_dict({"models": {"server": "http://192.168.1.20:11434/v1"}})
    assert settings.from_dict({"models": {"server": "http://192.168.1.20:11434/v1", "server_allow_remote": True}})
    assert settings.from_dict({"models": {"server": "https://gpu.example.org/v1"}})
    with pytest.raises(UserError, match="not a web address"):
        settings.from_dict({"models": {"server": "localhost:8080"}})


CONNECTS: list[tuple] = []
sys.addaudithook(lambda event, args: CONNECTS.append(args[1])
                 if event == "socket.connect" and isinstance(args[1], tuple) else None)

