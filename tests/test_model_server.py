"""Describe and ask through the user's own model server: a real llama-server (built from llama.cpp's source
package, see llama_cpp.py) running the tests' random-weight SmolVLM, converted by llama.cpp's own converter.

A random model says gibberish, so the tests assert that what is spoken is exactly what the server
streamed, that the request it received carried the conversation, and what the user hears when the
server is down, killed mid-answer, lacks the model or cannot take images.
"""

from __future__ import annotations

import http.server
import json
import re
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
from describe_screen.capture import Capture
from describe_screen.commands import doctor
from describe_screen.config import Config
from describe_screen.daemon import Daemon
from describe_screen.describer import Scene
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
    # --ignore-eos: the random model's answers are long enough to act on while they stream
    with llama_cpp.serve(gguf, tmp_path_factory.mktemp("log") / "server.log",
                         extra=("--verbose", "--ignore-eos")) as running:
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
    """Speech goes sentence by sentence (split at line breaks too), so compare all but the white space."""
    return "".join(spoken_text.split()) == "".join(text.split())


def test_describe_speaks_the_screen_text_lead_then_what_the_server_streamed(server, screen, tmp_path):
    path = tmp_path / "form.png"
    screen.save(path)
    daemon = make_daemon(server.url, tmp_path)
    final = handle(daemon, {"cmd": "describe", "image": str(path)})
    text = final["result"]["text"]
    streamed = direct(server.url, screen, vlm.Request(task=vlm.CAPTION_BRIEF), 24).strip()
    assert streamed and text == f"Sign up for the newsletter. {streamed}"
    assert said_as(spoken(daemon), text)


def test_ask_and_follow_up_carry_question_grounding_and_history_to_the_server(server, screen, tmp_path):
    path = tmp_path / "form.png"
    screen.save(path)
    daemon = make_daemon(server.url, tmp_path)
    first = handle(daemon, {"cmd": "ask", "image": str(path), "question": "Is there a Submit button?"})
    answer = first["result"]["text"]
    grounding = " ".join(line.text for line in daemon.scene.lines)
    request = vlm.Request(task=vlm.ASK, question="Is there a Submit button?", grounding=grounding)
    assert answer and answer == direct(server.url, screen, request, 24).strip()

    follow = handle(daemon, {"cmd": "ask", "question": "What is it for?"})["result"]["text"]
    history = [vlm.Turn("Is there a Submit button?", answer)]
    request = vlm.Request(task=vlm.ASK, question="What is it for?", history=history, grounding=grounding)
    assert follow == direct(server.url, screen, request, 24).strip()
    assert said_as(spoken(daemon), answer + follow)
    # the prompt text llama-server put around the image (its verbose log) holds the whole conversation
    assert prompt_texts(server)[-1] == (f"Is there a Submit button?<end_of_utterance>\nAssistant: {answer}"
                                        "<end_of_utterance>\nUser: Text recognised on the screen:\n"
                                        f"{grounding}\n\nWhat is it for?<end_of_utterance>\nAssistant:")


def prompt_texts(server: llama_cpp.Server) -> list[str]:
    """The text pieces llama-server's multimodal tokenizer added after the image, from its verbose log."""
    entries = re.split(r"\n(?=\d+\.\d+\.\d+\.\d+ [DIWE] )", server.log_text())
    return [entry.split(" D add_text: ", 1)[1] for entry in entries if " D add_text: " in entry]


def test_stop_closes_the_stream_within_100_ms(server, screen, tmp_path):
    config = make_daemon(server.url, tmp_path, tokens=MANY).config
    describer = Daemon(config, Speaker(config.speech, tmp_path / "s.wav")).describer
    stop = threading.Event()
    logged = len(server.log_text())
    pieces = describer.describe(Scene(Capture(screen, "image")), "brief", stop.is_set)
    lead, first = next(pieces), next(pieces)
    assert lead.startswith("Sign up") and first
    stop.set()
    started = time.perf_counter()
    rest = list(pieces)
    closed = time.perf_counter() - started
    assert closed < 0.1, closed
    assert len(rest) < MANY  # the generator ended, it did not run the answer out
    # llama-server saw the connection go and dropped the task before generating all it was asked for
    deadline = time.monotonic() + 10
    while "cancel task" not in server.log_text()[logged:] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "cancel task" in server.log_text()[logged:]


@pytest.fixture(scope="module")
def local_models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("local")
    tiny_smolvlm_bundle(root)
    return root / "models"


def test_server_killed_mid_answer_is_said_and_the_local_model_answers(gguf, screen, local_models, tmp_path):
    with llama_cpp.serve(gguf, tmp_path / "server.log", threads=1, extra=("--ignore-eos",)) as doomed:
        config = make_daemon(doomed.url, tmp_path, models=local_models, tokens=MANY).config
        daemon = Daemon(config, Speaker(config.speech, tmp_path / "s.wav"))
        pieces = daemon.describer.describe(Scene(Capture(screen, "image")), "brief", lambda: False)
        assert next(pieces).startswith("Sign up") and next(pieces)
        doomed.stop()
        text = daemon.speaker.say_stream(pieces)
    said = spoken(daemon)
    assert f"The model server at 127.0.0.1:{doomed.port} stopped in the middle of its answer." in said
    assert "Until it answers again, I use the local model tiny-smolvlm." in said
    local = daemon.describer.model(vlm.CAPTION_BRIEF)
    assert local is not None and local.name == "tiny-smolvlm"
    caption = "".join(local.stream(screen, vlm.Request(task=vlm.CAPTION_BRIEF), lambda: False)).strip()
    assert text.rstrip().endswith(caption)


def test_unreachable_server_is_said_once_and_the_text_reader_answers(screen, tmp_path):
    path = tmp_path / "form.png"
    screen.save(path)
    daemon = make_daemon(f"http://127.0.0.1:{llama_cpp.free_port()}/v1", tmp_path)
    first = handle(daemon, {"cmd": "describe", "image": str(path)})["result"]["text"]
    second = handle(daemon, {"cmd": "describe", "image": str(path)})["result"]["text"]
    said = spoken(daemon)
    assert said.count("cannot be reached") == 1 and "Until it answers again, I use the text reader." in said
    assert "Submit" in first and "Submit" in second and "cannot be reached" not in second


def test_unknown_model_name_is_said_with_the_names_the_server_has(server, screen, tmp_path):
    daemon = make_daemon(server.url, tmp_path, server_model="llava-13b")
    path = tmp_path / "form.png"
    screen.save(path)
    handle(daemon, {"cmd": "describe", "image": str(path)})
    said = spoken(daemon)
    assert "has no model named 'llava-13b'. It has: tiny-smolvlm." in said
    assert "Set models.server_model in" in said


def test_model_without_image_input_is_said_and_doctor_finds_it(gguf, screen, tmp_path):
    text_only = llama_cpp.Gguf(gguf.model, mmproj=None)
    with llama_cpp.serve(text_only, tmp_path / "server.log") as blind:
        daemon = make_daemon(blind.url, tmp_path)
        path = tmp_path / "form.png"
        screen.save(path)
        handle(daemon, {"cmd": "describe", "image": str(path)})
        with pytest.raises(UserError, match="does not take images"):
            doctor.check_server(daemon.config)
    said = spoken(daemon)
    assert "does not take images" in said and "--mmproj" in said


def test_doctor_says_where_captures_go(server):
    config = Config()
    assert "never leave this machine" in doctor.check_server(config).says
    config.models.server = server.url
    check = doctor.check_server(config)
    assert check.status == doctor.OK
    assert f"sent to 127.0.0.1:{server.port}, unencrypted (plain http), for the model tiny-smolvlm" in check.says


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


def test_connections_go_only_to_the_server_and_none_without_it(server, screen, tmp_path):
    path = tmp_path / "form.png"
    screen.save(path)
    CONNECTS.clear()
    local = make_daemon("", tmp_path)
    handle(local, {"cmd": "describe", "image": str(path)})
    spoken(local)
    assert CONNECTS == []
    daemon = make_daemon(server.url, tmp_path)
    handle(daemon, {"cmd": "describe", "image": str(path)})
    spoken(daemon)
    assert CONNECTS and {address[:2] for address in CONNECTS} == {("127.0.0.1", server.port)}


def test_key_file_is_sent_and_a_wrong_key_is_said(gguf, tmp_path):
    key = tmp_path / "key"
    key.write_text("s3cret\n")
    with llama_cpp.serve(gguf, tmp_path / "server.log", extra=("--api-key", "s3cret")) as guarded:
        config = Config()
        config.models.server, config.models.server_key_file = guarded.url, str(key)
        assert doctor.check_server(config).status == doctor.OK
        key.write_text("wrong")
        with pytest.raises(UserError, match="refused the key"):
            doctor.check_server(config)
