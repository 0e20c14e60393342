"""A bundle's folder on disk: manifest.json read and checked key by key, every file's checksum (with the
stamp that spares hashing 500 MB on every load), and writing a bundle atomically.

Hashing a large model takes seconds, so the full sha256 check runs on `models verify` and on the first
load after an install; that load leaves a stamp (size + mtime per file) and later loads only compare it.
The staging and publishing helpers write bundles atomically, for every writer (exporter, importer,
installer). Every problem is a UserError naming the file and saying how to repair it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from describe_screen.errors import UserError
from describe_screen.i18n import _

MANIFEST = "manifest.json"
STAMP = ".verified.json"
FORMAT = 1
# Weight sets, named by the suffix onnx-community and HuggingFaceTB give their files (fp32 has none).
PRECISIONS = ("fp32", "fp16", "int8", "q4", "q4f16")
# Files copied from a source folder when present: tokenizer, processor and generation settings.
SUPPORT_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "preprocessor_config.json", "processor_config.json",
                 "chat_template.json", "chat_template.jinja", "added_tokens.json")


def repair_fix(bundle: Path) -> str:
    """The command that fixes the broken bundle in `bundle`, as written: installing (or exporting) a
    catalogued model again over it, or removing a model the catalogue does not know. Named by the folder,
    which is what `models install|export|remove` take."""
    from describe_screen.models import fetch_command  # the catalogue; lazy, as it imports this module

    command = fetch_command(bundle.name)
    if command:
        return _("Replace it with: {command}.", command=command)
    return _("Remove it with: describe-screen models remove {name}.", name=bundle.name)



# -- reading files --------------------------------------------------------------------------------------------

def read_json(path: Path, required: bool = True, fix: str = "") -> dict[str, Any]:
    """A JSON file holding a table; {} when it is absent and not `required`."""
    fix = fix or repair_fix(path.parent)
    if not path.is_file():
        if required:
            raise UserError(_("The model file {name} is missing from {parent}.",
                              name=path.name, parent=path.parent), fix)
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError covers bad JSON and bad UTF-8
        raise UserError(_("The model file {name} in {parent} is damaged: {exc}.",
                          name=path.name, parent=path.parent, exc=exc), fix) from exc
    if not isinstance(data, dict):
        raise UserError(_("The model file {name} in {parent} is damaged: it holds a {kind}, not a table of "
                          "settings.",
                          name=path.name, parent=path.parent, kind=type(data).__name__), fix)
    return data


def damaged(path: Path, what: str, fix: str) -> UserError:
    """A file of the bundle that reads but holds something unusable: what, and how to repair it."""
    return UserError(_("The model file {name} in {parent} is damaged: {what}.",
                       name=path.name, parent=path.parent, what=what), fix)


def _check_manifest(path: Path, data: dict) -> None:
    """Every key the runtime and the catalogue read, with the type they need."""
    from describe_screen.vlm import FAMILIES

    fix = repair_fix(path.parent)
    for key, kind in (("name", str), ("family", str), ("tasks", list), ("prompts", dict), ("files", dict),
                      ("precisions", list), ("speed", dict), ("auto", dict)):
        if key in data and not isinstance(data[key], kind):
            raise damaged(path, _("{key} should be a {kind}, not {got}", key=key, kind=kind.__name__,
                                     got=type(data[key]).__name__), fix)
    if data.get("family") not in FAMILIES:
        raise UserError(_("The model file {name} in {parent} names the family {get!r}, which this version cannot "
                          "run.",
                          name=path.name, parent=path.parent, get=data.get('family')),
                        _("Update describe-screen, or remove the model with: describe-screen models remove {name}.",
                          name=path.parent.name))
    if "rank" in data and (isinstance(data["rank"], bool) or not isinstance(data["rank"], int)):
        raise damaged(path, _("rank should be a whole number, not {rank!r}", rank=data["rank"]), fix)
    for key in ("tasks", "precisions"):
        if not all(isinstance(item, str) for item in data.get(key, ())):
            raise damaged(path, _("{key} should be a list of words", key=key), fix)
    if not all(isinstance(v, str) for v in data.get("prompts", {}).values()):
        raise damaged(path, _("every prompt should be text"), fix)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in data.get("speed", {}).values()):
        raise damaged(path, _("every speed need should be a whole number"), fix)
    if not all(v in PRECISIONS for v in data.get("auto", {}).values()):
        raise damaged(path, _("auto should name precisions among {precisions}", precisions=", ".join(PRECISIONS)), fix)
    for name, entry in data.get("files", {}).items():
        if not (isinstance(entry, dict) and isinstance(entry.get("size"), int) and not isinstance(entry["size"], bool)
                and isinstance(entry.get("sha256"), str)):
            raise damaged(path, _("the entry for {name} needs a size in bytes and a sha256", name=name), fix)


def read_manifest(bundle: Path) -> dict:
    """manifest.json of a bundle, checked key by key."""
    path = bundle / MANIFEST
    if not path.is_file():
        raise UserError(_("The model folder {bundle} has no manifest.json, so it is not a model bundle.",
                          bundle=bundle),
                        repair_fix(bundle))
    data = read_json(path)
    _check_manifest(path, data)
    return data


# -- integrity -------------------------------------------------------------------------------------------------

def sha256_of(*paths: Path) -> str:
    """The sha256 of a file (of several, one after another)."""
    digest = hashlib.sha256()
    for path in paths:
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
        stamp = json.loads((bundle / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


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
        raise UserError(_("The model manifest in {bundle} lists no files.", bundle=bundle), repair_fix(bundle))
    wanted = set(files) if only is None else set(only)
    stamp = {} if full else _read_stamp(bundle)
    changed = False
    for name in sorted(wanted):
        entry = files.get(name)
        path = bundle / name
        if entry is None or not path.is_file():
            raise UserError(_("The model file {name} is missing from {bundle}.", name=name, bundle=bundle),
                            repair_fix(bundle))
        size = path.stat().st_size
        if size != entry["size"]:
            raise UserError(_("The model file {name} in {bundle} has {size} bytes instead of {size2}: it is "
                              "incomplete or was replaced.",
                              name=name, bundle=bundle, size=size, size2=entry['size']), repair_fix(bundle))
        seen = stamp.get(name)
        if isinstance(seen, dict) and seen.get("sha256") == entry["sha256"] and \
                {k: seen.get(k) for k in ("size", "mtime_ns")} == _stat_key(path):
            continue
        if sha256_of(path) != entry["sha256"]:
            raise UserError(_("The model file {name} in {bundle} is damaged: its checksum does not match the "
                              "manifest.",
                              name=name, bundle=bundle), repair_fix(bundle))
        changed = True
    if changed or full:
        _write_stamp(bundle, {name: files[name] for name in wanted}, base=_read_stamp(bundle))


# -- writing bundles -------------------------------------------------------------------------------------------

def staging_dir(out_dir: Path) -> Path:
    """An empty sibling folder to write a bundle into; `publish` moves it into place only when complete,
    so an interrupted export or install never leaves a half-written bundle where the daemon looks."""
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def copy_support_files(source: Path, out_dir: Path, names: Iterable[str] = SUPPORT_FILES) -> list[str]:
    copied = []
    for name in names:
        if (source / name).is_file():
            shutil.copyfile(source / name, out_dir / name)
            copied.append(name)
    return copied


def publish(staging: Path, out_dir: Path, info: dict[str, Any], wanted: list[str]) -> Path:
    """Write manifest.json (every file's sha256, the model's `info`, the `wanted` precisions) into
    `staging`, then swap it in as `out_dir`."""
    files = [p.name for p in staging.iterdir() if p.is_file() and p.name not in (MANIFEST, STAMP)]
    write_manifest(staging, {**info, "precisions": wanted}, files)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    return out_dir
