"""Test screenshots drawn with Pillow, so every test knows exactly which words are on the screen."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype")
FONTS = {
    "dejavu-sans": "dejavu/DejaVuSans.ttf",
    "dejavu-serif": "dejavu/DejaVuSerif.ttf",
    "dejavu-mono": "dejavu/DejaVuSansMono.ttf",
    "liberation-sans": "liberation/LiberationSans-Regular.ttf",
    "liberation-serif": "liberation/LiberationSerif-Regular.ttf",
    "liberation-mono": "liberation/LiberationMono-Regular.ttf",
}
THEMES = {  # background, text, button face, button border
    "light": ((255, 255, 255), (20, 20, 20), (225, 225, 225), (120, 120, 120)),
    "dark": ((30, 30, 34), (235, 235, 235), (60, 60, 66), (150, 150, 150)),
}

SENTENCES = [
    "The quick brown fox jumps over the lazy dog",
    "Your document has unsaved changes in three files",
    "Network connection was lost while uploading photos",
    "Meeting with Maria moved to Thursday afternoon",
    "Battery level is low please connect the charger",
    "Download complete open the folder to view it",
    "Welcome back you have seven new messages waiting",
    "Remember to water the plants every Wednesday morning",
]


@dataclass
class Screen:
    """A rendered screenshot plus what a perfect reader would find on it."""

    image: Image.Image
    title: str = ""
    lines: list[str] = field(default_factory=list)  # every text line, reading order
    buttons: list[str] = field(default_factory=list)

    def words(self) -> list[str]:
        return [w for line in self.lines for w in line.split()]


def font(name: str = "dejavu-sans", size: int = 16, bold: bool = False) -> ImageFont.FreeTypeFont:
    path = FONT_DIR / FONTS[name]
    if bold and "mono" not in name:
        path = path.with_name(path.name.replace("-Regular", "").replace(".ttf", "") + "-Bold.ttf")
    return ImageFont.truetype(str(path), size)


def dialog(title: str, body: list[str], buttons: list[str], *, font_name: str = "dejavu-sans",
           size: int = 16, theme: str = "light", canvas: tuple[int, int] = (1280, 720)) -> Screen:
    """A centred dialog: bold title, body lines, a row of boxed buttons at the bottom right."""
    bg, fg, face, border = THEMES[theme]
    desk = (60, 90, 130) if theme == "light" else (10, 10, 12)
    image = Image.new("RGB", canvas, desk)
    draw = ImageDraw.Draw(image)
    body_font, title_font = font(font_name, size), font(font_name, size + 4, bold=True)
    pad = size * 2
    width = max([int(draw.textlength(t, font=body_font)) for t in body] + [420]) + 2 * pad
    height = pad * 3 + (size + 8) * (len(body) + 1) + size * 3
    x0, y0 = (canvas[0] - width) // 2, (canvas[1] - height) // 2
    draw.rectangle((x0, y0, x0 + width, y0 + height), fill=bg, outline=border)
    draw.text((x0 + pad, y0 + pad // 2), title, font=title_font, fill=fg)
    draw.line((x0, y0 + pad + size + 4, x0 + width, y0 + pad + size + 4), fill=border)
    y = y0 + pad * 2 + size
    for line in body:
        draw.text((x0 + pad, y), line, font=body_font, fill=fg)
        y += size + 8
    bx = x0 + width - pad
    for label in reversed(buttons):
        w = int(draw.textlength(label, font=body_font)) + 2 * size
        by = y0 + height - pad - size
        draw.rounded_rectangle((bx - w, by - size // 2, bx, by + size + size // 2), radius=4, fill=face,
                               outline=border)
        draw.text((bx - w + size, by), label, font=body_font, fill=fg)
        bx -= w + size
    return Screen(image, title, [title, *body, *buttons], list(buttons))


def page(lines: list[str], *, font_name: str = "dejavu-sans", size: int = 16, theme: str = "light",
         canvas: tuple[int, int] = (1280, 720), x: int = 40, y: int = 30, aliased: bool = False) -> Screen:
    """Plain left-aligned lines down the screen, like a document or terminal.

    `aliased` draws without anti-aliasing, like the bitmap-style fonts of old toolkits and terminals.
    """
    bg, fg, _, _ = THEMES[theme]
    image = Image.new("RGB", canvas, bg)
    draw = ImageDraw.Draw(image)
    if aliased:
        draw.fontmode = "1"
    f = font(font_name, size)
    for line in lines:
        draw.text((x, y), line, font=f, fill=fg)
        y += int(size * 1.8)
    return Screen(image, "", list(lines))


def columns(heading: str, left: list[str], right: list[str], *, size: int = 18,
            canvas: tuple[int, int] = (1280, 720)) -> Screen:
    """A heading over two newspaper columns; reading order is all of the left, then all of the right."""
    bg, fg, _, _ = THEMES["light"]
    image = Image.new("RGB", canvas, bg)
    draw = ImageDraw.Draw(image)
    f = font("dejavu-serif", size)
    draw.text((60, 30), heading, font=font("dejavu-sans", size + 8, bold=True), fill=fg)
    for x, col in ((60, left), (canvas[0] // 2 + 40, right)):
        y = 110
        for line in col:
            draw.text((x, y), line, font=f, fill=fg)
            y += int(size * 1.7)
    return Screen(image, heading, [heading, *left, *right])


def busy(canvas: tuple[int, int], size: int = 16) -> Screen:
    """A screen filled with columns of text lines, for timing a whole-screen read."""
    bg, fg, _, _ = THEMES["light"]
    image = Image.new("RGB", canvas, bg)
    draw = ImageDraw.Draw(image)
    f = font("dejavu-sans", size)
    col_w = max(int(draw.textlength(t, font=f)) for t in SENTENCES) + 3 * size
    lines: list[str] = []
    for c in range(canvas[0] // col_w):
        y, i = 20, c
        while y < canvas[1] - 2 * size:
            text = SENTENCES[i % len(SENTENCES)]
            draw.text((20 + c * col_w, y), text, font=f, fill=fg)
            lines.append(text)
            y, i = y + 2 * size, i + 1
    return Screen(image, "", lines)
