"""Image preprocessing shared by families, done the way the transformers image processors do it.

The models were trained on pixels made by those processors (Pillow resampling on 8-bit images, then
rescale and normalise in float), so matching them step for step keeps the ONNX model's answers the
same as the original's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from describe_screen.errors import UserError
from describe_screen.i18n import _

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
        raise UserError(_("The captured image is empty ({width} by {height} pixels).",
                          width=image.width, height=image.height),
                        _("Capture the screen or window again; if it keeps happening, check the capture settings."))
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


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The size Qwen2-VL's processors resize to: both sides multiples of `factor` (patch x merge), the
    area within [min_pixels, max_pixels], the aspect ratio kept as well as that allows. `max_pixels` is
    the speed knob: the visual tokens are the area / factor²."""
    import math

    if max(height, width) / min(height, width) > 200:
        raise UserError(_("The captured image is too narrow to describe ({width} by {height} pixels).",
                          width=width, height=height),
                        _("Capture a larger part of the screen, or the whole window."))
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def patchify(pixels: np.ndarray, patch: int, merge: int, temporal: int) -> tuple[np.ndarray, int, int]:
    """(3, H, W) -> (patches, 3·temporal·patch²) in Qwen2-VL's order: merge windows row by row, the
    merge² patches of a window together, each vector ordered (channel, time, y, x), the one frame
    repeated `temporal` times. Returns the patches and the grid's height and width in patches."""
    import numpy as np

    channels, height, width = pixels.shape
    grid_h, grid_w = height // patch, width // patch
    blocks = pixels.reshape(channels, grid_h // merge, merge, patch, grid_w // merge, merge, patch)
    blocks = blocks.transpose(1, 4, 2, 5, 0, 3, 6)[:, :, :, :, :, None]
    blocks = np.broadcast_to(blocks, (*blocks.shape[:5], temporal, patch, patch))
    return np.ascontiguousarray(blocks.reshape(grid_h * grid_w, channels * temporal * patch * patch)), grid_h, grid_w
