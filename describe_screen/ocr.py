"""Screen text recognition with rapidocr (PP-OCR detection + recognition ONNX models from its wheel).

We drive rapidocr's detector and recogniser ourselves instead of its one-shot call, so that lines come
out in reading order as soon as each small batch is recognised: the first words can be spoken while the
rest of the screen is still being read. Screens are upright, so the rotation classifier is skipped.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from describe_screen import scripts
from describe_screen.errors import UserError
from describe_screen.i18n import _
from describe_screen.layout import Box, TextLine, button_name, reading_order, split_label

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

CUDA = "CUDAExecutionProvider"
MAX_AUTO_THREADS = 4  # these models are small: more threads barely help and take CPU from speech
FIRST_BATCH = 1  # lines recognised before the first yield: one, so the first words come quickly
BATCH = 4  # later batches: larger sizes measured no faster here, and smaller ones stop sooner
DET_PIXELS = 1280 * 720  # screens with more pixels are shrunk for detection (see _detect) ...
DET_MIN_SCALE = 0.75  # ... but never below 3/4, so 12 px text keeps 9 px for the detector
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
TILE = 1280  # px: the largest detector input that still finds lone words (see _tiles)
TILE_OVERLAP = 96  # px: taller than a line of screen text
CONTRAST_WINDOW = 41  # px: wider than screen text is tall, so each window holds both ink and paper
FLAT_SPREAD = 48  # grey levels: a window spanning less than this has no text in it
DRAWN_PIXELS = 0.5  # a screen has at least half its pixels equal to their neighbour; photos have few
REC_HEIGHT = 48  # the recogniser's input height in pixels
TILT = 0.01  # a line whose top edge slopes by more than 1 in 100 (0.6 degrees) is straightened
DARK = 128  # grey level: a label whose box is darker than this on the whole sits on a dark theme
SMALL_TEXT = 32  # crops shorter than this are enlarged with a cubic filter before recognition


class TextRecognizer:
    """Reads text from screenshots; models load on first use, so creating one costs nothing."""

    def __init__(self, provider: str = "auto", threads: int = 0, min_score: float = 0.5,
                 models_dir: Path | None = None) -> None:
        self._want = provider
        self._threads = threads
        self._min_score = min_score
        self._models_dir = models_dir  # where `models install` puts recognisers for other scripts
        self._engine: Any = None
        self._characters: list[str] = []
        self._script_engines: dict[Path, Any] = {}
        self._lock = threading.Lock()

    def _load(self) -> Any:
        """Build rapidocr's detector and recogniser once, on the provider asked for (CUDA only if usable)."""
        with self._lock:
            if self._engine is None:
                self._engine = self._rapidocr({}, detector=True)
                self._characters = list(self._engine.text_rec.postprocess_op.character)
        return self._engine

    def _rapidocr(self, params: dict[str, Any], detector: bool = False) -> Any:
        import onnxruntime
        from rapidocr import RapidOCR

        use_cuda = self._want in ("auto", "cuda") and CUDA in onnxruntime.get_available_providers()
        threads = self._threads or min(MAX_AUTO_THREADS, os.cpu_count() or 1)
        if self._want == "auto":
            # "auto" tries CUDA wherever it is listed; where its libraries are missing the
            # runtime falls back to the CPU but logs red errors first. Keep those out of the log.
            onnxruntime.set_default_logger_severity(4)
        try:
            engine = RapidOCR(params={
                "Global.log_level": "critical",
                "Global.use_cls": False,
                # rapidocr's default scales the short side up to 736 px, which makes a small
                # window capture many times bigger and slower without reading it better;
                # our tiles are never larger than TILE, so this never shrinks them
                "Det.limit_type": "max",
                "Det.limit_side_len": TILE,
                # PaddleOCR normalises detector input with ImageNet statistics; rapidocr's
                # 0.5/0.5 default misses lone words (an "OK", a title) on a plain background
                "Det.mean": IMAGENET_MEAN,
                "Det.std": IMAGENET_STD,
                "EngineConfig.onnxruntime.use_cuda": use_cuda,
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "Rec.rec_batch_num": BATCH,
                **params,
            })
            if detector:
                engine._load_det_model()
            engine._load_rec_model()
        except Exception as exc:
            raise UserError(
                _("The text reader could not start ({kind}: its models did not load).", kind=type(exc).__name__),
                _("Reinstall describe-screen, or run describe-screen doctor to see what is missing."),
            ) from exc
        finally:
            onnxruntime.set_default_logger_severity(2)  # the runtime's own default: warnings
        return engine

    def _other_scripts(self, crop: np.ndarray, script: str) -> tuple[str, float]:
        """The line read by an installed recogniser for other scripts (the one for `script` first), or ("", 0)
        when none reads it."""
        from rapidocr.ch_ppocr_rec import TextRecInput

        found = scripts.installed(self._models_dir)
        order = sorted(found, key=lambda name: scripts.SCRIPT_MODELS[name].script != script)
        for name in order:
            path = found[name]
            with self._lock:
                if path not in self._script_engines:
                    self._script_engines[path] = self._rapidocr({"Rec.model_path": str(path)})
                engine = self._script_engines[path]
            result = engine.text_rec(TextRecInput(img=[crop], return_word_box=False))
            text, score = result.txts[0].strip(), float(result.scores[0])
            if text and score >= self._min_score and not scripts.unreadable(text, (0, 0, *crop.shape[1::-1])):
                return (scripts.logical_order(text) if scripts.SCRIPT_MODELS[name].rtl else text), score
        return "", 0.0

    def warm_up(self) -> None:
        """Load the models and run them once on a tiny image, so the first real request is quick; the language
        identifier too, which tells lines the recogniser cannot read right (scripts.Alphabets, scripts.carons)."""
        from PIL import Image, ImageDraw

        from describe_screen import language

        language.warm_up()
        image = Image.new("RGB", (160, 48), "white")
        ImageDraw.Draw(image).text((10, 15), "Ready", fill="black")
        self.read(image)

    def characters(self) -> list[str]:
        """Every character the bundled recogniser can output (its character list, from the model file)."""
        self._load()
        return self._characters

    def provider(self) -> str:
        """The onnxruntime provider the models really run on (CUDA can be listed yet unusable)."""
        return self._load().text_det.session.session.get_providers()[0]

    def read(self, image: Image.Image) -> list[TextLine]:
        """All text lines on the image, in reading order."""
        return list(self.iter_lines(image))

    def iter_lines(self, image: Image.Image, cancelled: Callable[[], bool] = lambda: False,
                   unread: set[str] | None = None) -> Iterator[TextLine]:
        """Lines in reading order, each batch yielded as soon as it is recognised.

        A line in a script no installed recogniser reads is left out, never spoken as look-alike letters:
        its script (a Unicode script name, "" when unknown) is added to `unread`; so is a line in a language
        whose letters the recogniser lacks (scripts.Alphabets), by its language code ("vi").

        Detection runs once on the whole image, tile by tile; recognition then follows reading order
        in small batches. `cancelled` is checked after every tile and every batch, so a stopped (or
        superseded) request stops using the CPU within one tile or batch, with the lines read so far.
        """
        import cv2
        import numpy as np
        from rapidocr.ch_ppocr_rec import TextRecInput

        from describe_screen import language, shapes

        engine = self._load()
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        photo = photographed(bgr)
        try:
            found = self._detect(engine, bgr, cancelled)
        except Exception as exc:
            raise _failed(exc) from exc
        if not found or cancelled():
            return
        frames: dict[Box, Box] = {}  # button outlines packed into one detected line: one line each
        for box, quad in list(found):
            rings = shapes.outlines_in(grey, box) if quad is None else []
            for ring in rings:
                inner = (ring[0] + 2, ring[1] + 2, ring[2] - 2, ring[3] - 2)
                frames[inner] = ring
                found.append((inner, None))
            if rings:
                found.remove((box, quad))
        # a title bar spans its window: its title is ordered by the whole bar (layout.in_order)
        bars = {} if photo else {box: bar for box, quad in found if quad is None
                                 for bar in [shapes.title_bar(grey, box)] if bar}
        found = [found[i] for i in reading_order([bars.get(box, box) for box, _ in found])]
        start = 0
        strange = False
        alphabets = scripts.Alphabets(self.characters(), language.user_language())
        while start < len(found):
            size = FIRST_BATCH if start == 0 else BATCH
            chunk = found[start:start + size]
            start += size
            crops = [_crop(bgr, box, quad) for box, quad in chunk]
            try:
                result = engine.text_rec(TextRecInput(img=crops, return_word_box=True))
            except Exception as exc:
                raise _failed(exc) from exc
            for (box, quad), crop, text, score, places in zip(chunk, crops, result.txts, result.scores,
                                                              result.word_results, strict=True):
                script = scripts.foreign_script(text)
                # a screen in a script the bundled recogniser cannot read: its doubtful lines are look-alikes too
                flagged = bool(script) or scripts.unreadable(text, box) or (strange and score < scripts.DOUBTFUL)
                strange = strange or flagged
                other, other_score = self._other_scripts(crop, script) if flagged else ("", 0)
                if other:
                    text, score = other, other_score
                elif flagged or (garbled := alphabets.garbled(text)):
                    if unread is not None:
                        unread.add(script if flagged else garbled)
                    continue
                elif quad is None:
                    text = _bitmap_letters(grey, box, text, places)
                # a lost caron (ť ď ľ Ľ read plain) is looked for in a level line's own pixels, where the bundled
                # recogniser read it
                level = quad is None and not other
                text = scripts.carons(text.strip(), partial(_caron_strokes, grey, box, places=places) if level else str)
                if text and score >= self._min_score:
                    line = TextLine(text, box, float(score))
                    if len(text) <= shapes.MAX_LABEL_CHARS:  # what is drawn around it: button or form evidence
                        # a dark theme's controls may be only a shade off the window: looked for again
                        # with a faint edge, on a drawn screen (a photo's noise is as large)
                        x0, y0, x1, y1 = box
                        faint = 0 if photo or float(np.median(grey[y0:y1, x0:x1])) >= DARK else shapes.FAINT
                        line.frame = frames.get(box) or shapes.frame(grey, box) or (
                            shapes.frame(grey, box, faint) if faint else None)
                        line.text = button_name(text) if line.frame else text
                        line.field = line.frame is None and shapes.field_below(grey, box)
                        line.entry = None if line.frame or line.field else shapes.field_beside(grey, box) or (
                            shapes.field_beside(grey, box, faint) if faint else None)
                        line.drop_down = line.entry is not None and shapes.drop_down(grey, line.entry)
                        if not (line.frame or line.field or line.entry) and len(re.sub(r"\W", "", text)) >= 2:
                            line.mark = shapes.mark_before(grey, box) or (
                                shapes.mark_before(grey, box, faint) if faint else None)
                        if not (line.frame or line.field or line.entry or line.mark):
                            line.title_bar = bars.get(box)
                    yield from split_label(line)
            if cancelled():
                return

    @staticmethod
    def _detect(engine: Any, bgr: np.ndarray, cancelled: Callable[[], bool] = lambda: False
                ) -> list[tuple[Box, np.ndarray | None]]:
        """Each text line found, tile by tile: its axis-aligned box, and its corners when it is tilted.

        Screen text is level, so most lines are read from their box; a line on a photographed or
        scanned page may slope, and is then cut out along its four corners (see _crop).

        Screens bigger than 1280 x 720 are shrunk for detection only, down to 3/4 at most: detection
        time follows the pixel count, and 12 px text still stands out at 9 px. Recognition always
        reads the full-resolution pixels. Returns early (boxes so far) once `cancelled` says so.
        """
        import cv2
        import numpy as np

        h, w = bgr.shape[:2]
        if min(h, w) < 8:
            return []
        scale = max(DET_MIN_SCALE, min(1.0, math.sqrt(DET_PIXELS / (w * h))))
        small = bgr if scale == 1.0 else cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        prepared = _for_detection(small)
        found: list[tuple[Box, np.ndarray | None, int]] = []
        sh, sw = prepared.shape[:2]
        for tile, (x, y, x1, y1) in enumerate(_tiles(sw, sh)):
            if cancelled():  # before every tile, the first too: a request replaced while its
                break  # picture was being prepared never starts detecting (iter_lines checks after the last)
            result = engine.text_det(np.ascontiguousarray(prepared[y:y1, x:x1]))
            offset = np.array((x, y))
            for poly in [] if result.boxes is None else result.boxes:
                (bx0, by0), (bx1, by1) = poly.min(axis=0) + offset, poly.max(axis=0) + offset
                box = (max(0, int(bx0 / scale)), max(0, int(by0 / scale)),
                       min(w, math.ceil(bx1 / scale)), min(h, math.ceil(by1 / scale)))
                if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                    quad = (poly + offset) / scale
                    found.append((box, quad if _tilted(quad) else None, tile))
        return _merge_across_tiles(found)


def _tiles(w: int, h: int) -> list[Box]:
    """Overlapping tiles no larger than TILE, covering a w x h image.

    The detector loses short, isolated words on inputs much wider than 1280 px (an "OK" alone on a
    1920 x 1080 screen is not found, the same pixels cut to 1280 x 720 are), so big screens are
    detected in tiles at their own scale. The overlap is taller than a line, so every line lies
    whole inside some tile.
    """
    def spans(size: int) -> list[tuple[int, int]]:
        n = max(1, math.ceil((size - TILE_OVERLAP) / (TILE - TILE_OVERLAP)))
        step = (size - TILE_OVERLAP) / n
        return [(int(i * step), min(size, int(i * step + step + TILE_OVERLAP))) for i in range(n)]

    return [(x0, y0, x1, y1) for y0, y1 in spans(h) for x0, x1 in spans(w)]


def _tilted(quad: np.ndarray) -> bool:
    """The line's top edge rises or falls by more than a few pixels over its length (not screen text)."""
    (x0, y0), (x1, y1) = quad[0], quad[1]
    return abs(y1 - y0) > max(2.0, TILT * abs(x1 - x0))


def _merge_across_tiles(found: list[tuple[Box, np.ndarray | None, int]]) -> list[tuple[Box, np.ndarray | None]]:
    """One box per line: pieces of a line cut by a tile edge, or seen twice in an overlap, are joined.

    Only boxes from different tiles are joined, and only when they share a row and overlap, so
    neighbouring lines and separate words on one row stay apart. A joined line loses its corners
    (tilted lines come from photos, which fit in one tile).
    """
    quads = {box: quad for box, quad, _ in found}
    merged: list[tuple[Box, set[int]]] = [(box, {tile}) for box, _, tile in found]
    joined = True
    while joined:
        joined = False
        for i, j in itertools.combinations(range(len(merged)), 2):
            (a, ta), (b, tb) = merged[i], merged[j]
            shared_row = min(a[3], b[3]) - max(a[1], b[1]) >= 0.5 * min(a[3] - a[1], b[3] - b[1])
            if not ta & tb and shared_row and min(a[2], b[2]) >= max(a[0], b[0]):
                box = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                merged[i] = (box, ta | tb)
                del merged[j]
                joined = True
                break
    return [(box, quads.get(box) if len(tiles) == 1 else None) for box, tiles in merged]


def is_photo(image: Image.Image) -> bool:
    """The picture is a photo or scan of something (see photographed)."""
    import numpy as np

    return photographed(np.asarray(image.convert("RGB")))


def photographed(bgr: np.ndarray) -> bool:
    """The image is a photo or scan (camera noise everywhere), not pixels drawn by a toolkit.

    A rendered screen is mostly flat colour, so most pixels equal their right-hand neighbour; a
    camera's noise, blur and lighting make that rare. Sampled on every 4th row: quick on a 4K screen.
    """
    import numpy as np

    rows = bgr[::4].astype(np.int16)
    same = np.all(np.abs(rows[:, 1:] - rows[:, :-1]) <= 1, axis=2)
    return float(same.mean()) < DRAWN_PIXELS if same.size else False


def _for_detection(bgr: np.ndarray) -> np.ndarray:
    """For a screen, a grey copy with local contrast stretched to full black and white (detector only).

    The detector misses short words on a plain background unless ink and paper are near pure black
    and white: "OK" in light grey on a dark grey theme is not found, the same word stretched is. Each
    pixel is stretched between the darkest and lightest pixel around it; flat areas (no text nearby)
    become pure black or white, whichever they are closer to. A photographed or scanned page is left
    as it is: stretching its noise and soft edges hides whole lines from the detector.
    """
    import cv2
    import numpy as np

    if photographed(bgr):
        return bgr
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (CONTRAST_WINDOW, CONTRAST_WINDOW))
    low, high = cv2.erode(grey, kernel), cv2.dilate(grey, kernel)
    spread = high.astype(np.float32) - low
    stretched = (grey - low) * (255.0 / np.maximum(spread, 1.0))
    flat = np.where(grey < 128, 0.0, 255.0)
    out = np.where(spread < FLAT_SPREAD, flat, stretched).astype(np.uint8)
    return cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)


def _bitmap_letters(grey: np.ndarray, box: Box, text: str, places: Any) -> str:
    """The recognised text of a line in a small bitmap font with its m and w put back (see glyphs)."""
    from describe_screen import glyphs

    x0, y0, x1, y1 = box
    crop = grey[y0:y1, x0:x1]
    if y1 - y0 >= SMALL_TEXT or not places.line_txt_len or not glyphs.aliased(crop):
        return text
    return glyphs.doubled(crop, text, _columns(box, places))


def _caron_strokes(grey: np.ndarray, box: Box, text: str, places: Any) -> str:
    """The recognised text of a Czech or Slovak line with each ť ď ľ Ľ read as a plain letter put back (see glyphs)."""
    from describe_screen import glyphs

    x0, y0, x1, y1 = box
    return glyphs.carons(grey[y0:y1, x0:x1], text, _columns(box, places)) if places.line_txt_len else text


def _columns(box: Box, places: Any) -> list[float]:
    """The x in the box of each non-space character read. `places` is rapidocr's record of where each was read,
    in columns of its input; the crop was scaled whole, so a column's share of the input width is its share of
    the box width."""
    step = (box[2] - box[0]) / places.line_txt_len
    return [col * step for cols in places.word_cols for col in cols]


def _failed(exc: Exception) -> UserError:
    return UserError(_("The text reader failed while reading the screen ({kind}).", kind=type(exc).__name__),
                     _("Try again. If it keeps failing, run describe-screen doctor."))


def _crop(bgr: np.ndarray, box: Box, quad: np.ndarray | None = None) -> np.ndarray:
    """The line's pixels, level (the detector already adds a margin); small text enlarged with a cubic filter.

    A tilted line is straightened along its four corners, as rapidocr itself does. The recogniser
    scales every crop to 48 px high with a linear filter, which blurs 10-16 px screen text into
    look-alike letters (m and rn, w and u); a cubic enlargement first keeps strokes apart.
    """
    import cv2
    import numpy as np
    from rapidocr.utils.process_img import get_rotate_crop_image

    if quad is None:
        x0, y0, x1, y1 = box
        crop = bgr[y0:y1, x0:x1]
    else:
        crop = get_rotate_crop_image(bgr, np.asarray(quad, dtype=np.float32))
    if crop.shape[0] < SMALL_TEXT:
        scale = REC_HEIGHT / max(crop.shape[0], 1)
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return crop
