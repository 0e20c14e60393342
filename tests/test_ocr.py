"""OCR quality on rendered screens and on a real window, reading order, streaming and cancelling."""

from __future__ import annotations

import re

import pytest
from PIL import Image
from screens import FONTS, SENTENCES, busy, dialog, page

from describe_screen.errors import UserError
from describe_screen.layout import TextLine
from describe_screen.ocr import TextRecognizer, _tiles
from describe_screen.reader import brief


@pytest.fixture(scope="module")
def ocr() -> TextRecognizer:
    recognizer = TextRecognizer(provider="cpu")
    recognizer.warm_up()
    return recognizer


def _plain(word: str) -> str:
    return re.sub(r"[^a-z0-9']", "", word.lower())


def _recall(expected: list[str], lines: list[TextLine]) -> tuple[int, list[str]]:
    """How many expected words were read (each read word used once), and the missed ones."""
    pool = [_plain(w) for line in lines for w in line.text.split()]
    missed = []
    for word in expected:
        if _plain(word) in pool:
            pool.remove(_plain(word))
        else:
            missed.append(word)
    return len(expected) - len(missed), missed


def test_word_recall_across_fonts_sizes_and_themes(ocr: TextRecognizer) -> None:
    small, full_hd = (1000, 200), (1920, 1080)
    cases = [(f, s, t, False, small) for f in FONTS for s in (12, 16, 20, 28) for t in ("light", "dark")]
    cases += [(f, s, "light", True, small) for f in FONTS for s in (12, 16)]  # bitmap-like: no anti-aliasing
    cases += [(f, 12, t, False, full_hd) for f in FONTS for t in ("light", "dark")]  # shrunk for detection
    hits = total = 0
    missed: list[tuple] = []
    for i, (font_name, size, theme, aliased, canvas) in enumerate(cases):
        text = [SENTENCES[(i + k) % len(SENTENCES)] for k in range(3)]
        screen = page(text, font_name=font_name, size=size, theme=theme, aliased=aliased, canvas=canvas)
        found, lost = _recall(screen.words(), ocr.read(screen.image))
        hits, total = hits + found, total + len(screen.words())
        missed += [(font_name, size, theme, aliased, canvas, w) for w in lost]
    recall = hits / total
    print(f"\nword recall {recall:.3f} ({hits}/{total} words, {len(cases)} screens); missed: {missed}")
    assert total > 1000
    assert recall >= 0.95


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_lone_short_words_on_a_plain_screen_are_found(ocr: TextRecognizer, theme: str) -> None:
    # rapidocr's default detector settings find almost none of these; ours must find all of them
    for word in ("OK", "Settings", "Hello world", "No", "Open file"):
        for size in (12, 14, 20):
            screen = page([word], size=size, theme=theme, x=300, y=300)
            assert [line.text for line in ocr.read(screen.image)] == [word], (word, size)


def test_big_screens_are_detected_in_tiles_without_splitting_lines(ocr: TextRecognizer) -> None:
    tiles = _tiles(1920, 1080)
    assert tiles == [(0, 0, 1008, 1080), (912, 0, 1920, 1080)]
    assert len(_tiles(3840, 2160)) == 4 * 2 and _tiles(1280, 720) == [(0, 0, 1280, 720)]
    # these lines cross the seam between the two tiles of a 1920 x 1080 screen
    screen = page(SENTENCES[:2], size=20, canvas=(1920, 1080), x=700, y=480)
    assert [line.text for line in ocr.read(screen.image)] == SENTENCES[:2]
    lone = page(["OK"], size=12, canvas=(2560, 1440), x=1270, y=700)
    assert [line.text for line in ocr.read(lone.image)] == ["OK"]


def test_lines_come_in_reading_order_with_boxes(ocr: TextRecognizer) -> None:
    screen = dialog("Save changes", ["Your document has unsaved changes."], ["Save", "Don't Save", "Cancel"])
    lines = ocr.read(screen.image)
    assert [line.text for line in lines] == screen.lines
    title, body, save, dont, cancel = lines
    assert title.box[3] <= body.box[1] < save.box[1]
    assert save.box[2] < dont.box[0] < dont.box[2] < cancel.box[0]
    assert all(0.5 <= line.score <= 1.0 for line in lines)
    assert 16 <= body.height <= 40


def test_iter_lines_yields_first_lines_before_reading_the_rest(ocr: TextRecognizer) -> None:
    screen = page(SENTENCES, size=16)
    stream = ocr.iter_lines(screen.image)
    first = next(stream)
    assert first.text == SENTENCES[0]
    stream.close()
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 2  # asked before the one detector tile, after detection, then: stop after the first batch

    lines = list(ocr.iter_lines(screen.image, cancelled=cancelled))
    assert [line.text for line in lines] == SENTENCES[:1]


def test_a_cancelled_read_of_a_4k_screen_stops_within_one_tile(ocr: TextRecognizer,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    engine = ocr._load()
    detected, recognised = [], []
    detect, recognise = engine.text_det, engine.text_rec
    monkeypatch.setattr(engine, "text_det", lambda img: detected.append(1) or detect(img))
    monkeypatch.setattr(engine, "text_rec", lambda crops: recognised.append(1) or recognise(crops))
    screen = busy((3840, 2160))
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    start = time.perf_counter()
    lines = list(ocr.iter_lines(screen.image, stop.is_set))
    spent = time.perf_counter() - start
    # detection of the 6 tiles stops at the tile running when stop came (none, if it came while the
    # picture was being prepared); no line is recognised
    assert lines == [] and recognised == []
    assert len(detected) <= 2, detected
    assert spent < 0.3 + 10.0  # one tile, with a wide margin for a loaded machine

    # stopped while recognising: the lines read so far come back, in reading order, and no more batches
    detected.clear()
    lines = list(ocr.iter_lines(screen.image, lambda: len(recognised) >= 2))
    assert len(detected) == len(_tiles(2880, 1620)) and len(recognised) == 2  # detected at 3/4 scale
    assert 1 <= len(lines) <= 5 and [line.text for line in lines] == screen.lines[:len(lines)]


def test_blank_and_tiny_images_have_no_text(ocr: TextRecognizer) -> None:
    assert ocr.read(Image.new("RGB", (1280, 720), "black")) == []
    assert ocr.read(Image.new("RGB", (1, 1), "white")) == []
    assert ocr.read(Image.new("L", (300, 5), 255)) == []


def test_a_runtime_failure_is_a_plain_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    recognizer = TextRecognizer(provider="cpu")
    engine = recognizer._load()

    def broken(*args: object) -> None:
        raise RuntimeError("onnxruntime: out of memory")

    monkeypatch.setattr(engine, "text_rec", broken)
    with pytest.raises(UserError, match="The text reader failed while reading the screen") as caught:
        recognizer.read(page(["Hello world"]).image)
    assert "doctor" in caught.value.fix


def test_provider_is_the_one_really_used() -> None:
    assert TextRecognizer(provider="cpu").provider() == "CPUExecutionProvider"
    # CUDA is listed by onnxruntime-gpu here but cannot run: "auto" must report the CPU it fell back to
    assert TextRecognizer(provider="auto").provider() in ("CPUExecutionProvider", "CUDAExecutionProvider")


def test_threads_setting_reaches_the_runtime() -> None:
    engine = TextRecognizer(provider="cpu", threads=1)._load()
    assert engine.text_det.session.session.get_session_options().intra_op_num_threads == 1
    assert engine.text_rec.session.session.get_session_options().intra_op_num_threads == 1


def test_reads_a_real_window_on_the_virtual_display(ocr: TextRecognizer, window, xvfb: str) -> None:
    import mss

    window("Printer", "The printer is out of paper\nAdd paper and press Continue", font_size=16,
           buttons=("Continue", "Cancel"))
    with mss.MSS(display=xvfb) as grabber:
        shot = grabber.grab(grabber.monitors[1])
        image = Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")
    lines = ocr.read(image)
    assert [line.text for line in lines] == ["The printer is out of paper", "Add paper and press Continue",
                                             "Continue", "Cancel"]
    assert brief(lines, "Printer", image.size) == (
        "A dialog titled Printer, with buttons Continue and Cancel. "
        "It says: The printer is out of paper Add paper and press Continue.")
