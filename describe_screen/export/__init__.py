"""Turn a Hugging Face model into an ONNX bundle the daemon can run without torch.

Each family has one module here (`describe_screen.export.<family>`) with
`export(manifest, out_dir, precisions, source) -> Path`; adding a family adds one module.
torch and transformers are imported only inside those modules, never by the daemon.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from describe_screen.errors import UserError
from describe_screen.export.common import precisions

if TYPE_CHECKING:
    from describe_screen.models import ModelManifest


def export_model(name_or_manifest: str | ModelManifest, out_dir: Path, precision: str = "auto",
                 source: str | Path | None = None) -> Path:
    """Export a model (a manifest name such as "smolvlm-256m-instruct", or a ModelManifest) into
    `out_dir`; `source` is a local folder or repo id overriding the manifest's pinned download."""
    from describe_screen import models

    manifest = models.manifest(name_or_manifest) if isinstance(name_or_manifest, str) else name_or_manifest
    try:
        module = importlib.import_module(f"describe_screen.export.{manifest.family}")
    except ModuleNotFoundError as exc:
        if exc.name in ("torch", "transformers", "onnx"):
            raise UserError(f"Exporting models needs {exc.name}, which is not installed.",
                            "Install it with: pip install 'describe-screen[export]'.") from exc
        raise UserError(f"This version cannot export models of family {manifest.family!r}.",
                        "Update describe-screen.") from exc
    return module.export(manifest, Path(out_dir), precisions(precision), source)
