"""From a capture to words: the blank check, the text reader, and a vision model when one is installed.

Everything here yields text pieces as soon as they exist, so speech starts on the first sentence
while the rest is still being worked out. It never speaks or prints itself: problems met while loading
are kept in `notes` and yielded once with the next answer; the daemon says and logs them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from describe_screen import vlm
from describe_screen.config import Config
from describe_screen.errors import UserError
from describe_screen.i18n import N_, _

if TYPE_CHECKING:
    from pathlib import Path

    from PIL.Image import Image

    from describe_screen.capture import Capture
    from describe_screen.model_server import ServerModel
    from describe_screen.ocr import TextLine

Cancelled = Callable[[], bool]
LOAD_FAILED = N_("The vision model could not be loaded. {problem} Until then I use the text reader.")
START_FAILED = N_("The vision model could not start. {problem} Until then I use the text reader.")


@dataclass
class Scene:
    """One capture and what we learnt about it; follow-up questions reuse it."""

    capture: Capture
    lines: list[TextLine] | None = None
    unread: set[str] = field(default_factory=set)  # scripts of lines no installed recogniser could read
    history: list[vlm.Turn] = field(default_factory=list)
    reading: threading.Lock = field(default_factory=threading.Lock)  # one recognition of it at a time


class Describer:
    """Owns the text reader and the vision models, loading each once, on first use or at warm-up."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._ocr: vlm.TextReader | None = None
        self._models: dict[str, vlm.VisionLanguageModel | None] = {}  # by task
        self._bundles: dict[Path, vlm.VisionLanguageModel] = {}  # by folder: tasks share one loaded model
        self.notes: list[str] = []  # problems met while loading, said once to the user
        self.after: list[str] = []  # housekeeping (broken bundles), said once after an answer, not before
        self._noted: set[str] = set()
        self._closing = threading.Event()  # set at shutdown: background work stops at its next check
        self._background: list[threading.Thread] = []
        self.server: ServerModel | None = None  # the user's own model server, when models.server is set
        if config.models.server:
            from describe_screen.model_server import ServerModel

            self.server = ServerModel.from_config(config)

    # -- engines ------------------------------------------------------------------------------
    @property
    def ocr(self) -> vlm.TextReader:
        """RapidOCR, or the best installed model that reads text (by the catalogue's ranks) when the
        settings ask for a model reader."""
        if self.config.ocr.engine != "rapidocr" and self._ocr is None:
            model = self.model(vlm.OCR)
            if isinstance(model, vlm.TextReader):
                self._ocr = model
            else:
                from describe_screen import models

                self.notes.append(_("No installed vision model reads text, so I read text with the built-in "
                                    "reader. {hint}", hint=models.install_hint(vlm.OCR)) + " ")
        with self._lock:
            if self._ocr is None:
                from describe_screen.ocr import TextRecognizer

                self._ocr = TextRecognizer(provider=self.config.models.provider,
                                           threads=self.config.models.threads, models_dir=self.config.models_dir())
            return self._ocr

    def model(self, task: str) -> vlm.VisionLanguageModel | None:
        """The model for `task`, or None when none is installed, it failed to load (noted once), or the
        settings say to describe with the text reader only."""
        if task != vlm.OCR and self.config.describe.engine == "text":
            return None
        if self.server is not None and task in self.server.tasks and self.server.usable():
            return self.server
        names = {vlm.ASK: self.config.ask.model, vlm.OCR: "auto"}
        name = names.get(task, self.config.describe.model)
        with self._lock:
            if task not in self._models:
                self._models[task] = self._open(task, name)
            return self._models[task]

    def _open(self, task: str, name: str) -> vlm.VisionLanguageModel | None:
        from describe_screen import models

        options = vlm.RuntimeOptions(
            provider=self.config.models.provider, threads=self.config.models.threads,
            max_new_tokens=self.config.models.max_new_tokens, tiles=self.config.models.tiles,
            precision=self.config.models.precision,
        )
        folder = self.config.models_dir()
        if name == "auto" and (broken := models.broken(folder)):
            self._note_broken(list(broken))
        try:
            installed = (models.default_for(task, folder, provider=options.provider) if name == "auto"
                         else models.find(name, folder))
            if installed is None:
                return None
            model = self._bundles.get(installed.path) or vlm.load_model(installed.path, options)
            if task not in model.tasks:
                raise UserError(_("The model {name} cannot do {replace}.",
                                  name=model.name, replace=task.replace('_', ' ')),
                                _("Choose another model for it in the settings file."))
            self._bundles[installed.path] = model
            return model
        except UserError as exc:
            self._note(LOAD_FAILED, exc)
            return None

    def warm_up(self) -> None:
        """Load the text reader and the installed models now, so the first hotkey press is fast."""
        self.ocr.warm_up()
        warm: list[vlm.VisionLanguageModel] = []
        for task in (vlm.CAPTION_BRIEF, vlm.ASK):
            if (model := self.model(task)) and model not in warm:
                try:
                    model.warm_up()
                    warm.append(model)
                except UserError as exc:
                    self._failed(task, model, START_FAILED, exc)

    def models_changed(self) -> None:
        """A model was installed or removed: choose again at the next request. Loaded bundles stay
        loaded, so a task that keeps its model does not load it twice."""
        with self._lock:
            self._models.clear()

    def _forget(self, model: vlm.VisionLanguageModel) -> None:
        """A broken model serves no task any more; each task it served falls back to the text reader."""
        with self._lock:
            self._models = {t: (None if m is model else m) for t, m in self._models.items()}
            self._bundles = {path: m for path, m in self._bundles.items() if m is not model}

    def _failed(self, task: str, model: vlm.VisionLanguageModel, what: str, exc: UserError) -> None:
        """A broken local model is dropped for good; the server is skipped for a while (said once), and the
        local model or the text reader answers meanwhile."""
        if model is not self.server:
            self._forget(model)
            self._note(what, exc)
        elif self.server.failed():
            backup = self.model(task)
            self.notes.append(_("{problem} Until it answers again, I use the local model {name}.", problem=exc,
                                name=backup.name) if backup else
                              _("{problem} Until it answers again, I use the text reader.", problem=exc))

    def _note(self, what: str, exc: UserError) -> None:
        """Say a model problem once, however many tasks met it."""
        note = _(what, problem=exc)
        if note not in self._noted:
            self._noted.add(note)
            self.notes.append(note)

    def _note_broken(self, names: list[str]) -> None:
        """One short sentence for every broken bundle together, said after the answer: the other models
        and the text reader still answer, and `models list` gives each reason and its fix."""
        note = (_("The installed model {name} is not usable; describe-screen models list says why and how to fix it.",
                  name=names[0]) if len(names) == 1 else
                _("{count} installed models are broken: {names}. They are not usable; describe-screen models list "
                  "says why and how to fix it.", count=len(names), names=", ".join(names)))
        if note not in self._noted:
            self._noted.add(note)
            self.after.append(note)

    def take_after(self) -> Iterator[str]:
        """Yield (once) the notes kept for after an answer."""
        while self.after:
            yield " " + self.after.pop(0)

    def take_notes(self) -> Iterator[str]:
        """Yield (once) what went wrong while loading, so the user hears why quality dropped."""
        while self.notes:
            yield self.notes.pop(0) + " "

    # -- the three jobs -----------------------------------------------------------------------
    def lines(self, scene: Scene, cancelled: Cancelled) -> list[TextLine]:
        """All the scene's lines at once; one recognition at a time per scene (read_ahead may be running)."""
        with scene.reading:
            return list(self.stream_lines(scene, cancelled))

    def read_ahead(self, scene: Scene) -> None:
        """Recognise the scene's text in the background (while a question is being spoken), so the
        answer does not wait for it. close() stops and waits for it."""
        thread = threading.Thread(target=self.lines, args=(scene, self._closing.is_set), name="read-ahead",
                                  daemon=True)
        self._background = [t for t in self._background if t.is_alive()] + [thread]
        thread.start()

    def close(self, timeout: float) -> bool:
        """Stop the background work and wait for it, at most `timeout` seconds; False if some still runs.
        The interpreter must not exit while a thread is inside onnxruntime: the process then aborts
        ("terminate called without an active exception")."""
        self._closing.set()
        deadline = time.monotonic() + timeout
        for thread in self._background:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._background)

    def describe(self, scene: Scene, detail: str, cancelled: Cancelled) -> Iterator[str]:
        """Title first (known at once), then the vision model's caption or the text reader's summary."""
        from describe_screen import reader

        yield from self._context(scene)
        if blank := self._blank(scene):
            yield blank
            return
        capture = scene.capture
        task = vlm.CAPTION_FULL if detail == "full" else vlm.CAPTION_BRIEF
        model = self.model(task)
        answer_in = self._answer_language(model)
        yield from self.take_notes()

        def text_reader() -> Iterator[str]:
            if detail == "full":
                pieces = reader.full(self.lines(scene, cancelled))
            else:  # the certain part first (title, top line), the summary once all is read
                from describe_screen.ocr import is_photo

                pieces = reader.narrate(self.stream_lines(scene, cancelled), capture.title, capture.image.size,
                                        is_photo(capture.image))
            # a summary made after a stop is of the lines read so far: "no text found" would be false; so
            # it is on a screen whose only text is in a script no installed recogniser reads
            yield from (piece + " " for piece in _until(pieces, cancelled) if scene.lines != [] or not scene.unread)
            yield from self._unread(scene, cancelled)

        if model is None:
            yield from text_reader()
        else:
            yield self._lead(scene, cancelled)
            # what the desktop says about the capture (the focused object) is the model's context too
            request = vlm.Request(task=task, grounding=capture.context, language=answer_in)
            yield from self._stream(task, model, capture.image, request, cancelled, text_reader)
        yield from _until(self.take_after(), cancelled)

    def read(self, scene: Scene, cancelled: Cancelled) -> Iterator[str]:
        """All the text, in reading order, line by line as recognition goes."""
        yield from self._context(scene)
        if blank := self._blank(scene):
            yield blank
            return
        found = False
        for line in self.stream_lines(scene, cancelled):
            found = True
            yield line.text + "\n"
        if not found and not cancelled() and not scene.unread:  # stopped before any line: says nothing
            yield _("I found no text on the screen.") + " "
        yield from self._unread(scene, cancelled)

    def _unread(self, scene: Scene, cancelled: Cancelled) -> Iterator[str]:
        """Say that some text is in a script no installed recogniser reads, and what installs one."""
        if scene.unread and not cancelled():
            from describe_screen import language, scripts

            yield scripts.hint(scene.unread, language.user_language(),
                               list(scripts.installed(self.config.models_dir()))) + " "

    def stream_lines(self, scene: Scene, cancelled: Cancelled) -> Iterator[TextLine]:
        """The scene's lines as they are recognised (kept for follow-ups once all are read)."""
        if scene.lines is not None:
            yield from scene.lines
            return
        found: list[TextLine] = []
        for line in self.ocr.iter_lines(scene.capture.image, cancelled, scene.unread):
            found.append(line)
            yield line
        if not cancelled():
            scene.lines = found

    def ask(self, scene: Scene, question: str, cancelled: Cancelled) -> Iterator[str]:
        """Answer about the scene; follow-ups see the earlier turns. The turn is kept for the next one."""
        from describe_screen import textqa

        question = question.strip()
        if not question:
            raise UserError(_("The question is empty."), _("Ask again, with the question in words."))
        if blank := self._blank(scene):
            yield blank
            return
        model = self.model(vlm.ASK)
        answer_in = self._answer_language(model)
        yield from self.take_notes()
        capture = scene.capture
        answer: list[str] = []

        def text_answer() -> Iterator[str]:
            from describe_screen import models

            text = textqa.answer(question, self.lines(scene, cancelled), capture.title, capture.image.size)
            yield text or _("I can only answer questions about the text on the screen, and the text does not "
                            "answer that. A vision model is needed for it. {hint}", hint=models.install_hint(vlm.ASK))

        if model is not None:
            grounding = capture.context
            if self.config.ask.grounding:
                recognised = " ".join(line.text for line in self.lines(scene, cancelled))
                grounding = f"{grounding} {recognised}".strip()[:vlm.GROUNDING_CHARS]
            request = vlm.Request(task=vlm.ASK, question=question, history=list(scene.history),
                                  grounding=grounding, language=answer_in)
            pieces = self._stream(vlm.ASK, model, capture.image, request, cancelled, text_answer)
        else:
            pieces = text_answer()
        for piece in pieces:
            answer.append(piece)
            yield piece
        if not cancelled():
            scene.history.append(vlm.Turn(question, "".join(answer).strip()))
        yield from _until(self.take_after(), cancelled)

    def _stream(self, task: str, model: vlm.VisionLanguageModel, image: Image, request: vlm.Request,
                cancelled: Cancelled, fallback: Callable[[], Iterator[str]]) -> Iterator[str]:
        """The model's words; if the model breaks (a damaged file found at first use), say so once,
        stop using it, and let the text reader answer instead."""
        try:
            yield from model.stream(image, request, cancelled)
        except UserError as exc:
            self._failed(task, model, LOAD_FAILED, exc)
            yield from self.take_notes()
            backup = self.model(task) if model is self.server else None
            yield from self._stream(task, backup, image, request, cancelled, fallback) if backup else fallback()

    def _answer_language(self, model: vlm.VisionLanguageModel | None) -> str:
        """The user's language where the model can answer in it; else English, said once per model."""
        from describe_screen import language

        wanted = language.user_language()
        if model is None or vlm.answers_in(model, wanted):
            return wanted
        note = _("The vision model {name} can only answer in English, so its answers stay in English.",
                 name=model.name) + " "
        if note not in self._noted:
            self._noted.add(note)
            self.notes.append(note)
        return "en"

    def _lead(self, scene: Scene, cancelled: Cancelled) -> str:
        """The quick lead before a model's caption: the window's title, else the first line of text."""
        if scene.capture.target == "window" and scene.capture.title:
            return f"{scene.capture.title}. "
        first = next(iter(self.ocr.iter_lines(scene.capture.image, cancelled)), None)
        return f"{first.text}. " if first else ""

    @staticmethod
    def _context(scene: Scene) -> Iterator[str]:
        """What the desktop says about the capture (the focused object's role and name) comes first:
        it is exact, where a picture of a small control can be misread."""
        if scene.capture.context:
            yield scene.capture.context + " "

    def _blank(self, scene: Scene) -> str | None:
        from describe_screen.blank import describe_blank

        return describe_blank(scene.capture.image)


def _until(pieces: Iterator[str], cancelled: Cancelled) -> Iterator[str]:
    """`pieces` until the request is cancelled: nothing made after a stop is said or returned."""
    for piece in pieces:
        if cancelled():
            return
        yield piece
