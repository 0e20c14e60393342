"""Vision-language models run with onnxruntime: one module per family behind one small interface.

A bundle folder holds `manifest.json`, whose "family" is a key of FAMILIES below; `bundle.Bundle`
reads and opens every bundle the same way. Adding a family adds its module, one line in FAMILIES (and
one in the exporter's table) and a manifest in models/: which model serves which task is decided by the
catalogue's ranks, so nothing else names a family. Nothing in this package imports torch or transformers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from describe_screen.i18n import _

if TYPE_CHECKING:
    from PIL.Image import Image

    from describe_screen.ocr import TextLine
    from describe_screen.vlm.bundle import Bundle

# Tasks a family may support; the daemon asks `model.tasks` before choosing a model.
CAPTION_BRIEF = "caption_brief"
CAPTION_FULL = "caption_full"
ASK = "ask"
OCR = "ocr"
# Text recognised on the screen and offered to a model as grounding is cut to this many characters: a
# full screen of text would make the prompt (and so the time to the first spoken word) several times
# longer for little gain. The describer cuts what it collects, every family what it is given.
GROUNDING_CHARS = 1200


@dataclass
class Turn:
    """One question and its answer, kept for follow-up questions about the same capture."""

    question: str
    answer: str


@dataclass
class Request:
    """What to do with one image: a caption, an answer to a question, or OCR."""

    task: str
    question: str = ""
    history: list[Turn] = field(default_factory=list)
    grounding: str = ""  # text recognised on the screen, offered to the model as context (GROUNDING_CHARS)
    language: str = "en"  # the language to answer in (ISO 639-1); only families that can are asked another


@dataclass
class RuntimeOptions:
    """How to run a bundle: provider ("auto", "cuda", "cpu"), CPU threads (0 = auto), limits."""

    provider: str = "auto"
    threads: int = 0
    max_new_tokens: int = 160
    tiles: str = "fast"  # "fast": one tile; "default": the processor's own tiling
    precision: str = "auto"  # which weight file set to load when a bundle holds several
    fused: bool = True  # on the CPU, run the faster copies derived at install (vlm/fused.py, onnx.int8_products)


class VisionLanguageModel(Protocol):
    """The whole interface the daemon sees. A family that answers in many languages sets a class attribute
    `multilingual = True`; the others answer in English (see answers_in)."""

    name: str
    tasks: frozenset[str]

    def provider(self) -> str:
        """The execution provider the sessions really run on, e.g. "CPUExecutionProvider"."""
        ...

    def warm_up(self) -> None:
        """Load sessions and run one tiny pass so the first real request is fast."""
        ...

    def stream(self, image: Image, request: Request, cancelled: Callable[[], bool]) -> Iterator[str]:
        """Yield text pieces as tokens are decoded; stop early when `cancelled()` is true."""
        ...


def answers_in(model: object, wanted: str) -> bool:
    """The model can answer in the language `wanted` (every family answers in English)."""
    return wanted == "en" or bool(getattr(model, "multilingual", False))


def user_texts(request: Request, prompts: dict[str, str]) -> tuple[str, str]:
    """(text of the first user turn, text of the current one) for a request, from a bundle's prompts;
    grounding text goes into the current turn, so the model reads it right before answering."""
    from describe_screen.errors import UserError

    if request.task == ASK:
        if not request.question.strip():
            raise UserError(_("The question is empty."), _("Type or say a question, then press Enter."))
        current = prompts.get(ASK, "{question}").format(question=request.question.strip())
    elif request.task in prompts:
        current = prompts[request.task]
    else:
        raise UserError(_("This model cannot do the task {task!r}.", task=request.task),
                        _("Choose another model for it in the settings file."))
    if grounding := request.grounding.strip()[:GROUNDING_CHARS]:
        current = prompts.get("grounding", "{text}\n").format(text=grounding) + current
    if request.language != "en":
        from describe_screen import language

        current += f" Answer in {language.name(request.language)}."
    first = request.history[0].question if request.history else current
    return first, current


@runtime_checkable
class TextReader(Protocol):
    """What reads a screen's text line by line: the built-in OCR, or a model whose family can."""

    def warm_up(self) -> None: ...

    def provider(self) -> str: ...

    def iter_lines(self, image: Image, cancelled: Callable[[], bool] = ...,
                   unread: set[str] | None = ...) -> Iterator[TextLine]: ...


def _smolvlm(bundle: Bundle) -> VisionLanguageModel:
    from describe_screen.vlm.smolvlm import SmolVLM

    return SmolVLM(bundle)


def _florence2(bundle: Bundle) -> VisionLanguageModel:
    from describe_screen.vlm.florence2 import Florence2

    return Florence2(bundle)


def _qwen35(bundle: Bundle) -> VisionLanguageModel:
    from describe_screen.vlm.qwen35 import Qwen35

    return Qwen35(bundle)


# Every family this version runs, by the name manifest.json gives it.
FAMILIES: dict[str, Callable[[Bundle], VisionLanguageModel]] = {"smolvlm": _smolvlm, "florence2": _florence2,
                                                                "qwen3.5": _qwen35}


def read_manifest(bundle: Path) -> dict:
    """manifest.json of a bundle folder, checked (see manifest.read_manifest)."""
    from describe_screen.vlm.manifest import read_manifest

    return read_manifest(bundle)


def load_model(bundle: Path, options: RuntimeOptions | None = None) -> VisionLanguageModel:
    """Open a bundle with the module of its family. Sessions load lazily (on warm_up or first use)."""
    from describe_screen.vlm.bundle import Bundle

    opened = Bundle(bundle, options or RuntimeOptions())
    return FAMILIES[opened.family](opened)
