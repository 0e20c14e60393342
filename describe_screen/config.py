"""User settings: one TOML file in the platform's config folder, checked key by key.

Every section is a plain dataclass; a wrong value stops with an error that names the key and the
allowed values, because a silent fallback would leave a blind user guessing why a key does nothing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from describe_screen.errors import UserError
from describe_screen.i18n import _
from describe_screen.options import DETAILS, PRECISIONS, PROVIDERS, SCREEN_TARGETS, SPEECH_OUTPUTS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

APP = "describe-screen"


def choice(default: str, *allowed: str) -> Any:
    """A string setting limited to `allowed` values."""
    return field(default=default, metadata={"choices": (default, *allowed)})


def bounded(default: float, low: float, high: float) -> Any:
    """A number setting limited to [low, high]."""
    return field(default=default, metadata={"range": (low, high)})


@dataclass
class GeneralConfig:
    # The language of every sentence said: "auto" is the desktop's (LANGUAGE, LC_ALL, LC_MESSAGES, LANG),
    # else a code such as "de" or "pt_BR" (see describe_screen/i18n.py).
    language: str = "auto"


@dataclass
class HotkeyConfig:
    """pynput hotkey strings, e.g. "<ctrl>+<alt>+d". An empty string turns an action off."""

    describe_screen: str = "<ctrl>+<alt>+d"
    describe_window: str = "<ctrl>+<alt>+w"
    describe_pointer: str = "<ctrl>+<alt>+p"
    read_text: str = "<ctrl>+<alt>+r"
    ask: str = "<ctrl>+<alt>+a"
    repeat: str = "<ctrl>+<alt>+l"
    stop: str = "<ctrl>+<alt>+s"
    copy: str = "<ctrl>+<alt>+c"
    describe_focus: str = "<ctrl>+<alt>+f"
    # exploring the last capture element by element (explore.py), and pressing the element explored
    explore_next: str = "<ctrl>+<alt>+n"
    explore_previous: str = "<ctrl>+<alt>+<shift>+n"
    explore_next_button: str = "<ctrl>+<alt>+b"
    explore_previous_button: str = "<ctrl>+<alt>+<shift>+b"
    explore_next_field: str = "<ctrl>+<alt>+e"
    explore_previous_field: str = "<ctrl>+<alt>+<shift>+e"
    explore_next_heading: str = "<ctrl>+<alt>+h"
    explore_previous_heading: str = "<ctrl>+<alt>+<shift>+h"
    explore_next_row: str = "<ctrl>+<alt>+g"
    explore_previous_row: str = "<ctrl>+<alt>+<shift>+g"
    explore_below: str = "<ctrl>+<alt>+j"
    explore_above: str = "<ctrl>+<alt>+k"
    explore_where: str = "<ctrl>+<alt>+i"
    press: str = "<ctrl>+<alt>+<enter>"
    double_click: str = "<ctrl>+<alt>+<shift>+<enter>"
    right_click: str = "<ctrl>+<alt>+m"


@dataclass
class SpeechConfig:
    rate: int = bounded(190, 80, 500)
    volume: float = bounded(1.0, 0.0, 1.0)
    voice: str = ""
    cues: bool = True
    tick_seconds: float = bounded(1.5, 0.5, 10.0)
    # auto: the screen reader the user runs when one is found, else pyttsx3 (see describe_screen/screenreader)
    output: str = choice(*SPEECH_OUTPUTS)


@dataclass
class CaptureConfig:
    target: str = choice(*SCREEN_TARGETS)
    pointer_size: int = bounded(480, 64, 4096)
    # Wayland: "screencopy" is grim (wlroots compositors, no permission needed), "portal" the desktop's
    # screenshot portal (asks once); "auto" uses screencopy where the compositor offers it.
    wayland: str = choice("auto", "screencopy", "portal")


@dataclass
class DescribeConfig:
    detail: str = choice(*DETAILS)
    model: str = "auto"
    engine: str = choice("auto", "text", "vlm")


@dataclass
class AskConfig:
    model: str = "auto"
    grounding: bool = True
    reuse_capture_seconds: float = bounded(30.0, 0.0, 3600.0)


@dataclass
class ModelsConfig:
    dir: str = ""
    provider: str = choice(*PROVIDERS)
    threads: int = bounded(0, 0, 256)
    max_new_tokens: int = bounded(160, 8, 2048)
    tiles: str = choice("fast", "default")
    precision: str = choice(*PRECISIONS)
    # The user's own OpenAI-compatible engine ("http://host:port/v1"; empty = none): see model_server.py.
    server: str = ""
    server_model: str = ""
    server_key_file: str = ""
    server_allow_remote: bool = False
    server_timeout: float = bounded(60.0, 1.0, 600.0)


@dataclass
class OcrConfig:
    # "model": the best installed model that reads text, by the catalogue's ranks ("florence-2", the
    # older name of this setting, means the same).
    engine: str = choice("rapidocr", "model", "florence-2")


@dataclass
class VoiceConfig:
    asr_model: str = "auto"
    asr_device: str = choice(*PROVIDERS)
    microphone: str = ""
    max_seconds: float = bounded(30.0, 1.0, 600.0)
    trim_silence: bool = True


@dataclass
class Config:
    general: GeneralConfig = field(default_factory=GeneralConfig)
    hotkeys: HotkeyConfig = field(default_factory=HotkeyConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    describe: DescribeConfig = field(default_factory=DescribeConfig)
    ask: AskConfig = field(default_factory=AskConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    ocr: OcrConfig = field(default_factory=OcrConfig)
    voice: VoiceConfig = field(default_factory=VoiceConfig)

    def models_dir(self) -> Path:
        """Where model bundles live: the config value, else the user data folder."""
        if self.models.dir:
            return Path(self.models.dir).expanduser()
        return data_dir() / "models"


def config_path() -> Path:
    """The settings file; DESCRIBE_SCREEN_CONFIG overrides it (tests, portable installs)."""
    if env := os.environ.get("DESCRIBE_SCREEN_CONFIG"):
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP)) / "config.toml"


def data_dir() -> Path:
    if env := os.environ.get("DESCRIBE_SCREEN_DATA"):
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP))


def _check(section: str, f: dataclasses.Field, value: Any) -> Any:
    key = f"{section}.{f.name}"
    default = f.default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(_("Setting {key} is {value!r}, but it must be true or false.", key=key, value=value),
                            _("Edit {key} in {config_path}.", key=key, config_path=config_path()))
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(default, int) and not isinstance(value, int)):
            raise UserError(_("Setting {key} is {value!r}, but it must be a whole number.", key=key, value=value)
                            if isinstance(default, int) else
                            _("Setting {key} is {value!r}, but it must be a number.", key=key, value=value),
                            _("Edit {key} in {config_path}.", key=key, config_path=config_path()))
        low, high = f.metadata.get("range", (float("-inf"), float("inf")))
        if not low <= value <= high:
            raise UserError(_("Setting {key} is {value}, but it must be from {low:g} to {high:g}.",
                              key=key, value=value, low=low, high=high),
                            _("Edit {key} in {config_path}.", key=key, config_path=config_path()))
        return type(default)(value)
    if not isinstance(value, str):
        raise UserError(_("Setting {key} is {value!r}, but it must be text in quotes.", key=key, value=value),
                        _("Edit {key} in {config_path}.", key=key, config_path=config_path()))
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise UserError(_("Setting {key} is {value!r}; allowed values are {items}.",
                          key=key, value=value, items=', '.join(choices)),
                        _("Edit {key} in {config_path}.", key=key, config_path=config_path()))
    return value


def from_dict(data: dict[str, Any]) -> Config:
    """Build a Config from parsed TOML, refusing unknown sections, keys and bad values."""
    config = Config()
    for section, values in data.items():
        if section not in {f.name for f in dataclasses.fields(Config)}:
            known = ", ".join(f.name for f in dataclasses.fields(Config))
            raise UserError(_("The settings file has an unknown section [{section}].", section=section),
                            _("Known sections are {known}.", known=known))
        if not isinstance(values, dict):
            raise UserError(_("[{section}] in the settings file must be a table of keys.", section=section),
                            _("Edit {config_path}.", config_path=config_path()))
        target = getattr(config, section)
        fields = {f.name: f for f in dataclasses.fields(target)}
        for key, value in values.items():
            if key not in fields:
                raise UserError(_("The settings file has an unknown key {section}.{key}.",
                                  section=section, key=key),
                                _("Known keys in [{section}] are {items}.",
                                  section=section, items=', '.join(fields)))
            setattr(target, key, _check(section, fields[key], value))
    _check_hotkeys(config.hotkeys)
    if config.models.server:
        server_url(config.models.server, config.models.server_allow_remote)
    return config


def _check_hotkeys(hotkeys: HotkeyConfig) -> None:
    """Each hotkey string must parse; two actions must not share one combination."""
    from describe_screen.keys import parse_hotkey

    seen: dict[str, str] = {}
    for f in dataclasses.fields(hotkeys):
        combo = getattr(hotkeys, f.name)
        if not combo:
            continue
        normal = parse_hotkey(combo, f"hotkeys.{f.name}")
        if normal in seen:
            raise UserError(_("Hotkeys {seen} and hotkeys.{name} are both {combo}.",
                              seen=seen[normal], name=f.name, combo=combo),
                            _("Give each action its own key combination in the settings file."))
        seen[normal] = f"hotkeys.{f.name}"


def load(path: Path | None = None) -> Config:
    """Read the settings file; a missing file means all defaults."""
    path = path or config_path()
    if not path.exists():
        return Config()
    if path.is_dir():
        raise UserError(_("The settings file {path} is a folder, not a file.", path=path),
                        _("Point DESCRIBE_SCREEN_CONFIG or --config at a file, or remove that folder."))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(_("The settings file {path} cannot be read: {reason}.",
                          path=path, reason=exc.strerror or exc),
                        _("Check that you are allowed to read it, or delete it to use the defaults.")) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(_("The settings file {path} cannot be read: {exc}.", path=path, exc=exc),
                        _("Fix the line it names, or delete the file to use the defaults.")) from exc
    return from_dict(data)


def server_url(url: str, allow_remote: bool) -> str:
    """The checked base URL (…/v1 added when the path is empty). Plain http to another machine would
    carry screen captures unencrypted, so it needs the user's explicit consent."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(_("Setting models.server is {url!r}, which is not a web address like "
                          "http://127.0.0.1:8080/v1.",
                          url=url),
                        _("Edit models.server in {config_path}, or set it to \"\" to use no server.",
                          config_path=config_path()))
    if parts.scheme == "http" and not is_local(parts.hostname) and not allow_remote:
        raise UserError(_("models.server points at {hostname}, another machine, over plain http: screen captures "
                          "would travel unencrypted, so I do not send them.",
                          hostname=parts.hostname),
                        _("Use https, or if that network is yours set models.server_allow_remote = true in "
                          "{config_path}.",
                          config_path=config_path()))
    path = parts.path.rstrip("/") or "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


def is_local(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
