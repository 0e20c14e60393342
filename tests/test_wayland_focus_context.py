"""What AT-SPI says about the focused object reaches the user first and the vision model as context
(the tiny SmolVLM, exported by the user-facing exporter)."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw, ImageFont
from test_daemon_vlm import FONT, PromptSpy, make_daemon
from tiny import tiny_smolvlm_bundle

from describe_screen import vlm
from describe_screen.capture import Capture
from describe_screen.describer import Scene

SAID = "A push button, 'Send', in the dialog 'New message'. Nearby: Cancel."


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.getbasetemp()
    tiny_smolvlm_bundle(root)
    return root / "models"


def button() -> Image.Image:
    image = Image.new("RGB", (140, 70), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 10, 130, 60), outline="black", width=2)
    draw.text((40, 20), "Send", fill="black", font=ImageFont.truetype(FONT, 22))
    return image


def test_focus_context_is_said_first_and_given_to_the_model(models_dir, tmp_path):
    daemon = make_daemon(models_dir, tmp_path)
    describer = daemon.describer
    spy = PromptSpy(describer.model(vlm.CAPTION_BRIEF))
    scene = Scene(Capture(button(), "focus", title="New message", context=SAID))
    described = "".join(describer.describe(scene, "brief", lambda: False))
    assert described.startswith(SAID + " ") and len(described) > len(SAID) + 2  # then the caption
    assert SAID in spy.prompts[-1]
    answered = "".join(describer.ask(scene, "What does it do?", lambda: False))
    assert answered and SAID in spy.prompts[-1] and "What does it do?" in spy.prompts[-1]
    assert "Send" in spy.prompts[-1].split(SAID, 1)[1]  # the recognised text follows the context
    daemon.speaker.close()
