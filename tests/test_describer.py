"""The describer with the real text reader: what it says of a request stopped before any text was read."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from describe_screen.capture import Capture
from describe_screen.config import Config
from describe_screen.describer import Describer, Scene

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@pytest.fixture
def describer(tmp_path: Path) -> Describer:
    config = Config()
    config.models.dir = str(tmp_path / "no-models")  # the text reader, whatever is installed here
    return Describer(config)


def page() -> Image.Image:
    image = Image.new("RGB", (700, 160), "white")
    ImageDraw.Draw(image).text((30, 50), "Invoice total is 42 euros", fill="black", font=ImageFont.truetype(FONT, 32))
    return image


@pytest.mark.parametrize("how", ["read", "brief", "full"])
def test_a_request_stopped_before_any_text_never_says_there_is_none(describer: Describer, how: str) -> None:
    scene = Scene(Capture(page(), "image"))
    stopped = lambda: True  # noqa: E731 - the stop key came before recognition finished a batch
    pieces = describer.read(scene, stopped) if how == "read" else describer.describe(scene, how, stopped)
    said = "".join(pieces)
    assert "no text" not in said.lower(), said


def test_a_page_without_text_still_says_so(describer: Describer) -> None:
    image = Image.new("RGB", (700, 160), (200, 220, 240))
    ImageDraw.Draw(image).ellipse((250, 20, 450, 140), fill=(30, 90, 160))  # a shape, no letters
    scene = Scene(Capture(image, "image"))
    assert "I found no text on the screen." in "".join(describer.read(scene, lambda: False))


def test_closing_stops_the_read_ahead_and_waits_for_it(describer: Describer) -> None:
    """At shutdown the background reading stops at its next check and has ended when close() returns
    (the interpreter must not exit while it runs in onnxruntime); what it read is not kept as the whole."""
    image = Image.new("RGB", (1920, 1080), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.truetype(FONT, 28)
    for n in range(30):
        draw.text((40, 20 + n * 34), f"Row {n} of the quarterly ledger", fill="black", font=font)
    scene = Scene(Capture(image, "image"))
    describer.read_ahead(scene)
    assert describer.close(timeout=60)
    assert scene.lines is None
    assert "Row 29 of the quarterly ledger" in [line.text for line in describer.lines(scene, lambda: False)]
