"""Image preprocessing shared by families, done the way the transformers image processors do it.

The models were trained on pixels made by those processors (Pillow resampling on 8-bit images, then
rescale and normalise in float), so matching them step for step keeps the ONNX model's answers the
same as the original's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from describe_screen.errors import UserError

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

# A screen capture larger than this (in pixels per side) is first shrunk by an integer factor with
# Image.reduce, which works in strips; resampling a 20000 px image with Lanczos directly is slow.
HUGE_SIDE = 8192


def to_rgb(image: Image) -> Image:
    """RGB like transformers' convert_to_rgb: transparent parts are laid over white."""
    from PIL import Image as PILImage

    if image.width < 1 or image.height < 1:
        raise UserError(f"The captured image is empty ({image.width} by {image.height} pixels).",
                        "Capture the screen or window again; if it keeps happening, check the capture settings.")
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def shrink_huge(image: Image, limit: int = HUGE_SIDE) -> Image:
    """Reduce an image whose longest side exceeds `limit` by a whole factor, keeping its shape.

    Only absurdly large captures take this path; everything a normal screen produces goes straight
    to the processor-identical resize.
    """
    longest = max(image.size)
    if longest <= limit:
        return image
    factor = -(-longest // limit)
    return image.reduce(factor)


def resize(image: Image, width: int, height: int, resample: int) -> Image:
    """Pillow resize of an 8-bit image; `resample` is a Pillow filter number (1 = Lanczos)."""
    if image.size == (width, height):
        return image
    return image.resize((width, height), resample=resample)


def normalise(image: Image, rescale: float, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """8-bit RGB image -> float32 array (3, H, W): x * rescale (in float64, as transformers does),
    then (x - mean) / std in float32."""
    import numpy as np

    pixels = (np.asarray(image, dtype=np.uint8).astype(np.float64) * rescale).astype(np.float32)
    pixels = (pixels - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def floats(values: Sequence[float]) -> tuple[float, ...]:
    """A per-channel setting (image_mean, image_std) as read from a processor config: three numbers."""
    result = tuple(float(v) for v in values)
    if len(result) not in (1, 3) or any(isinstance(v, (bool, str)) for v in values):
        raise ValueError(values)
    return result
