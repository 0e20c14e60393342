"""Bundle integrity: every file the manifest lists is present, whole and the one that was exported.

Hashing a 500 MB model takes seconds, so the full sha256 check runs on `models verify` and on the first
load after an install; that load leaves a stamp (size + mtime per file) and later loads only compare it.
Every failure names the file and says how to repair it, because a user cannot inspect the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from describe_screen.errors import UserError
from describe_screen.vlm import onnx

if TYPE_CHECKING:
    import onnxruntime as ort

MANIFEST = "manifest.json"
STAMP = ".verified.json"
FORMAT = 1


def export_fix(manifest: dict) -> str:
    return f"Export it again with: describe-screen models export {manifest.get('name', 'NAME')}."


def variant_name(base: str, precision: str) -> str:
    """File name of one precision, as onnx-community names them: decoder_model_merged_int8.onnx."""
    return base if precision == "fp32" else base.replace(".onnx", f"_{precision}.onnx")


def pick_variant(manifest: dict, base: str, precision: str, device: str) -> str:
    """The file to load for `base`: the requested precision if the bundle has it, else fp32.
    "auto" means fp16 on a GPU and int8 on a CPU, the fastest each runs well."""
    if precision == "auto":
        precision = onnx.auto_precision(device)
    files = manifest.get("files") or {}
    name = variant_name(base, precision)
    if name in files or base in files:
        return name if name in files else base
    # an installed bundle may hold one precision only (e.g. int8 from `models install`): use that one
    return next((variant_name(base, p) for p in manifest.get("precisions") or [] if variant_name(base, p) in files),
                base)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_files(bundle: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Size and sha256 of each named file, as stored in manifest.json."""
    return {name: {"size": (bundle / name).stat().st_size, "sha256": sha256_of(bundle / name)}
            for name in sorted(names)}


def write_manifest(bundle: Path, info: dict[str, Any], files: Iterable[str]) -> dict[str, Any]:
    """Write manifest.json: `info` (name, family, tasks, prompts, ...) plus hashes of `files`.

    A fresh stamp is written too: the hashes were just computed from these very files.
    """
    manifest = {"format": FORMAT, **info, "files": describe_files(bundle, files)}
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    _write_stamp(bundle, manifest["files"])
    return manifest


def _stat_key(path: Path) -> dict[str, int]:
    status = path.stat()
    return {"size": status.st_size, "mtime_ns": status.st_mtime_ns}


def _read_stamp(bundle: Path) -> dict[str, Any]:
    try:
        return json.loads((bundle / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_stamp(bundle: Path, files: dict[str, dict[str, Any]], base: dict | None = None) -> None:
    stamp = dict(base or {})
    stamp |= {name: {**_stat_key(bundle / name), "sha256": entry["sha256"]} for name, entry in files.items()}
    tmp = bundle / (STAMP + ".tmp")
    try:
        tmp.write_text(json.dumps(stamp, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, bundle / STAMP)
    except OSError:
        pass  # a read-only models folder still works; it is just hashed on every load


def check_bundle(bundle: Path, manifest: dict, full: bool = False, only: Iterable[str] | None = None) -> None:
    """Raise UserError when a listed file is missing, has the wrong size or the wrong sha256.

    `full` re-hashes every file; otherwise a file is hashed only if the stamp does not match its
    current size and mtime. `only` limits the check to some files (those one precision needs).
    """
    files: dict[str, dict[str, Any]] = manifest.get("files") or {}
    if not files:
        raise UserError(f"The model manifest in {bundle} lists no files.", export_fix(manifest))
    wanted = set(files) if only is None else set(only)
    stamp = {} if full else _read_stamp(bundle)
    changed = False
    for name in sorted(wanted):
        entry = files.get(name)
        path = bundle / name
        if entry is None or not path.is_file():
            raise UserError(f"The model file {name} is missing from {bundle}.", export_fix(manifest))
        size = path.stat().st_size
        if size != entry["size"]:
            raise UserError(f"The model file {name} in {bundle} has {size} bytes instead of {entry['size']}: "
                            "it is incomplete or was replaced.", export_fix(manifest))
        seen = stamp.get(name)
        if seen and seen.get("sha256") == entry["sha256"] and {k: seen.get(k) for k in ("size", "mtime_ns")} \
                == _stat_key(path):
            continue
        if sha256_of(path) != entry["sha256"]:
            raise UserError(f"The model file {name} in {bundle} is damaged: its checksum does not match "
                            "the manifest.", export_fix(manifest))
        changed = True
    if changed or full:
        _write_stamp(bundle, {name: files[name] for name in wanted}, base=_read_stamp(bundle))


def open_session(bundle: Path, manifest: dict, name: str, inputs: Iterable[str], provider: str = "auto",
                 threads: int = 0) -> ort.InferenceSession:
    """Create the session for one bundle file and insist on exactly the input names the runtime feeds."""
    try:
        session = onnx.create_session(bundle / name, provider, threads)
    except UserError as exc:
        if "cannot be loaded" in exc.problem:
            raise UserError(exc.problem, export_fix(manifest)) from exc
        raise
    got = {i.name for i in session.get_inputs()}
    expected = set(inputs)
    if missing := sorted(expected - got):
        raise UserError(f"The model file {name} in {bundle} has no input named {missing[0]}, so it does not "
                        "match this version of describe-screen.", export_fix(manifest))
    if extra := sorted(got - expected):
        raise UserError(f"The model file {name} in {bundle} expects an input named {extra[0]} that this "
                        "version of describe-screen does not provide.", export_fix(manifest))
    return session
