"""The blank-screen check: uniform captures are blank and named by colour; any text is content."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw
from screens import font

from describe_screen.blank import colour_name, describe_blank


@pytest.mark.parametrize(("fill", "word"), [
    ((0, 0, 0), "black"), ((255, 255, 255), "white"), ((128, 128, 128), "grey"), ((40, 40, 40), "dark grey"),
    ((210, 210, 210), "light grey"), ((0, 0, 255), "blue"), ((0, 0, 128), "dark blue"), ((220, 0, 0), "red"),
    ((0, 160, 0), "green"), ((255, 165, 0), "orange"), ((255, 255, 0), "yellow"), ((255, 192, 203), "pink"),
    ((139, 69, 19), "brown"), ((173, 216, 230), "light blue"), ((128, 0, 160), "purple"),
])
def test_uniform_screens_are_blank_with_their_colour(fill: tuple[int, int, int], word: str) -> None:
    assert describe_blank(Image.new("RGB", (1280, 720), fill)) == f"The screen is blank: solid {word}."


def test_a_one_pixel_capture_and_other_modes_are_blank() -> None:
    assert describe_blank(Image.new("RGB", (1, 1), "black")) == "The screen is blank: solid black."
    assert describe_blank(Image.new("L", (64, 48), 255)) == "The screen is blank: solid white."
    assert describe_blank(Image.new("RGBA", (64, 48), (0, 0, 0, 0))) == "The screen is blank: solid black."


def test_a_few_stray_pixels_do_not_count_as_content() -> None:
    image = Image.new("RGB", (1920, 1080), "black")
    for x in range(5):
        image.putpixel((100 + x * 37, 200), (255, 255, 255))
    assert describe_blank(image) == "The screen is blank: solid black."


def test_a_dark_screen_with_one_small_line_of_text_is_not_blank() -> None:
    image = Image.new("RGB", (1920, 1080), (12, 12, 12))
    ImageDraw.Draw(image).text((1203, 1001), "Locked", font=font(size=12), fill=(140, 140, 140))
    assert describe_blank(image) is None
    # one tiny word that falls between the quick look's samples is still found at full resolution
    image = Image.new("RGB", (1920, 1080), (12, 12, 12))
    image.paste((200, 200, 200), (401, 401, 403, 407))
    assert describe_blank(image) is None


def test_a_noisy_photo_like_screen_is_not_blank() -> None:
    assert describe_blank(Image.effect_noise((1920, 1080), 64).convert("RGB")) is None


def test_colour_names_are_plain_words() -> None:
    assert colour_name((5, 5, 5)) == "black"
    assert colour_name((0, 128, 128)) == "dark cyan"
