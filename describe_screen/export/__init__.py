"""Turn a Hugging Face model into an ONNX bundle the daemon can run without torch.

Each family has one module here with `export(manifest, out_dir, precisions, source) -> Path`, listed in
EXPORTERS; adding a family adds one module and one line. torch and transformers are imported only
inside those modules, never by the daemon.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from describe_screen.errors import UserError
from describe_screen.export.common import precisions
from describe_screen.i18n import _

if TYPE_CHECKING:
    from describe_screen.models import ModelManifest

Exporter = Callable[["ModelManifest", Path, list[str], "str | Path | None"], Path]


def _smolvlm() -> Exporter:
    from describe_screen.export import smolvlm

    return smolvlm.export


def _florence2() -> Exporter:
    from describe_screen.export import florence2

    return florence2.export


def _qwen35() -> Exporter:
    from describe_screen.export import qwen35

    return qwen35.export


# Every family this version can export, by manifest family name; each entry imports its module when used.
EXPORTERS: dict[str, Callable[[], Exporter]] = {"smolvlm": _smolvlm, "florence2": _florence2, "qwen3.5": _qwen35}


def export_model(name_or_manifest: str | ModelManifest, out_dir: Path, precision: str = "auto",
                 source: str | Path | None = None) -> Path:
    """Export a model (a manifest name such as "smolvlm-256m-instruct", or a ModelManifest) into
    `out_dir`; `source` is a local folder or repo id overriding the manifest's pinned download."""
    from describe_screen import models

    manifest = models.manifest(name_or_manifest) if isinstance(name_or_manifest, str) else name_or_manifest
    if manifest.family not in EXPORTERS:
        raise UserError(_("This version cannot export models of family {family!r}.", family=manifest.family),
                        _("Update describe-screen."))
    try:
        return EXPORTERS[manifest.family]()(manifest, Path(out_dir), precisions(precision), source)
    except ModuleNotFoundError as exc:
        if exc.name in ("torch", "transformers", "onnx", "onnx_ir"):
            raise UserError(_("Exporting models needs {name}, which is not installed.", name=exc.name),
                            _("Install it with: pip install 'describe-screen[export]'.")) from exc
        raise
