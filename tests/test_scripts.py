"""Scripts the text reader reads: pages in six Latin-script languages rendered by Chromium (word recall with
accents kept), pages in Greek, Cyrillic and Arabic (named as needing a recogniser, never read as look-alike
letters), and `models install` of a script recogniser from a local server with the published layout."""

from __future__ import annotations

import dataclasses
import hashlib
import html
import os
import re
import subprocess
import sys
import unicodedata
from collections import Counter
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np
import pytest
from corpus import chromium_screenshot
from fake_hub import FakeHub, Repo

from describe_screen import scripts
from describe_screen.capture import Capture
from describe_screen.config import Config
from describe_screen.describer import Describer, Scene
from describe_screen.i18n import _
from describe_screen.ocr import TextRecognizer

PAGES = {
    "fr": ["Paramètres du compte", "Vous êtes sur le point de supprimer définitivement ce fichier.",
           "Êtes-vous sûr de vouloir continuer ? Cette opération ne peut pas être annulée.",
           "Préférences générales : thème, langue, accessibilité et sécurité",
           "Dernière mise à jour : février, à côté de la fenêtre principale", "Enregistrer", "Annuler"],
    "es": ["Configuración de la cuenta", "¿Está seguro de que desea eliminar este archivo?",
           "La contraseña debe tener al menos ocho caracteres y un número.",
           "Año de publicación, región, dirección y teléfono del señor Muñoz",
           "Información útil: la conexión se interrumpió después de la actualización", "Guardar", "Cancelar"],
    "pl": ["Ustawienia konta", "Czy na pewno chcesz usunąć ten plik? Tej operacji nie można cofnąć.",
           "Hasło musi zawierać co najmniej osiem znaków i jedną cyfrę.",
           "Zażółć gęślą jaźń: źródło, łódź, żółw, część, więcej",
           "Połączenie zostało przerwane podczas pobierania aktualizacji", "Zapisz", "Anuluj"],
    "cs": ["Nastavení účtu", "Opravdu chcete tento soubor trvale odstranit?",
           "Heslo musí obsahovat alespoň osm znaků a jednu číslici.", "Příliš žluťoučký kůň úpěl ďábelské ódy",
           "Připojení bylo přerušeno během stahování aktualizace", "Uložit", "Zrušit"],
    "tr": ["Hesap ayarları", "Bu dosyayı kalıcı olarak silmek istediğinizden emin misiniz?",
           "Şifre en az sekiz karakter ve bir rakam içermelidir.", "Pijamalı hasta yağız şoföre çabucak güvendi",
           "Güncelleme indirilirken bağlantı kesildi, lütfen İnternet ayarlarınızı kontrol edin", "Kaydet", "İptal"],
    "vi": ["Cài đặt tài khoản", "Bạn có chắc chắn muốn xóa vĩnh viễn tệp này không?",
           "Mật khẩu phải có ít nhất tám ký tự và một chữ số.",
           "Tiếng Việt có dấu: ă â đ ê ô ơ ư, sắc huyền hỏi ngã nặng",
           "Kết nối bị gián đoạn trong khi tải xuống bản cập nhật", "Lưu", "Hủy"],
    "el": ["Ρυθμίσεις λογαριασμού", "Είστε σίγουροι ότι θέλετε να διαγράψετε αυτό το αρχείο;",
           "Ο κωδικός πρόσβασης πρέπει να έχει τουλάχιστον οκτώ χαρακτήρες.", "Αποθήκευση", "Ακύρωση"],
    "ru": ["Настройки учётной записи", "Вы действительно хотите удалить этот файл?",
           "Пароль должен содержать не менее восьми символов.", "Сохранить", "Отмена"],
    "ar": ["إعدادات الحساب", "هل أنت متأكد أنك تريد حذف هذا الملف؟",
           "يجب أن تحتوي كلمة المرور على ثمانية أحرف على الأقل.", "حفظ", "إلغاء"],
}
# Word recall with accents kept, measured on these pages; the target is 0.98. Czech: DejaVu Sans draws
# the caron of ď and ť as an apostrophe-like stroke; ď is read d’ and given its caron back (scripts.carons:
# 0.935 -> 0.968), ť is read as a plain t and its stroke found in the pixels (glyphs.carons: 0.968 -> 1.000).
# Turkish capital İ is read as i (so case is compared the Turkish way). Vietnamese is not read at all (its
# recall was 0.40, of garbled words): see test_vietnamese_text_is_named_as_unreadable_never_read_garbled.
RECALL = {"fr": 0.98, "es": 0.98, "pl": 0.98, "cs": 0.98, "tr": 0.98}


def page(lang: str) -> str:
    lines = PAGES[lang]
    body = f"<h1>{lines[0]}</h1>" + "".join(f"<p>{t}</p>" for t in lines[1:-2])
    body += f"<p><button>{lines[-2]}</button> <button>{lines[-1]}</button></p>"
    return (f'<html lang="{lang}"{" dir=rtl" if lang == "ar" else ""}><head><meta charset="utf-8"><style>'
            "body{font-family:'DejaVu Sans',sans-serif;font-size:16px;margin:30px;background:#fff;color:#111}"
            f"h1{{font-size:26px}} button{{font-size:15px;padding:4px 12px}}</style></head><body>{body}</body></html>")


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    return {lang: chromium_screenshot(page(lang), folder / f"{lang}.png") for lang in PAGES}


def words(text: str, lang: str) -> Counter:
    text = unicodedata.normalize("NFC", text)
    if lang == "tr":
        text = text.replace("İ", "i").replace("I", "ı")
    return Counter(re.findall(r"\w+", text.lower()))


@pytest.mark.parametrize("lang", list(RECALL))
def test_latin_pages_are_read_with_their_accents(shots, lang) -> None:
    read = words(" ".join(line.text for line in TextRecognizer().read(shots[lang])), lang)
    wanted = words(" ".join(PAGES[lang]), lang)
    recall = sum(min(n, read[w]) for w, n in wanted.items()) / sum(wanted.values())
    print(f"{lang}: word recall with accents {recall:.3f}")
    assert recall >= RECALL[lang]


def read_aloud(image, models_dir: Path, monkeypatch, desktop, lang: str = "en") -> str:
    desktop(f"{lang}_XX.UTF-8")
    config = Config()
    monkeypatch.setattr(config, "models_dir", lambda: models_dir)
    describer = Describer(config)
    return "".join(describer.read(Scene(Capture(image, "screen")), lambda: False))


@pytest.mark.parametrize(("lang", "model"), [("el", "ocr-greek"), ("ru", "ocr-cyrillic"), ("ar", "ocr-arabic")])
def test_a_page_in_another_script_is_named_with_its_install_command_never_read(shots, tmp_path, monkeypatch,
                                                                               desktop, lang, model) -> None:
    said = read_aloud(shots[lang], tmp_path, monkeypatch, desktop, lang)
    assert "Some text on the screen is in a script the text reader cannot read yet" in said
    assert f"describe-screen models install {model}" in said
    assert "I found no text" not in said
    heard = said[:said.index("Some text on the screen")]
    assert not re.search(r"[^\W\d_]{2,}", heard), f"look-alike letters were read: {heard!r}"


@pytest.mark.parametrize(("lang", "hint"), [
    ("el", "Some text on the screen is in a script the text reader cannot read yet"),
    ("vi", "Some text on the screen is in Vietnamese, and the text reader cannot read all its letters")])
def test_a_description_of_such_a_page_names_the_script_instead_of_saying_there_is_no_text(shots, tmp_path,
                                                                                          monkeypatch, desktop,
                                                                                          lang, hint) -> None:
    desktop(f"{lang}_XX.UTF-8")
    config = Config()
    config.describe.engine = "text"
    monkeypatch.setattr(config, "models_dir", lambda: tmp_path)
    said = "".join(Describer(config).describe(Scene(Capture(shots[lang], "screen")), "brief", lambda: False))
    assert said.startswith(hint) and said.count(hint) == 1
    assert lang == "vi" or "describe-screen models install ocr-greek" in said


def test_the_bundled_recogniser_reads_no_line_of_an_english_page_as_unreadable(shots, tmp_path, monkeypatch) -> None:
    unread: set[str] = set()
    lines = list(TextRecognizer().iter_lines(shots["fr"], unread=unread))
    assert len(lines) == len(PAGES["fr"]) and unread == set()


def stand_in(text: str) -> bytes:
    """A recogniser with the published interface (x: N x 3 x 48 x W -> N x T x classes, softmax; the character
    list in the metadata) whose output is always `text`: a tiny stand-in for weights that cannot be had here."""
    import onnx
    from onnx import TensorProto, helper

    chars = sorted(set(text) - {" "})
    classes = len(chars) + 2  # blank first, space last, as rapidocr's CTC decoder adds them
    steps = [chars.index(c) + 1 if c != " " else classes - 1 for c in text]
    logits = np.full((1, 2 * len(steps), classes), -10.0, np.float32)
    for i, index in enumerate(steps):
        logits[0, 2 * i, index] = 10.0
        logits[0, 2 * i + 1, 0] = 10.0  # a blank between letters, so doubled letters stay doubled
    graph = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["shape"], start=0, end=1),
         helper.make_node("Concat", ["shape", "rest"], ["target"], axis=0),
         helper.make_node("Expand", ["logits", "target"], ["raw"]),
         helper.make_node("Softmax", ["raw"], ["fetch_name_0"], axis=2)],
        "rec", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 48, "w"])],
        [helper.make_tensor_value_info("fetch_name_0", TensorProto.FLOAT, ["n", logits.shape[1], classes])],
        [onnx.numpy_helper.from_array(logits, "logits"),
         onnx.numpy_helper.from_array(np.array(logits.shape[1:], np.int64), "rest")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"character": "\n".join(chars)})
    return model.SerializeToString()


GREEK = "Ο κωδικός πρόσβασης πρέπει να έχει οκτώ χαρακτήρες"
ARABIC = "يجب أن تحتوي كلمة المرور على ثمانية أحرف"


def hub_repo(name: str, data: bytes) -> dict[str, Repo]:
    return {f"models/{scripts.REPO}": Repo({scripts.SCRIPT_MODELS[name].path: data}, revisions={scripts.REVISION})}


def install_stand_in(name: str, data: bytes, models_dir: Path, monkeypatch) -> list[str]:
    """Install `data` as `name` from the local server, its pin set to the stand-in's checksum."""
    pinned = dataclasses.replace(scripts.SCRIPT_MODELS[name], sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(scripts.SCRIPT_MODELS, name, pinned)
    told: list[str] = []
    with FakeHub(hub_repo(name, data)) as hub:
        monkeypatch.setenv(scripts.ENDPOINT_VARIABLE, hub.url)
        scripts.install(name, models_dir, lambda text, installed=False: told.append(text))
    fetched = [path for method, path, _ in hub.log if method == "GET"]
    assert fetched == [f"/models/{scripts.REPO}/resolve/{scripts.REVISION}/{pinned.path}"]
    return told


def test_an_installed_greek_recogniser_reads_the_lines_the_bundled_one_cannot(shots, tmp_path, monkeypatch,
                                                                               desktop) -> None:
    # one line, as long as the page's longest: the stand-in says it for every line it is given
    told = install_stand_in("ocr-greek", stand_in(GREEK), tmp_path, monkeypatch)
    assert told[-1] == "ocr-greek is installed. The text reader will use it for Greek."
    said = read_aloud(shots["el"], tmp_path, monkeypatch, desktop, "el")
    assert said.count(GREEK) == len(PAGES["el"]) and "cannot read" not in said
    assert "υμσει" not in said  # the bundled recogniser's look-alikes are gone


def test_right_to_left_text_is_read_in_its_order(shots, tmp_path, monkeypatch, desktop) -> None:
    visual = "ملف 2024 PDF"[::-1].replace("4202", "2024").replace("FDP", "PDF")  # as recognised, left to right
    assert scripts.logical_order(visual) == "ملف 2024 PDF"
    install_stand_in("ocr-arabic", stand_in(ARABIC[::-1]), tmp_path, monkeypatch)  # as seen left to right
    said = read_aloud(shots["ar"], tmp_path, monkeypatch, desktop, "ar")
    assert ARABIC in said and ARABIC[::-1] not in said


def test_a_file_that_is_not_the_published_one_is_refused(tmp_path) -> None:
    env = dict(os.environ, DESCRIBE_SCREEN_DATA=str(tmp_path / "data"),
               DESCRIBE_SCREEN_CONFIG=str(tmp_path / "no.toml"), DESCRIBE_SCREEN_SOCKET=str(tmp_path / "s"))
    with FakeHub(hub_repo("ocr-cyrillic", stand_in("Сохранить"))) as hub:
        result = subprocess.run([sys.executable, "-m", "describe_screen", "models", "install", "ocr-cyrillic"],
                                capture_output=True, text=True, timeout=300,
                                env=env | {scripts.ENDPOINT_VARIABLE: hub.url})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "The downloaded file of ocr-cyrillic is not the published one" in result.stderr
    assert not (tmp_path / "data" / "models" / "ocr" / "ocr-cyrillic").exists()
    listed = subprocess.run([sys.executable, "-m", "describe_screen", "models", "list"], capture_output=True,
                            text=True, timeout=300, env=env)
    assert "ocr-cyrillic: reads Cyrillic (Russian, Ukrainian, Bulgarian, Serbian and others); Apache-2.0 " \
           "licence; not installed." in listed.stdout


@pytest.mark.parametrize(("lang", "fix", "status"), [
    ("ru", "Install it with: describe-screen models install ocr-cyrillic", "note"),
    ("vi", "", "note"),
    ("fr", "", "ok")])
def test_doctor_says_which_scripts_are_read_and_what_a_language_needs(tmp_path, monkeypatch, desktop, lang,
                                                                      fix, status) -> None:
    from describe_screen.commands.doctor import check_text_reader

    desktop(f"{lang}_XX.UTF-8")
    config = Config()
    monkeypatch.setattr(config, "models_dir", lambda: tmp_path)
    check = check_text_reader(config)
    assert _(scripts.BUNDLED) in check.says  # in the desktop's language where it has a catalog (French)
    assert check.fix == fix and check.status == status
    if lang == "vi":
        assert check.says.endswith("It cannot read all the letters of Vietnamese: text in Vietnamese is left out, "
                                   "never read wrongly.")


VIETNAMESE = ("Some text on the screen is in Vietnamese, and the text reader cannot read all its letters, so I "
              "left that text out rather than read it wrongly. No recogniser that reads them can be installed yet.")


def test_the_bundled_recogniser_lacks_vietnamese_letters_and_has_the_czech_ones() -> None:
    known = set(TextRecognizer().characters())
    assert {"ạ", "ả", "ắ", "ố", "ự"}.isdisjoint(known) and set("ăơưđĩũ") <= known
    assert set("ďťľĺŕěřůĎŤĽ") <= known  # Czech and Slovak: drawn, not missing, is what loses a caron
    assert scripts.Alphabets(sorted(known), "en").lacking == {"vi"}


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_vietnamese_text_is_named_as_unreadable_never_read_garbled(shots, tmp_path, monkeypatch, desktop,
                                                                   lang) -> None:
    said = read_aloud(shots["vi"], tmp_path, monkeypatch, desktop, lang)
    assert said.endswith(VIETNAMESE + " ") and said.count("Vietnamese") == 1
    heard = said[:said.index(VIETNAMESE)]
    assert not re.search(r"[^\W\d_]", heard), f"garbled Vietnamese was read: {heard!r}"
    assert "I found no text" not in said


def test_on_a_vietnamese_desktop_a_page_in_another_language_is_read_whole(shots, tmp_path, monkeypatch,
                                                                         desktop) -> None:
    said = read_aloud(shots["fr"], tmp_path, monkeypatch, desktop, "vi")
    assert said.split("\n")[:-1] == PAGES["fr"] and "Vietnamese" not in said


@pytest.mark.parametrize(("read", "meant"), [
    ("Příliš žlutoučký kůň úpěl d’ábelské ódy", "Příliš žlutoučký kůň úpěl ďábelské ódy"),
    ("Teď už vím, že ted’ jdu domů a chut' k jídlu mám", "Teď už vím, že teď jdu domů a chuť k jídlu mám"),
    ("Ľudia sa chcú naučiť l’ahko a rýchlo po slovensky", "Ľudia sa chcú naučiť ľahko a rýchlo po slovensky"),
    ("Řekl mi: 'Přijdu zítra ráno, počkej na mě' a odešel", "Řekl mi: 'Přijdu zítra ráno, počkej na mě' a odešel"),
    ("L’homme est venu hier soir avec d’autres amis de la ville", None),
    ("Don't stop me now, I'll be there at eight o'clock, it'll do", None),
    ("Nastavení d’", None),  # too short to be told Czech: never changed
    ("Veľ'ký stôl, rád l'’ad a kúpeľ' v Piešťanoch", "Veľký stôl, rád ľad a kúpeľ v Piešťanoch"),  # read twice
    ("Hodil loptu d’aleko, vel'ká radost, l'utoval len málo", "Hodil loptu ďaleko, veľká radost, ľutoval len málo"),
    ("L’uomo dell’anno, l’amica e quell’altra sull’isola", None),
])
def test_a_caron_read_as_an_apostrophe_is_put_back_only_in_czech_and_slovak(read, meant) -> None:
    assert scripts.carons(read) == (meant or read)


def test_the_hint_names_vietnamese_and_an_unread_script_each_once(desktop) -> None:
    desktop("fr_FR.UTF-8")
    said = scripts.hint({"vi", "GREEK"}, "fr", [])
    assert said.count("vietnamien") == 1 and "describe-screen models install ocr-greek" in said
    assert "ocr-cyrillic" not in said


# Czech and Slovak lines with ť at a word's end, inside one and next to another t, and plain t before tall
# letters (tl th tk tb tt), accented ones (tí tě tř tů tý), quote marks and capitals; English lines full of t.
# Fonts draw ť as a t with an apostrophe-like stroke after the stem, and the recogniser reads it as a plain t.
CARON_LINES = [
    "Příliš žluťoučký kůň úpěl ďábelské ódy",
    "Ta chuť mi tady chutná, ať to víš, řekla teť Marta",
    "Věděl, že mu chuť na čaj nezmizí, tak si dal tatarák",
    "V kódu najdete tť a ťt, ale to nevadí, protože je to jen příklad",
    "Zeť a neteř přijeli autem, ať už je pozdě nebo ne",
    "Kosť a hosť prišli neskoro, lebo štvrť mesta bola zatvorená",
    "Tvoj otec má päť detí a šesť vnúčat, čo je veľa",
    "Nechť sa stane, čo má, hrať a dýchať treba stále",
    "Fotbal, tlumočník, tkadlec, thajský a Ottův slovník",
    "Tlak v potrubí, tohle je tkanina, otto a bratr tam byl",
    "Potřebuji tě vidět, štítek tím této tátu, tůň a týden",
    "Zítra středa, vstřícný útěk, tři stě let, tón a třetí",
    "Řekl „Musím odejít“ a odešel, to je fakt",
    "Řekl mi: 'Přijdu zítra, musím odejít' a odešel",
    "Tuto zprávu Petr dostal, protože ji Tomáš poslal zítra",
    "Zavřel dveře a odešel, nechal tu jen svou paměť",
]
ENGLISH_LINES = ["The little kitten sat at the table with the other cats",
                 "Let's test that: bottles, thistle, \"it\" and 'at' at last",
                 "Software update: the butter, that tattoo, its title, outlet"]
CARON_SIZES = (13, 14, 16, 20)


# Czech and Slovak lines with ď ľ Ľ (drawn like ť, the stroke beside a stem as tall as the letters'), and plain
# d l L next to tall letters (dl ld lh lt dd ll), accented ones (dí dě lí dá), ľ before tall letters, at a word's
# end, before quote marks, as capitals; English lines full of d and l, and l' as French writes it.
TALL_CARON_LINES = [
    "Příliš žluťoučký kůň úpěl ďábelské ódy",
    "Teď jdu s ďáblem na loďku, dlouho jsem tam nebyl",
    "Ľudovít má veľmi rád ľad a kúpeľ, lebo ho ľúbi",
    "Veľký ľahký stôl, kĺb a dlaň, všetko veľmi dobré",
    "Dědeček dlouho sedl u dílny, lidé tam dělali",
    "Holt, lhář a všechno, co dodal, bylo dobré, hold",
    "Řekl „Přijď zítra“ a odešel, tak jsem přišel",
    "Loďka pluje, ďábel spí a Lída se dívá z okna",
    "Řekl mi: 'Přijdu, jak jsem slíbil' a odešel dál",
    "Kúpeľ v Piešťanoch je veľmi pekný, Ľubo tam bol",
    "V oddělení pan Kollár dodal, že Stella odejde",
]
TALL_ENGLISH_LINES = ["The old dull model held a ladder, all the lilies fell",
                      "Hold 'old' and \"odd\", I'd tell l'homme, Lola, Lily, Lloyd"]


def caron_page(lines: list[str], font: str, out: Path):
    """Each line at each size in `font`, as Chromium draws them."""
    body = "".join(f'<p style="font-size:{size}px">{html.escape(line)}</p>' for size in CARON_SIZES for line in lines)
    page = (f'<html><head><meta charset="utf-8"><style>body{{font-family:\'{font}\';margin:20px;background:#fff;'
            f"color:#111}} p{{margin:6px 0}}</style></head><body>{body}</body></html>")
    return chromium_screenshot(page, out, (1280, 2000))


@pytest.fixture(scope="module")
def caron_pages(tmp_path_factory):
    """Per font (the two CI installs), each line with t at each size."""
    folder = tmp_path_factory.mktemp("carons")
    return {font: caron_page(CARON_LINES + ENGLISH_LINES, font, folder / f"{font.split()[0]}.png")
            for font in ("DejaVu Sans", "Liberation Sans")}


@pytest.fixture(scope="module")
def tall_caron_pages(tmp_path_factory):
    """Per font, each line with d, l or L at each size."""
    folder = tmp_path_factory.mktemp("tall-carons")
    return {font: caron_page(TALL_CARON_LINES + TALL_ENGLISH_LINES, font, folder / f"{font.split()[0]}.png")
            for font in ("DejaVu Sans", "Liberation Sans")}


@pytest.mark.parametrize("font", ["DejaVu Sans", "Liberation Sans"])
def test_a_t_drawn_with_a_caron_is_read_as_t_caron_and_a_plain_t_never(caron_pages, font) -> None:
    read = [line.text for line in TextRecognizer().read(caron_pages[font])]
    assert len(read) == len(CARON_SIZES) * len(CARON_LINES + ENGLISH_LINES)
    found, missed, wrong, plain = [], [], [], 0
    for text, meant in zip(read, (CARON_LINES + ENGLISH_LINES) * len(CARON_SIZES), strict=True):
        # letter by letter, t and ť taken as one letter to line them up
        same = SequenceMatcher(None, text.replace("ť", "t"), meant.replace("ť", "t"), autojunk=False)
        for i, j, n in same.get_matching_blocks():
            for got, want in zip(text[i:i + n], meant[j:j + n], strict=True):
                if want == "ť":
                    (found if got == "ť" else missed).append(text)
                elif want == "t":
                    plain += 1
                    if got == "ť":
                        wrong.append(text)
    print(f"{font}: ť found {len(found)}/{len(found) + len(missed)}, false ť {len(wrong)}/{plain}")
    assert not wrong and not missed, (wrong, missed)
    assert len(found) == len(CARON_SIZES) * sum(line.count("ť") for line in CARON_LINES)  # each read, and read ť
    assert plain == len(CARON_SIZES) * sum(line.count("t") for line in CARON_LINES + ENGLISH_LINES)


@pytest.mark.parametrize("font", ["DejaVu Sans", "Liberation Sans"])
def test_a_d_or_l_drawn_with_a_caron_is_mostly_read_with_it_and_a_plain_one_never(tall_caron_pages, font) -> None:
    read = [line.text for line in TextRecognizer().read(tall_caron_pages[font])]
    lines = TALL_CARON_LINES + TALL_ENGLISH_LINES
    assert len(read) == len(CARON_SIZES) * len(lines)
    found, missed, wrong, plain = [], [], [], 0
    fold = str.maketrans("ďľĽ", "dlL")
    for text, meant in zip(read, lines * len(CARON_SIZES), strict=True):
        # letter by letter, each letter and its caron taken as one to line them up
        same = SequenceMatcher(None, text.translate(fold), meant.translate(fold), autojunk=False)
        for i, j, n in same.get_matching_blocks():
            for got, want in zip(text[i:i + n], meant[j:j + n], strict=True):
                if want in "ďľĽ":
                    (found if got == want else missed).append(text)
                elif want in "dlL":
                    plain += 1
                    if got != want:
                        wrong.append(text)
    print(f"{font}: ď ľ Ľ found {len(found)}/{len(found) + len(missed)}, false {len(wrong)}/{plain}")
    assert not wrong, wrong
    # measured 72/72 (DejaVu) and 67/69 (Liberation: a d read off its stem, Teď at 13 px; a Ľ further off its stem)
    assert len(found) >= 0.9 * len(CARON_SIZES) * sum(line.count(c) for line in TALL_CARON_LINES for c in "ďľĽ")
    assert plain >= 0.95 * len(CARON_SIZES) * sum(line.count(c) for line in lines for c in "dlL")


def test_only_czech_and_slovak_lines_with_a_t_are_looked_at_for_a_lost_caron() -> None:
    looked: list[str] = []

    def drawn(text: str) -> str:
        looked.append(text)
        return text.replace("chut", "chuť")

    lines = ["The little kitten sat at the table with the other cats", "Préférences générales : thème et sécurité",
             "Połączenie zostało przerwane podczas pobierania aktualizacji", "Příliš žlutoučký kůň úpěl ďábelské ódy",
             "Nemôžeš mať všetko, vravieval otec, keď sme išli cez most", "Na chut mi tady řekla Marta: ať to víš"]
    assert [scripts.carons(line, drawn) for line in lines] == [*lines[:-1], "Na chuť mi tady řekla Marta: ať to víš"]
    assert looked == lines[3:]
