"""Settings: defaults, and every bad value refused with the key and the allowed values named."""

from __future__ import annotations

import pytest

from describe_screen import config as settings
from describe_screen.errors import UserError


def load_text(tmp_path, text: str) -> settings.Config:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return settings.load(path)


def test_missing_file_means_defaults(tmp_path):
    config = settings.load(tmp_path / "none.toml")
    assert config.hotkeys.describe_screen == "<ctrl>+<alt>+d"
    assert config.describe.detail == "brief"


def test_values_are_read(tmp_path):
    config = load_text(tmp_path, '[speech]\nrate = 250\n[describe]\ndetail = "full"\n[models]\ndir = "/x/models"\n')
    assert config.speech.rate == 250
    assert config.describe.detail == "full"
    assert str(config.models_dir()) == "/x/models"


@pytest.mark.parametrize(("text", "words"), [
    ('[describe]\ndetail = "long"\n', ["describe.detail", "'long'", "brief, full"]),
    ("[speech]\nrate = 5\n", ["speech.rate", "from 80 to 500"]),
    ('[speech]\nrate = "fast"\n', ["speech.rate", "whole number"]),
    ("[speech]\ncues = 1\n", ["speech.cues", "true or false"]),
    ("[speech]\npitch = 3\n", ["speech.pitch", "rate, volume"]),
    ("[colours]\nx = 1\n", ["[colours]", "hotkeys"]),
    ('[hotkeys]\nstop = "<ctrl>+<alt>+d"\n', ["hotkeys.describe_screen", "hotkeys.stop"]),
    ("[speech\n", ["cannot be read"]),
])
def test_bad_values_name_the_key(tmp_path, text, words):
    with pytest.raises(UserError) as err:
        load_text(tmp_path, text)
    message = str(err.value)
    for word in words:
        assert word in message
    assert err.value.fix


def test_invalid_hotkey_string_names_the_key(tmp_path):
    with pytest.raises(UserError) as err:
        load_text(tmp_path, '[hotkeys]\nrepeat = "<ctrl>+<bogus>+r"\n')
    assert "hotkeys.repeat" in str(err.value)
    assert "bogus" in str(err.value)
