"""Describe and answer through the user's own model server: llama.cpp's llama-server, Ollama, vLLM.

They all speak the OpenAI chat API with images, so one client (the official `openai` library, pointed
at `models.server`) serves them all, behind the same small interface as the local models
(`describe_screen.vlm.VisionLanguageModel`): the describer's OCR lead, grounding text and follow-up
history work unchanged. Privacy: nothing here opens a connection unless `models.server` is set, and then
only to that host (no proxy from the environment, no redirects elsewhere); a plain-http address that
is not this machine is refused unless `models.server_allow_remote` is true.
"""

from __future__ import annotations

import base64
import contextlib
import io
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from describe_screen.config import Config, config_path, server_url
from describe_screen.errors import UserError
from describe_screen.i18n import N_, _
from describe_screen.vlm import ASK, CAPTION_BRIEF, CAPTION_FULL, Request, user_texts

if TYPE_CHECKING:
    from openai import OpenAI
    from PIL.Image import Image

# Prompts for the larger models a server usually runs; the same keys as a bundle manifest's [prompts].
PROMPTS = {
    CAPTION_BRIEF: "Describe this screenshot in one or two short sentences for someone who cannot see it.",
    CAPTION_FULL: "Describe this screenshot in detail for someone who cannot see it: the application, "
                  "the main content, visible text, buttons and dialogs.",
    ASK: "{question}",
    "grounding": "Text recognised on the screen:\n{text}\n\n",
}
# Captures are sent no larger than this on their longest side: enough for the engines' own tiling
# (SmolVLM's processor works at 2048 px) while a 4K screen still uploads quickly.
MAX_SIDE = 2048
JPEG_ABOVE = 3_000_000  # PNG keeps text sharp; a photo-like screen this big in PNG goes as JPEG instead
CONNECT_SECONDS = 3.0
POLL_SECONDS = 0.01  # how often a waiting stream checks for stop: well inside the 100 ms promise
RETRY_SECONDS = 30.0  # after a failure, local models answer for this long before the server is tried again
SETTINGS_FIX = N_("Check models.server in {path}, and that the server is running.")


def encode_image(image: Image) -> str:
    """The capture as a data URL, shrunk to MAX_SIDE: PNG, or JPEG when PNG would be very large."""
    from describe_screen.vlm.images import to_rgb

    rgb = to_rgb(image)
    if max(rgb.size) > MAX_SIDE:
        scale = MAX_SIDE / max(rgb.size)
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), resample=1)
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG")
    kind = "png"
    if buffer.tell() > JPEG_ABOVE:
        buffer = io.BytesIO()
        rgb.save(buffer, format="JPEG", quality=90)
        kind = "jpeg"
    return f"data:image/{kind};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def chat_messages(image_url: str, request: Request) -> list[dict[str, Any]]:
    """The conversation as the local models see it: the image with the first question, then the
    earlier answers and questions, then the current question (with the screen's text as grounding).
    Every content is a list of typed parts: chat templates written for images index into it."""
    first, current = user_texts(request, PROMPTS)

    def say(role: str, text: str) -> dict[str, Any]:
        return {"role": role, "content": [{"type": "text", "text": text}]}

    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}},
                                             {"type": "text", "text": first}]}]
    for index, turn in enumerate(request.history):
        if index:
            messages.append(say("user", turn.question))
        messages.append(say("assistant", turn.answer))
    if request.history:
        messages.append(say("user", current))
    return messages


class ServerModel:
    """The model on the user's server, streamed. It remembers a failure so the describer says it once
    and lets the local model answer for RETRY_SECONDS before trying the server again."""

    tasks = frozenset({CAPTION_BRIEF, CAPTION_FULL, ASK})

    def __init__(self, url: str, model: str = "", key_file: str = "", timeout: float = 60.0,
                 max_tokens: int = 160) -> None:
        self.url = url
        self.host = urlsplit(url).netloc
        self.model = model
        self.key_file = key_file
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.name = _("{model} on the server at {host}", model=model or _("the model"), host=self.host)
        self._checked = ""  # the model name the server confirmed it has
        self._retry_at = 0.0
        self.reported = False  # the user has heard about the current failure

    @classmethod
    def from_config(cls, config: Config) -> ServerModel:
        settings = config.models
        return cls(server_url(settings.server, settings.server_allow_remote), settings.server_model,
                   settings.server_key_file, settings.server_timeout, settings.max_new_tokens)

    # -- the model interface ------------------------------------------------------------------
    def provider(self) -> str:
        return _("the model server at {host}", host=self.host)

    def warm_up(self) -> None:
        """Check that the server answers and has the model; the engine loads its model itself."""
        with self._client() as client:
            self._check_model(client)

    def probe(self) -> str:
        """What doctor checks: the server answers, has the model, and takes an image (one token asked)."""
        from PIL import Image as PILImage

        image = encode_image(PILImage.new("RGB", (64, 64), "white"))
        with self._client() as client:
            model = self._check_model(client)
            try:
                client.chat.completions.create(model=model, messages=chat_messages(image, Request(CAPTION_BRIEF)),
                                               max_tokens=1, temperature=0.0)
            except Exception as exc:
                raise self.explain(exc) from exc
        return model

    def stream(self, image: Image, request: Request, cancelled: Callable[[], bool]) -> Iterator[str]:
        """The answer's text as the server streams it. A stop closes the connection at once, even while
        the server is still reading the image, so the engine stops working for us too."""
        messages = chat_messages(encode_image(image), request)
        pieces: queue.Queue[tuple[str, Any]] = queue.Queue()
        client = self._client()
        opened: list[Any] = []

        def read() -> None:
            try:
                model = self._check_model(client)
                stream = client.chat.completions.create(model=model, messages=messages, stream=True,
                                                        max_tokens=self.max_tokens, temperature=0.0)
                opened.append(stream)
                finish = None
                for chunk in stream:
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    if choice.delta and choice.delta.content:
                        pieces.put(("text", choice.delta.content))
                    finish = choice.finish_reason or finish
                pieces.put(("end", finish))
            except Exception as exc:  # handed to the caller's thread, which explains it
                pieces.put(("error", exc))

        threading.Thread(target=read, name="model-server-stream", daemon=True).start()
        try:
            while not cancelled():
                try:
                    kind, value = pieces.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    continue
                if cancelled():
                    return
                if kind == "text":
                    yield value
                elif kind == "error":
                    raise self.explain(value) from value
                elif value is None:  # the stream ended without saying it was finished
                    raise self.cut()
                else:
                    self.answered()
                    return
        finally:
            hang_up(opened, client)

    # -- failures -------------------------------------------------------------------------------
    def usable(self) -> bool:
        return time.monotonic() >= self._retry_at

    def failed(self) -> bool:
        """Note a failure; True when the user has not yet been told about it."""
        self._retry_at = time.monotonic() + RETRY_SECONDS
        self._checked = ""
        first, self.reported = not self.reported, True
        return first

    def answered(self) -> None:
        self._retry_at = 0.0
        self.reported = False

    def cut(self) -> UserError:
        return UserError(_("The model server at {host} stopped in the middle of its answer.", host=self.host),
                         _("Check that the server is still running; if it keeps happening, look at its log."))

    def explain(self, exc: BaseException) -> UserError:
        """Any failure of the client library, in plain words with what to do next."""
        import httpx2
        import openai

        if isinstance(exc, UserError):
            return exc
        message = _message(exc)
        if isinstance(exc, (openai.APITimeoutError, httpx2.TimeoutException)):
            return UserError(_("The model server at {host} did not answer within {timeout:g} seconds.",
                               host=self.host, timeout=self.timeout),
                             _("Check that it is not overloaded, or allow it longer with models.server_timeout in "
                               "{config_path}.",
                               config_path=config_path()))
        if isinstance(exc, openai.APIConnectionError):
            if isinstance(exc.__cause__, (httpx2.RemoteProtocolError, httpx2.ReadError)):
                return self.cut()
            return UserError(_("The model server at {host} cannot be reached.", host=self.host),
                             _(SETTINGS_FIX, path=config_path()))
        if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return UserError(_("The model server at {host} refused the key ({message}).",
                               host=self.host, message=message),
                             _("Put the right key in the file named by models.server_key_file in {config_path}.",
                               config_path=config_path()))
        if isinstance(exc, openai.NotFoundError) and "model" in message.lower():
            return self.unknown_model([])
        if isinstance(exc, openai.APIStatusError):
            if any(word in message.lower() for word in ("image", "multimodal", "vision", "mmproj")):
                return UserError((_("The model {model} at {host} does not take images ({message}).",
                                    model=self.model, host=self.host, message=message) if self.model else
                                  _("The model on the server at {host} does not take images ({message}).",
                                    host=self.host, message=message)),
                                 _("Run a vision model on the server (for llama-server, give it "
                                                    "the model's --mmproj file), or name one in "
                                                    "models.server_model."))
            return UserError(_("The model server at {host} answered with an error ({status_code}: {message}).",
                               host=self.host, status_code=exc.status_code, message=message),
                             _("Look at the server's log for the cause."))
        if isinstance(exc, (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.StreamError)):
            return self.cut()
        return UserError(_("The model server at {host} sent an answer I cannot read ({message}).",
                           host=self.host, message=message),
                         _("Check that models.server points at an OpenAI-compatible chat API, such as "
                           "llama-server, Ollama or vLLM."))

    def unknown_model(self, known: list[str]) -> UserError:
        listed = " " + _("It has: {models}.", models=", ".join(known)) if known else ""
        return UserError(_("The model server at {host} has no model named {model!r}.{listed}",
                           host=self.host, model=self.model, listed=listed),
                         _("Set models.server_model in {config_path} to one of its models.",
                           config_path=config_path()))

    # -- the client -----------------------------------------------------------------------------
    def models(self, client: OpenAI | None = None) -> list[str]:
        """The model names the server lists."""
        with self._client() if client is None else contextlib.nullcontext(client) as active:
            try:
                return [model.id for model in active.models.list()]
            except Exception as exc:
                raise self.explain(exc) from exc

    def _check_model(self, client: OpenAI) -> str:
        """The model to ask for: the configured one once the server has listed it, else the server's only
        one. A server that lists no models (some proxies) is asked by name anyway."""
        if self._checked:
            return self._checked
        known = self.models(client)
        if self.model and known and self.model not in known:
            raise self.unknown_model(known)
        if not self.model and len(known) != 1:
            raise UserError(_("The model server at {host} has {count} models, and models.server_model does not say "
                              "which one to use.", host=self.host, count=len(known)) + (
                                " " + _("It has: {models}.", models=", ".join(known)) if known else ""),
                            _("Set models.server_model in {config_path}.", config_path=config_path()))
        self._checked = self.model or known[0]
        return self._checked

    def _client(self) -> OpenAI:
        """A client for one request: closing it hangs up whatever it still has open. The API key comes
        only from the key file (never from OPENAI_API_KEY, which belongs to another service)."""
        import httpx2
        import openai

        key = "none"
        if self.key_file:
            path = Path(self.key_file).expanduser()
            try:
                key = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise UserError(_("The key file {path} for the model server cannot be read: {strerror}.",
                                  path=path, strerror=exc.strerror),
                                _("Check models.server_key_file in {config_path}.", config_path=config_path())) from exc
        timeout = httpx2.Timeout(self.timeout, connect=min(CONNECT_SECONDS, self.timeout))
        http = httpx2.Client(timeout=timeout, trust_env=False, follow_redirects=False)
        return openai.OpenAI(base_url=self.url, api_key=key, max_retries=0, http_client=http)


def hang_up(opened: list[Any], client: OpenAI) -> None:
    """Close a stream now: shut its socket down first, so a reader blocked on it wakes at once and the
    server sees the connection go, then close the client and everything it holds."""
    import socket

    for stream in opened:
        network = stream.response.extensions.get("network_stream")
        sock = network.get_extra_info("socket") if network is not None else None
        with contextlib.suppress(OSError):
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
    threading.Thread(target=client.close, daemon=True).start()  # never wait on a reader mid-read


def _message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if body.get("message"):
            return str(body["message"])
    return str(exc) or type(exc).__name__
