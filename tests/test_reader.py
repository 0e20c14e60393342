"""Layout: reading order across columns, blocks, buttons, the brief summary and the full reading."""

from __future__ import annotations

import pytest
from screens import SENTENCES, columns, dialog

from describe_screen.layout import TextLine, blocks, buttons, heading, reading_order
from describe_screen.ocr import TextRecognizer
from describe_screen.reader import brief, full, narrate, where


@pytest.fixture(scope="module")
def ocr() -> TextRecognizer:
    return TextRecognizer(provider="cpu")


def line(text: str, x: int, y: int, h: int = 20) -> TextLine:
    return TextLine(text, (x, y, x + 10 * len(text), y + h), 0.99)


def test_reading_order_takes_a_column_before_the_next() -> None:
    boxes = [(700, 100, 1100, 120), (60, 100, 500, 120), (60, 130, 500, 150), (700, 130, 1100, 150),
             (60, 30, 400, 60)]
    assert reading_order(boxes) == [4, 1, 2, 0, 3]


def test_reading_order_keeps_a_row_of_words_left_to_right() -> None:
    boxes = [(300, 400, 360, 420), (100, 400, 160, 420), (200, 402, 260, 421), (100, 300, 500, 320)]
    assert reading_order(boxes) == [3, 1, 2, 0]


def test_blocks_group_paragraph_lines_and_split_at_gaps() -> None:
    lines = [line("First paragraph line one", 50, 100), line("first paragraph line two", 50, 124),
             line("Second paragraph", 50, 200), line("Save", 50, 300), line("Cancel", 150, 300)]
    assert [b.text for b in blocks(lines)] == [
        "First paragraph line one first paragraph line two", "Second paragraph", "Save", "Cancel"]
    assert blocks(lines)[0].box == (50, 100, 290, 144)


def test_buttons_are_labels_with_a_shape_drawn_around_them() -> None:
    lines = [line("Delete file", 50, 50, 26), line("This cannot be undone. Are you sure?", 50, 100),
             line("Delete", 200, 200), line("Keep", 300, 200), line("Cancel", 400, 200)]
    lines[2].frame, lines[3].frame = (190, 192, 270, 228), (290, 192, 350, 228)
    assert [b.text for b in buttons(lines)] == ["Delete", "Keep"]  # Cancel has no shape: no evidence
    assert heading(lines).text == "Delete file"
    assert buttons([line("Press the Start key to continue", 50, 300)]) == []
    # equal shapes stacked on each other are cells of a grid, not buttons
    cells = [line("Oct 5", 50, 300), line("Oct 9", 50, 330)]
    cells[0].frame, cells[1].frame = (40, 296, 120, 325), (40, 326, 120, 355)
    assert buttons(cells) == []


def test_where_names_the_screen_region() -> None:
    assert where((1100, 650, 1200, 700), (1280, 720)) == "at the bottom right"
    assert where((600, 340, 700, 380), (1280, 720)) == "in the middle"
    assert where((10, 10, 100, 30), (1280, 720)) == "at the top left"


def test_brief_names_title_and_buttons_of_a_rendered_dialog(ocr: TextRecognizer) -> None:
    screen = dialog("Save changes", ["Your document has unsaved changes.", "Save them before closing?"],
                    ["Save", "Don't Save", "Cancel"])
    said = brief(ocr.read(screen.image), "", screen.image.size)
    assert said.startswith("A dialog titled Save changes, with buttons Save, Don't Save and Cancel.")
    assert "Your document has unsaved changes." in said
    # the window title from the capture wins over the heading found in the text
    assert brief(ocr.read(screen.image), "Text Editor", screen.image.size).startswith(
        "A dialog titled Text Editor,")


def test_brief_without_text_or_buttons() -> None:
    assert brief([], "", (1280, 720)) == "No text found on the screen."
    lines = [line("Hello there", 50, 50), line("General Kenobi", 50, 74)]
    assert brief(lines, "Terminal", (1280, 720)) == (
        "A screen titled Terminal, with 2 lines of text. It says: Hello there General Kenobi.")


def test_full_keeps_reading_order_across_two_columns(ocr: TextRecognizer) -> None:
    screen = columns("Daily News", SENTENCES[:3], SENTENCES[3:6])
    spoken = list(full(ocr.read(screen.image)))
    assert spoken[0] == "Daily News."
    assert spoken[1] == " ".join(SENTENCES[:3]) + "."
    assert spoken[2] == " ".join(SENTENCES[3:6]) + "."


def test_narrate_says_the_certain_part_before_all_text_is_read() -> None:
    lines = [line("Delete file", 50, 50, 26), line("This cannot be undone. Are you sure?", 50, 100),
             line("Delete", 200, 200), line("Keep", 300, 200)]
    lines[2].frame, lines[3].frame = (190, 192, 270, 228), (290, 192, 350, 228)
    read: list[str] = []

    def recognised():
        for ln in lines:
            read.append(ln.text)
            yield ln

    pieces = narrate(recognised(), "Files", (1280, 720))
    assert next(pieces) == "Files." and read == []  # the window title: before any text is read
    assert list(pieces) == ["A dialog, with buttons Delete and Keep. It says: This cannot be undone. Are you sure?"]
    pieces = narrate(recognised(), "", (1280, 720))
    assert next(pieces) == "Delete file." and read[-1] == "Delete file"  # the top line, once it is read
    assert next(pieces).startswith("A dialog, with buttons Delete and Keep. It says: This cannot be undone.")
    photo = narrate(iter([]), "", (1280, 720), photo=True)
    assert list(photo) == ["A photo of a page.", "No text found on the screen."]
