"""Writing systems: which ones the bundled recogniser reads, telling a line it could not read, and the
published recognisers for other scripts that `describe-screen models install` fetches.

The recogniser inside rapidocr's wheel (PP-OCRv6 small) knows Latin letters with their accents, Chinese and
Japanese. Its character list has no Cyrillic or Arabic letters, Greek only without accents, and lacks the
Vietnamese letters that carry two marks (ạ ắ ố ...). On a screen in another script it returns a few Latin
look-alikes, or nothing, for a whole line: such a line is told by its script (letters of a script the
recogniser cannot read) or by being far shorter than its box, and is never spoken; the user hears once
which model would read it.

RapidOCR publishes PP-OCRv5 recognisers per script as ONNX files with their character list inside (model
metadata "character"); rapidocr's own model table (default_models.yaml, release v3.10.0) gives each file's
address and SHA-256, and the pins below are copied from it. Arabic is recognised left to right in the
picture (visual order); `logical_order` turns it into reading order before it is spoken.
"""

from __future__ import annotations

import hashlib
import os
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
    "ocr-latin": ScriptModel("LATIN", "onnx/PP-OCRv5/rec/latin_PP-OCRv5_rec_mobile.onnx",
                             "b20bd37c168a570f583afbc8cd7925603890efbcdc000a59e22c269d160b5f5a",
                             N_("Latin letters, for Vietnamese tone marks the bundled reader lacks")),
}
# The script model for a desktop language whose script the bundled recogniser cannot read.
FOR_LANGUAGE = {"ru": "ocr-cyrillic", "uk": "ocr-cyrillic", "bg": "ocr-cyrillic", "sr": "ocr-cyrillic",
                "be": "ocr-cyrillic", "mk": "ocr-cyrillic", "kk": "ocr-cyrillic", "el": "ocr-greek",
                "ar": "ocr-arabic", "fa": "ocr-arabic", "ur": "ocr-arabic", "vi": "ocr-latin"}
FOREIGN_SHARE = 0.3  # a line whose letters are this much of one unread script is that script's
WIDE = 3.0  # a box this many times wider than high holds a run of text, not an icon
THIN = 0.8  # characters per box height: screen text in any script has well over one (measured 1.8 to 3.2)
DOUBTFUL = 0.95  # on a screen with unread script, a line recognised with less confidence is a look-alike too
# (screen text the recogniser knows scores 0.96 to 1.0 on the pages in tests/test_scripts.py)


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


def hint(scripts: set[str], language: str, installed: list[str]) -> str:
    """The sentence said once for a screen with text the recognisers could not read."""
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


def latin_first(models_dir: Path | None) -> bool:
    """The desktop's language needs Latin letters the bundled recogniser lacks (Vietnamese), and the
    recogniser that has them is installed: it reads every line first."""
    from describe_screen import language

    return FOR_LANGUAGE.get(language.user_language()) == "ocr-latin" and "ocr-latin" in installed(models_dir)


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
