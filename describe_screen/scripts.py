"""Writing systems: which ones the bundled recogniser reads, telling a line it could not read, and the
published recognisers for other scripts that `describe-screen models install` fetches.

The recogniser inside rapidocr's wheel (PP-OCRv6 small) knows Latin letters with their accents, Chinese and
Japanese. Its character list has no Cyrillic or Arabic letters, Greek only without accents, and lacks 89 of
Vietnamese's 146 letters, both cases (those with a dot below or a hook above, most with two marks: ạ ả ắ ố). On a
screen in another script it returns a few Latin look-alikes, or nothing, for a whole line: such a line is told
by its script (letters of a script the recogniser cannot read) or by being far shorter than its box, and is
never spoken; the user hears once which model would read it.

A Latin-script language whose letters the recogniser lacks (`ALPHABETS`, checked against the recogniser's own
character list) comes out with those letters dropped or changed ("Bạn" read "Bn", "Lưu" "Luu", ơ as α), in
lines that look like text and score high. No published recogniser reads Vietnamese: RapidOCR's PP-OCRv5 Latin
one (latin_PP-OCRv5_rec_mobile, whose character list is PaddleOCR's ppocrv5_latin_dict.txt) has even fewer
of its letters (no ă ơ ư ĩ ũ). So `Alphabets` tells such lines, and they are left out and named, never read.

Czech and Slovak ď ť ľ are drawn by fonts such as DejaVu Sans with the caron as an apostrophe-like stroke after
the letter, and are recognised as d’ t’ l’ (or d t l), though the character list has them; `carons` puts the
caron back (see there), and finds the stroke of one read as a plain t d l L in the line's pixels (glyphs.carons).

RapidOCR publishes PP-OCRv5 recognisers per script as ONNX files with their character list inside (model
metadata "character"); rapidocr's own model table (default_models.yaml, release v3.10.0) gives each file's
address and SHA-256, and the pins below are copied from it. Arabic is recognised left to right in the
picture (visual order); `logical_order` turns it into reading order before it is spoken.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import unicodedata
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from describe_screen.errors import UserError
from describe_screen.i18n import N_, _, spoken_list

BUNDLED = N_("Latin letters with their accents (English, French, Spanish, Portuguese, Italian, German, Polish, "
              "Czech, Turkish and other European languages), Chinese and Japanese")
REPO = "RapidAI/RapidOCR"  # on ModelScope, where rapidocr itself downloads its models from
REVISION = "v3.10.0"
ENDPOINT = "https://www.modelscope.cn"
ENDPOINT_VARIABLE = "DESCRIBE_SCREEN_OCR_ENDPOINT"  # another server with the same layout (tests, a mirror)


@dataclass(frozen=True)
class ScriptModel:
    script: str  # the Unicode script name of its letters, as unicodedata names them ("GREEK")
    path: str  # in the repo at REVISION
    sha256: str
    says: str  # the script and languages, for the user (N_: translated where said)
    rtl: bool = False


SCRIPT_MODELS = {
    "ocr-cyrillic": ScriptModel("CYRILLIC", "onnx/PP-OCRv5/rec/cyrillic_PP-OCRv5_rec_mobile.onnx",
                                "90f761b4bfcce0c8c561c0cb5c887b0971d3ec01c32164bdf7374a35b0982711",
                                N_("Cyrillic (Russian, Ukrainian, Bulgarian, Serbian and others)")),
    "ocr-greek": ScriptModel("GREEK", "onnx/PP-OCRv5/rec/el_PP-OCRv5_rec_mobile.onnx",
                             "b4368bccd557123c702b7549fee6cd1e94b581337d1c9b65310f109131542b7f", N_("Greek")),
    "ocr-arabic": ScriptModel("ARABIC", "onnx/PP-OCRv5/rec/arabic_PP-OCRv5_rec_mobile.onnx",
                              "c1192e632d0baa9146ae5b756a0e635e3dc63c1733737ebfd1629e87144e9295",
                              N_("Arabic script (Arabic, Persian, Urdu)"), rtl=True),
}
# The script model for a desktop language whose script the bundled recogniser cannot read.
FOR_LANGUAGE = {"ru": "ocr-cyrillic", "uk": "ocr-cyrillic", "bg": "ocr-cyrillic", "sr": "ocr-cyrillic",
                "be": "ocr-cyrillic", "mk": "ocr-cyrillic", "kk": "ocr-cyrillic", "el": "ocr-greek",
                "ar": "ocr-arabic", "fa": "ocr-arabic", "ur": "ocr-arabic"}
FOREIGN_SHARE = 0.3  # a line whose letters are this much of one unread script is that script's
WIDE = 3.0  # a box this many times wider than high holds a run of text, not an icon
THIN = 0.8  # characters per box height: screen text in any script has well over one (measured 1.8 to 3.2)
DOUBTFUL = 0.95  # on a screen with unread script, a line recognised with less confidence is a look-alike too
# (screen text the recogniser knows scores 0.96 to 1.0 on the pages in tests/test_scripts.py)


def _vietnamese() -> str:
    """Vietnamese's letters: its twelve vowels bare and with each of the five tone marks, and đ; both cases."""
    vowels = "aăâeêioôơuưy"
    tones = ("", "\u0301", "\u0300", "\u0309", "\u0303", "\u0323")  # sắc huyền hỏi ngã nặng
    small = "".join(unicodedata.normalize("NFC", v + t) for v in vowels for t in tones) + "đ"
    return small + small.upper()


# Latin-script languages with letters beyond the Latin-1 and Latin Extended-A ones every European language
# uses; a recogniser whose character list lacks any of them reads the language garbled.
ALPHABETS = {"vi": _vietnamese()}
# Letters the bundled recogniser does output that, in Latin text, only that language uses (ă is Romanian too,
# đ Croatian too): a line with one is in the language even when it is too short to be told.
TELLTALES = {"vi": "ơưĩũƠƯĨŨ"}
# Czech and Slovak letters whose caron fonts draw as an apostrophe-like stroke after the letter.
CARONS = {"d": "ď", "t": "ť", "l": "ľ", "L": "Ľ"}
# ďábel, žluťoučký; and the stroke read twice, as a letter with its caron and an apostrophe (veľ'ký, l'’ad)
_CARON_INSIDE = re.compile(r"([dtlLďťľĽ])['’]{1,2}(?=[^\W\d_])")
_CARON_END = re.compile(r"(?<=[^\W\d_])([dtlLďťľĽ])['’]{1,2}(?![^\W\d_])")  # teď, chuť, kúpeľ
_OPENING_QUOTE = re.compile(r"(?<![^\W\d_])['‘‚](?=[^\W\d_])")  # a single quote before a word opens a quotation


def script_of(char: str) -> str:
    """The Unicode script of a letter, from its name ("GREEK SMALL LETTER ALPHA" -> "GREEK")."""
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else ""


def foreign_script(text: str) -> str:
    """The script (other than Latin and the CJK ones the bundled recogniser reads) that makes up much of the
    line's letters, or ""."""
    letters = [script_of(c) for c in text if c.isalpha()]
    counts: dict[str, int] = {}
    for script in letters:
        if script in ("GREEK", "CYRILLIC", "ARABIC", "HEBREW"):
            counts[script] = counts.get(script, 0) + 1
    script, count = max(counts.items(), key=lambda item: item[1], default=("", 0))
    return script if letters and count >= FOREIGN_SHARE * len(letters) else ""


def unreadable(text: str, box: tuple[int, int, int, int]) -> bool:
    """The recogniser did not read this line: far fewer characters than a box this long holds."""
    width, height = box[2] - box[0], max(1, box[3] - box[1])
    return width >= WIDE * height and len(text.strip()) < THIN * width / height


def logical_order(visual: str) -> str:
    """Right-to-left text recognised left to right, put in reading order: the line reversed, with runs of
    left-to-right characters (Latin words, numbers) kept as they were."""
    runs: list[str] = []
    for char in visual:
        ltr = unicodedata.bidirectional(char) in ("L", "EN", "AN") or (char == "." and runs and _ltr(runs[-1]))
        if runs and ltr and _ltr(runs[-1]):
            runs[-1] += char
        else:
            runs.append(char)
    return "".join(reversed(runs))


def _ltr(run: str) -> bool:
    return unicodedata.bidirectional(run[0]) in ("L", "EN", "AN")


def carons(text: str, drawn: Callable[[str], str] = lambda text: text) -> str:
    """A Czech or Slovak line with the carons of ď ť ľ Ľ put back where they were read as an apostrophe, and
    those of ť ď ľ Ľ read as a plain t d l L where `drawn` finds the stroke in the line's pixels (glyphs.carons).

    Czech and Slovak write no apostrophe inside a word or at its end (they elide nothing and quote with „“ and
    ‚‘), so in a line identified as one of them (py3langid; never otherwise), d t l L followed by ' or ’ inside
    a word are the letters with a caron; so are they at a word's end, unless the line opens a quotation with a
    single quote. A line the identifier cannot tell is told as it reads with those carons put back. Only lines
    with a t d l or L and an accented letter are looked at for a lost caron (a Czech or Slovak line with its
    only carons lost, "Loďka pluje, ďábel spí" read "Lodka pluje, dábel spí", still has its á í é ý ú), so
    English lines cost nothing more.
    """
    plain = not text.isascii() and any(letter in text for letter in CARONS)
    if not (plain or _CARON_INSIDE.search(text) or _CARON_END.search(text)):
        return text
    from describe_screen import language

    inside = _CARON_INSIDE.sub(_with_caron, text)
    # a line whose carons were all read as apostrophes is told by the identifier once they are carons again
    if (language.text_language(text) or language.text_language(inside)) not in ("cs", "sk"):
        return text
    text = _CARON_INSIDE.sub(_with_caron, drawn(text)) if plain else inside
    return text if _OPENING_QUOTE.search(text) else _CARON_END.sub(_with_caron, text)


def _with_caron(match: re.Match[str]) -> str:
    return CARONS.get(match[1], match[1])  # d t l L, or a letter that already has its caron (its stroke read twice)


class Alphabets:
    """Tells, screen by screen, the lines in a Latin-script language whose letters the recogniser lacks.

    Such a line is read with those letters dropped or changed and looks like text, so it cannot be told by its
    look: it is told by its language (py3langid, on lines long enough or with accented letters), or by a
    letter only that language uses (`TELLTALES`). Once the screen has shown such a language (or the desktop
    is in it: its own labels are, until the screen shows another language), a line of plain letters that
    cannot be told is taken to be in it too: short Vietnamese labels come out as plain words ("Lưu" read
    "Luu", "Hủy" "Hy"), so an English "Settings" there is left out with them.
    Still read: lines without Latin letters (numbers, times, other scripts), lines identified as another
    language (an English sentence, a French title), and short accented lines not told to be in the language
    (a "Xóa" read whole; a garbled "Cài đăt" is told Vietnamese by its accents).
    """

    def __init__(self, characters: list[str], desktop: str) -> None:
        known = set(characters)
        self.lacking = {code for code, letters in ALPHABETS.items() if not set(letters) <= known}
        self.seen = desktop if desktop in self.lacking else ""
        self.presumed = bool(self.seen)  # from the desktop only: the screen's own evidence overrules it

    def garbled(self, text: str) -> str:
        """The language (ISO 639-1) of `text` whose letters the recogniser lacks, or "" for a line to read."""
        if not self.lacking or not any(script_of(c) == "LATIN" for c in text):
            return ""
        from describe_screen import language

        told = language.text_language(text) or language.accented_language(text)
        code = told if told in self.lacking else next(
            (code for code in sorted(self.lacking) if any(c in TELLTALES.get(code, "") for c in text)), "")
        if code:
            self.seen, self.presumed = code, False
            return code
        if told and self.presumed:  # a screen in another language on such a desktop (a French page)
            self.seen = ""
        plain = all(c.isascii() for c in text if c.isalpha())
        return self.seen if self.seen and plain and not told else ""


def hint(scripts: set[str], language: str, installed: list[str]) -> str:
    """What is said once for a screen with text the recognisers could not read: `scripts` holds the Unicode
    scripts of the lines left out ("" unknown) and the languages (ISO 639-1) from `ALPHABETS` whose lines were."""
    from describe_screen.language import spoken_name

    said = []
    if languages := sorted(scripts & set(ALPHABETS)):
        said.append(_("Some text on the screen is in {language}, and the text reader cannot read all its letters, "
                      "so I left that text out rather than read it wrongly. No recogniser that reads them can be "
                      "installed yet.", language=spoken_list([spoken_name(code) for code in languages])))
        if not scripts - set(ALPHABETS):
            return said[0]
    return " ".join([*said, _script_hint(scripts - set(ALPHABETS), language, installed)])


def _script_hint(scripts: set[str], language: str, installed: list[str]) -> str:
    names = [name for name, model in SCRIPT_MODELS.items() if model.script in scripts and name not in installed]
    if not names and (wanted := FOR_LANGUAGE.get(language)) and wanted not in installed:
        names = [wanted]
    if not names:
        names = [name for name in ("ocr-cyrillic", "ocr-greek", "ocr-arabic") if name not in installed]
    if not names:
        return _("Some text on the screen could not be read in any script the text reader knows.")
    what = spoken_list([_(SCRIPT_MODELS[name].says) for name in names], either=True)
    commands = spoken_list([f"describe-screen models install {name}" for name in names], either=True)
    return _("Some text on the screen is in a script the text reader cannot read yet, so I left it out. If it is "
             "{scripts}, install its recogniser with: {commands}.", scripts=what, commands=commands)


def folder(models_dir: Path) -> Path:
    """Installed script recognisers live apart from the vision bundles (no manifest.json: never a bundle)."""
    return models_dir / "ocr"


def installed(models_dir: Path | None) -> dict[str, Path]:
    """{name: model file} of the installed script recognisers."""
    if models_dir is None:
        return {}
    found = {name: folder(models_dir) / name / Path(model.path).name for name, model in SCRIPT_MODELS.items()}
    return {name: path for name, path in found.items() if path.is_file()}


def install(name: str, models_dir: Path, tell: Callable[..., None]) -> Path:
    """Download the pinned file, check its SHA-256 against the pin, then move it into place whole."""
    model = SCRIPT_MODELS[name]
    url = f"{os.environ.get(ENDPOINT_VARIABLE, ENDPOINT).rstrip('/')}/models/{REPO}/resolve/{REVISION}/{model.path}"
    out = folder(models_dir) / name
    staging = out.with_name(name + ".download")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    target = staging / Path(model.path).name
    tell(_("Downloading the recogniser for {scripts}.", scripts=_(model.says)))
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as file:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                file.write(chunk)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(_("The recogniser {name} could not be downloaded ({problem}).", name=name, problem=exc),
                        _("Check the internet connection and run the install again.")) from exc
    if digest.hexdigest() != model.sha256:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(_("The downloaded file of {name} is not the published one (its checksum differs), so it "
                          "was not installed.", name=name), _("Run the install again."))
    from describe_screen import asr_models

    asr_models.replace_folder(staging, out)
    tell(_("{name} is installed. The text reader will use it for {scripts}.", name=name, scripts=_(model.says)),
         installed=True)
    return out


def remove(name: str, models_dir: Path) -> Path:
    from describe_screen import asr_models

    problem = _("The recogniser {name} is not installed in {folder}.", name=name, folder="{folder}")
    return asr_models.remove_folder(folder(models_dir) / name, problem)
