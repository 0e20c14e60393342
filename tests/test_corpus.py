"""Real-toolkit screens and photographed pages: words, buttons, tables and kinds, against rapidocr itself.

The corpus (tests/corpus.py) is rendered once per session: Chromium pages, zenity, xmessage, xterm
and Tk windows on the virtual display, and photographed pages. Figures are printed per kind.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np
import pytest
from corpus import Case, build, screenshot_of
from photos import HARD_PHOTOS

from describe_screen import layout, reader
from describe_screen.layout import TextLine
from describe_screen.ocr import TextRecognizer, photographed


@pytest.fixture(scope="session")
def cases(xvfb: str, tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    return build(xvfb, tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def read(cases: list[Case]) -> dict[str, tuple[list[TextLine], list[str]]]:
    """Each case's lines as we read them, and rapidocr's default reading of the same image."""
    from rapidocr import RapidOCR

    ours = TextRecognizer(provider="cpu")
    peer = RapidOCR(params={"Global.log_level": "critical"})
    out = {}
    for case in cases:
        bgr = np.ascontiguousarray(np.asarray(case.image)[:, :, ::-1])
        out[case.name] = (ours.read(case.image), list(peer(bgr).txts or []))
    return out


def _plain(word: str) -> str:
    return re.sub(r"[^a-z0-9']", "", word.lower())


def recall(expected: list[str], texts: list[str]) -> tuple[int, int]:
    """(words read, words expected), each read word used once; punctuation-only words do not count."""
    pool = [_plain(w) for t in texts for w in t.split()]
    want = [_plain(w) for w in expected if _plain(w)]
    hits = 0
    for word in want:
        if word in pool:
            pool.remove(word)
            hits += 1
    return hits, len(want)


def test_every_kind_reads_its_words_and_never_less_than_rapidocr(cases: list[Case], read: dict) -> None:
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    worse = []
    for case in cases:
        lines, peer = read[case.name]
        hits, total = recall(case.words, [ln.text for ln in lines])
        peer_hits, _ = recall(case.words, peer)
        print(f"\n{case.name:18} {case.kind:16} ours {hits / total:.3f}  rapidocr {peer_hits / total:.3f}", end="")
        if hits < peer_hits:
            worse.append((case.name, hits, peer_hits))
        if case.name not in HARD_PHOTOS:
            per_kind[case.kind][0] += hits
            per_kind[case.kind][1] += total
    print()
    for kind, (hits, total, _) in per_kind.items():
        print(f"{kind:16} word recall {hits / total:.3f} ({hits}/{total})")
    assert not worse, f"read fewer words than rapidocr's defaults: {worse}"
    assert all(hits / total >= 0.98 for hits, total, _ in per_kind.values()), dict(per_kind)


def test_buttons_only_with_evidence(cases: list[Case], read: dict) -> None:
    said = expected = right = 0
    wrong = []
    for case in cases:
        found = [b.text for b in layout.buttons(read[case.name][0])]
        said, expected = said + len(found), expected + len(case.buttons)
        right += sum(label in case.buttons for label in found)
        wrong += [(case.name, label) for label in found if label not in case.buttons]
        wrong += [(case.name, label) for label in found if label in case.not_buttons]
    print(f"\nbutton precision {right / max(said, 1):.3f} recall {right / expected:.3f} ({right}/{expected})")
    assert wrong == []
    assert right / expected >= 0.9


def test_each_screen_is_named_for_its_kind(cases: list[Case], read: dict) -> None:
    named = {case.name: reader.kind(read[case.name][0], case.image.size,
                                    photographed(np.asarray(case.image)))
             for case in cases}
    assert named == {case.name: case.kind for case in cases}


def test_tables_are_read_with_their_headers_row_by_row(cases: list[Case], read: dict) -> None:
    for case in cases:
        if not case.table:
            continue
        lines = read[case.name][0]
        spoken = list(reader.full(lines))
        assert "A table with 3 columns and 4 rows: Date, Description, Amount." in spoken, spoken
        assert "Row 2: Date Oct 5, Description Salary, Amount 2,310.00." in spoken
        assert "Row 3: Date Oct 9, Description Electricity bill, Amount -88.75." in spoken
        assert "with a table with 3 columns and 4 rows, with a button Download PDF." in reader.brief(
            lines, "", case.image.size)


def test_a_terminal_is_described_from_its_last_lines(cases: list[Case], read: dict) -> None:
    for case in cases:
        if case.kind != "terminal":
            continue
        lines = read[case.name][0]
        said = reader.brief(lines, "", case.image.size)
        assert said.startswith("A terminal, with"), said
        last = said.split("The last lines say: ")[1]
        assert last.startswith("error: connection refused by server at port 8080. 1 test failed, 11 passed.")
        assert "maria@laptop:~/project$" in last
        # read keeps reading order: the command first
        assert next(iter(reader.full(lines))).startswith("$ make test")


def test_a_form_names_each_field_with_what_is_typed_in_it(cases: list[Case], read: dict) -> None:
    """Labels above their fields and labels on the left of them; one field filled, the others empty."""
    forms = [case for case in cases if case.fields]
    assert len(forms) == 4
    for case in forms:
        lines = read[case.name][0]
        found = [(label.text, " ".join(ln.text for ln in typed)) for label, typed in layout.fields(lines)]
        assert found == case.fields, case.name
        fields = "; ".join(f"{label}, {typed or 'empty'}" for label, typed in case.fields)
        assert f"Fields: {fields}." in reader.brief(lines, "", case.image.size)


def test_xmessage_is_read_whole_with_the_buttons_packed_in_one_line(cases: list[Case], read: dict) -> None:
    case = next(c for c in cases if c.name == "xmessage")
    lines = read[case.name][0]
    assert [b.text for b in layout.buttons(lines)] == ["Reload", "Keep mine", "Cancel"]
    assert reader.kind(lines, case.image.size) == "dialog"
    assert "The document was changed by another program. Reload it and lose your edits?" in [
        ln.text for ln in lines]
    hits, total = recall(case.words, [ln.text for ln in lines])
    assert hits / total >= 0.98


BITMAP_TEXT = "Keep mine, not nine: the main menu is unknown.\nCommon summer window, minimum number."


@pytest.mark.parametrize("font", ["7x13bold", "9x15bold", "fixed", "9x15"])
def test_bitmap_fonts_keep_m_and_w_apart_from_n_and_u(xvfb: str, font: str) -> None:
    """xmessage's own bold font (7x13bold) was read "Keep nine ... nain nenu ... windou"; the regular
    fonts show that no n or u is turned into m or w where it is not one."""
    image = screenshot_of(["xmessage", "-center", "-fn", font, BITMAP_TEXT], xvfb)
    texts = [ln.text for ln in TextRecognizer(provider="cpu").read(image)]
    hits, total = recall(BITMAP_TEXT.split(), texts)
    assert hits == total, texts
