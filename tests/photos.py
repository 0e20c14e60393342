"""Photographed and scanned pages made from rendered text: tilt, perspective, blur, noise, uneven light.

Each page is drawn sharp and upright first, so the expected words are exact; the camera's faults are
then added with OpenCV, as a phone photo or a cheap scanner would add them.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw
from screens import Screen, font

LETTER = [
    "Northern Power Company",
    "Dear customer,",
    "Your meter will be replaced on Tuesday 2 May",
    "between 8 am and noon. Please make sure that",
    "someone is at home to let our engineer in.",
    "If this date does not suit you, call us on",
    "0800 123 4567 to choose another day.",
    "The work takes about thirty minutes and your",
    "power will be off while the meter is changed.",
    "Yours sincerely, Customer Services",
]


@dataclass
class Camera:
    """What the photo does to the page."""

    tilt: float = 0.0  # degrees, counter-clockwise
    blur: float = 0.0  # Gaussian sigma in pixels
    noise: float = 0.0  # grey levels of Gaussian noise
    light: float = 0.0  # 0..1: how much darker the far corner is than the near one
    perspective: float = 0.0  # fraction of the width the top edge is pulled in
    faint: float = 0.0  # 0..1: how much the ink is washed towards the paper colour
    seed: int = 0


def photo(lines: list[str] = LETTER, camera: Camera | None = None, *, size: int = 22,
          font_name: str = "liberation-serif", canvas: tuple[int, int] = (1280, 720)) -> Screen:
    """A page of `lines` on paper, photographed through `camera` (default: a straight, sharp one)."""
    import cv2
    import numpy as np

    camera = camera or Camera()
    rng = np.random.default_rng(camera.seed)
    paper = (236, 232, 222)
    image = Image.new("RGB", canvas, paper)
    draw = ImageDraw.Draw(image)
    y = 60
    for i, line in enumerate(lines):
        f = font(font_name, size + (6 if i == 0 else 0), bold=i == 0)
        draw.text((120, y), line, font=f, fill=(30, 30, 40))
        y += int(size * (2.2 if i == 0 else 1.6))
    page = np.asarray(image).astype(np.float32)
    if camera.faint:
        page = page + (np.array(paper, np.float32) - page) * camera.faint
    # paper texture: low-frequency blotches
    texture = cv2.resize(rng.normal(0, 6, (canvas[1] // 40, canvas[0] // 40)).astype(np.float32), canvas,
                         interpolation=cv2.INTER_CUBIC)
    page += texture[..., None]
    h, w = canvas[1], canvas[0]
    pull = camera.perspective * w
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[pull, 0], [w - pull, 0], [w, h], [0, h]])
    matrix = cv2.getPerspectiveTransform(src, dst)
    rotate = cv2.getRotationMatrix2D((w / 2, h / 2), camera.tilt, 1.0)
    matrix = np.vstack([rotate, [0, 0, 1]]) @ matrix
    page = cv2.warpPerspective(page, matrix, canvas, flags=cv2.INTER_LINEAR, borderValue=(70, 60, 50))
    if camera.light:
        ramp = np.linspace(1.0, 1.0 - camera.light, w, dtype=np.float32)[None, :]
        ramp = ramp * np.linspace(1.0, 1.0 - camera.light / 2, h, dtype=np.float32)[:, None]
        page *= ramp[..., None]
    if camera.blur:
        page = cv2.GaussianBlur(page, (0, 0), camera.blur)
    if camera.noise:
        page += rng.normal(0, camera.noise, page.shape).astype(np.float32)
    out = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))
    return Screen(out, "", list(lines))


PHOTOS = {  # name: camera
    "scan-tilt-1": Camera(tilt=1.0, blur=0.6, noise=4),
    "scan-tilt-minus-3": Camera(tilt=-3.0, blur=0.8, noise=5, seed=1),
    "photo-tilt-2.5": Camera(tilt=2.5, blur=1.2, noise=6, light=0.35, seed=2),
    "photo-tilt-5": Camera(tilt=5.0, blur=1.0, noise=5, light=0.25, seed=3),
    "photo-perspective": Camera(tilt=-1.5, perspective=0.04, blur=1.0, noise=5, light=0.3, seed=4),
    "faint-print": Camera(tilt=0.5, faint=0.7, blur=0.8, noise=3, seed=5),
}
HARD_PHOTOS = {  # beyond what either reader gets fully: ours must still read at least what rapidocr reads
    "faint-dim-photo": Camera(tilt=-2.0, faint=0.8, blur=1.5, noise=6, light=0.45, seed=6),
    "soft-focus": Camera(tilt=1.5, blur=2.2, noise=4, light=0.2, seed=7),
}
