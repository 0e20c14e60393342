"""Vision-language models run with onnxruntime: one module per family behind one small interface.

A bundle folder holds `manifest.json`, whose "family" names the module here that runs it
(`describe_screen.vlm.<family>`), so adding a family adds one module and touches nothing else.
Nothing in this package imports torch or transformers.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from describe_screen.errors import UserError

if TYPE_CHECKING:
    from PIL.Image import Image

# Tasks a family may support; the daemon asks `model.tasks` before choosing a model.
CAPTION_BRIEF = "caption_brief"
CAPTION_FULL = "caption_full"
ASK = "ask"
OCR = "ocr"


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
    grounding: str = ""  # text recognised on the screen, offered to the model as context


@dataclass
class RuntimeOptions:
    """How to run a bundle: provider ("auto", "cuda", "cpu"), CPU threads (0 = auto), limits."""

    provider: str = "auto"
    threads: int = 0
    max_new_tokens: int = 160
    tiles: str = "fast"  # "fast": one tile; "default": the processor's own tiling
    precision: str = "auto"  # which weight file set to load when a bundle holds several


class VisionLanguageModel(Protocol):
    """The whole interface the daemon sees."""

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


def read_manifest(bundle: Path) -> dict:
    path = bundle / "manifest.json"
    if not path.is_file():
        raise UserError(f"The model folder {bundle} has no manifest.json, so it is not a model bundle.",
                        "Export the model again with: describe-screen models export NAME.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"The model manifest {path} is damaged: {exc}.",
                        "Export the model again with: describe-screen models export NAME.") from exc


def load_model(bundle: Path, options: RuntimeOptions | None = None) -> VisionLanguageModel:
    """Open a bundle with the module of its family. Sessions load lazily (on warm_up or first use)."""
    manifest = read_manifest(bundle)
    family = str(manifest.get("family", ""))
    try:
        module = importlib.import_module(f"describe_screen.vlm.{family}")
    except ModuleNotFoundError as exc:
        raise UserError(f"The model in {bundle} is of family {family!r}, which this version cannot run.",
                        "Update describe-screen, or remove the model with: describe-screen models remove.") from exc
    return module.load(bundle, manifest, options or RuntimeOptions())
