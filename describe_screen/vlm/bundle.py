"""A model bundle: one folder, read and opened in one place for every family.

`Bundle` owns, once and under a lock, what every family used to read for itself: manifest.json and
the config files, the precision choice, the checksum checks, and one `onnx.BoundRunner` per graph.
A family module only says which graphs it needs (`Graph`) and which settings it reads.

Every problem with a bundle is a UserError naming the file and saying how to repair it, whatever its
type (a list where a table belongs, a word where a number belongs): a user cannot inspect the folder,
and a bad model must never take the daemon down with it.

Integrity: hashing a 500 MB model takes seconds, so the full sha256 check runs on `models verify` and
on the first load after an install; that load leaves a stamp (size + mtime per file) and later loads
only compare it. The staging and publishing helpers here write bundles atomically, for every writer
(exporter, importer, installer).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from describe_screen.errors import UserError
from describe_screen.i18n import _
from describe_screen.vlm import onnx
from describe_screen.vlm.decoding import Limits, chat_limits, stream_text

if TYPE_CHECKING:
    from PIL.Image import Image
    from tokenizers import Tokenizer

    from describe_screen.vlm import Request, RuntimeOptions

MANIFEST = "manifest.json"
STAMP = ".verified.json"
FORMAT = 1
# Weight sets, named by the suffix onnx-community and HuggingFaceTB give their files (fp32 has none).
PRECISIONS = ("fp32", "fp16", "int8", "q4", "q4f16")
# Files copied from a source folder when present: tokenizer, processor and generation settings.
SUPPORT_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "preprocessor_config.json", "processor_config.json",
                 "chat_template.json", "chat_template.jinja", "added_tokens.json")
CACHE_PREFIX = "past_key_values."
log = logging.getLogger(__name__)
DERIVED = ".derived"  # files computed from the bundle's own at install or first load (not in the manifest)
T = TypeVar("T")


@dataclass(frozen=True)
class Graph:
    """One ONNX graph of a family: its fp32 file name and the tensor names the runtime feeds and reads.

    Cache inputs (names starting with one of `cache`) are not listed: like optimum, the runtime reads
    them from the session. `optional` inputs are fed only when the session lists them.
    """

    file: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    cache: tuple[str, ...] = (CACHE_PREFIX,)
    optional: tuple[str, ...] = ()


def repair_fix(bundle: Path) -> str:
    """The command that fixes the broken bundle in `bundle`, as written: installing (or exporting) a
    catalogued model again over it, or removing a model the catalogue does not know. Named by the folder,
    which is what `models install|export|remove` take."""
    from describe_screen.models import fetch_command  # the catalogue; lazy, as it imports this module

    command = fetch_command(bundle.name)
    if command:
        return _("Replace it with: {command}.", command=command)
    return _("Remove it with: describe-screen models remove {name}.", name=bundle.name)


def variant_name(base: str, precision: str) -> str:
    """File name of one precision, as onnx-community names them: decoder_model_merged_int8.onnx."""
    return base if precision == "fp32" else base.replace(".onnx", f"_{precision}.onnx")


def choose_precision(requested: str, available: Iterable[str], device: str, preferred: str = "") -> str:
    """The weight set to run: the one asked for, or for "auto" the family's `preferred` one for `device`
    when present, else the first of onnx.AUTO_ORDER[device] present."""
    present = [p for p in PRECISIONS if p in set(available)]
    if not present:
        raise UserError(_("The model has no weight files."), _("Export or install the model again."))
    if requested == "auto":
        return next(p for p in (preferred, *onnx.AUTO_ORDER[device]) if p in present)
    if requested not in present:
        raise UserError(_("The model has no {requested} weights; it has {items}.",
                          requested=requested, items=', '.join(present)),
                        _("Set models.precision to auto or {present}, or install the model with that precision.",
                          present=present[0]))
    return requested


def derived_cache() -> Path:
    """Where derived files go when a bundle's folder cannot be written to."""
    from platformdirs import user_cache_path

    return user_cache_path("describe-screen") / "derived"


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


def _bad(path: Path, what: str, fix: str) -> UserError:
    return UserError(_("The model file {name} in {parent} is damaged: {what}.",
                       name=path.name, parent=path.parent, what=what), fix)


def _check_manifest(path: Path, data: dict) -> None:
    """Every key the runtime and the catalogue read, with the type they need."""
    from describe_screen.vlm import FAMILIES

    fix = repair_fix(path.parent)
    for key, kind in (("name", str), ("family", str), ("tasks", list), ("prompts", dict), ("files", dict),
                      ("precisions", list), ("speed", dict), ("auto", dict)):
        if key in data and not isinstance(data[key], kind):
            raise _bad(path, _("{key} should be a {kind}, not {got}", key=key, kind=kind.__name__,
                                     got=type(data[key]).__name__), fix)
    if data.get("family") not in FAMILIES:
        raise UserError(_("The model file {name} in {parent} names the family {get!r}, which this version cannot "
                          "run.",
                          name=path.name, parent=path.parent, get=data.get('family')),
                        _("Update describe-screen, or remove the model with: describe-screen models remove {name}.",
                          name=path.parent.name))
    if "rank" in data and (isinstance(data["rank"], bool) or not isinstance(data["rank"], int)):
        raise _bad(path, _("rank should be a whole number, not {rank!r}", rank=data["rank"]), fix)
    for key in ("tasks", "precisions"):
        if not all(isinstance(item, str) for item in data.get(key, ())):
            raise _bad(path, _("{key} should be a list of words", key=key), fix)
    if not all(isinstance(v, str) for v in data.get("prompts", {}).values()):
        raise _bad(path, _("every prompt should be text"), fix)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in data.get("speed", {}).values()):
        raise _bad(path, _("every speed need should be a whole number"), fix)
    if not all(v in PRECISIONS for v in data.get("auto", {}).values()):
        raise _bad(path, _("auto should name precisions among {precisions}", precisions=", ".join(PRECISIONS)), fix)
    for name, entry in data.get("files", {}).items():
        if not (isinstance(entry, dict) and isinstance(entry.get("size"), int) and not isinstance(entry["size"], bool)
                and isinstance(entry.get("sha256"), str)):
            raise _bad(path, _("the entry for {name} needs a size in bytes and a sha256", name=name), fix)


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


def _derived_files(graph: Path, base: str) -> list[Path]:
    """The files a derived graph's checksum covers: the graph, the side file of its own weights when it has
    one (named when it was made), and its copies of bundle weights files (onnx.save_copy). Its hard links to
    the bundle's weights files are not counted: check_bundle checks those files, and _unlinked sees when a
    link no longer leads to them."""
    data = graph.with_name(f"{base}.onnx.data")
    return [graph, *([data] if data.is_file() else []), *sorted(graph.parent.glob(f"{base}.copy.*"))]


def _unlinked(graph: Path, base: str, bundle: Path) -> bool:
    """A derived graph's link to a bundle weights file is another file now: the bundle's file was installed
    again, or the folder copied. Reading through it would read weights the bundle no longer has."""
    own = {graph.name, f"{base}.onnx.data", f"{base}.none"}
    for link in graph.parent.glob(f"{base}.*"):
        if link.name in own or link.name.startswith(f"{base}.copy.") or link.suffix == ".onnx":
            continue
        published = bundle / link.name.removeprefix(f"{base}.")
        if not published.is_file() or not link.samefile(published):
            return True
    return False


def _refuse(folder: Path, base: str, reason: str) -> None:
    """Remember that `base` (a source checksum and recipe) has no derived copy, and why ("" when the source
    needs none): reading a large graph again at every load to find that out costs seconds."""
    refused = folder / f"{base}.none"
    try:
        for stale in folder.glob(f"{base.rsplit('.', 1)[0]}.*"):  # another source's copy or note
            stale.unlink()
        refused.with_suffix(".making").write_text(reason, encoding="utf-8")
        os.replace(refused.with_suffix(".making"), refused)
    except OSError:  # only a saving of time: without it the next load reads the graph again
        log.warning("could not note in %s that %s has no optimised copy", folder, base)


def _remove_derived(graph: Path) -> None:
    """A derived graph and every file beside it that was made with it (its weights, or their links)."""
    base = ".".join(graph.name.split(".")[:-2])
    for path in [graph, *graph.parent.glob(f"{base}.*")]:
        path.unlink(missing_ok=True)


# -- the bundle object -----------------------------------------------------------------------------------------

class Bundle:
    """One bundle folder opened with some RuntimeOptions: settings, precision, tokenizer and graph runners.

    Everything loads on first use and once, under one lock, so a warm-up and a first request arriving
    together share the same sessions.
    """

    def __init__(self, path: Path, options: RuntimeOptions, manifest: dict | None = None) -> None:
        self.path = path
        self.options = options
        self.manifest = read_manifest(path) if manifest is None else manifest
        self.name = str(self.manifest.get("name", path.name))
        self.family = str(self.manifest.get("family", ""))
        self.tasks = frozenset(self.manifest.get("tasks", ()))
        self.prompts: dict[str, str] = dict(self.manifest.get("prompts") or {})
        self._lock = threading.RLock()
        self._json: dict[str, dict[str, Any]] = {}
        self._runners: dict[str, onnx.BoundRunner | None] = {}
        self.not_derived: dict[str, str] = {}  # derived graph file -> why the source graph runs instead
        self._tokenizer: Tokenizer | None = None
        self._precision = ""
        self._provider = ""

    @property
    def fix(self) -> str:
        """What to do about any problem with this bundle's files: a command that works as written."""
        return repair_fix(self.path)

    # -- settings files
    def json(self, name: str, required: bool = True) -> dict[str, Any]:
        """A JSON settings file of the bundle (config.json, generation_config.json, ...), read once."""
        with self._lock:
            if name not in self._json:
                if name in (self.manifest.get("files") or {}):
                    check_bundle(self.path, self.manifest, only=[name])
                self._json[name] = read_json(self.path / name, required, self.fix)
            return self._json[name]

    def value(self, name: str, keys: str, kind: Callable[[Any], T], default: Any = ...) -> T:
        """One setting, e.g. value("config.json", "text_config.num_hidden_layers", int, 0); a missing key
        gives `default` (or an error when there is none), a value of the wrong type always an error."""
        data: Any = self.json(name, required=default is ...)
        for key in keys.split("."):
            if not isinstance(data, dict) or key not in data or data[key] is None:
                if default is ...:
                    raise _bad(self.path / name, _("it has no setting {keys}", keys=keys), self.fix)
                return default
            data = data[key]
        try:
            if kind is int and (isinstance(data, bool) or not isinstance(data, (int, float))):
                raise TypeError(data)
            return kind(data)
        except (TypeError, ValueError) as exc:
            unusable = _("the setting {keys} has the unusable value {value!r}", keys=keys, value=data)
            raise _bad(self.path / name, unusable, self.fix) from exc

    @property
    def tokenizer(self) -> Tokenizer:
        with self._lock:
            if self._tokenizer is None:
                from tokenizers import Tokenizer

                check_bundle(self.path, self.manifest, only=["tokenizer.json"])
                try:
                    self._tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
                except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
                    raise UserError(_("The model file tokenizer.json in {path} cannot be read.", path=self.path),
                                    self.fix) from exc
            return self._tokenizer

    # -- weights
    def precisions(self) -> list[str]:
        """Weight sets present: a precision counts when some graph file carries its suffix (fp32: no suffix)."""
        files = set(self.manifest.get("files") or {})
        found = {p for p in PRECISIONS[1:] if any(f.endswith(f"_{p}.onnx") for f in files)}
        if any(f.endswith(".onnx") and not any(f.endswith(f"_{p}.onnx") for p in PRECISIONS[1:]) for f in files):
            found.add("fp32")
        return [p for p in PRECISIONS if p in found]

    @property
    def provider(self) -> str:
        """The provider sessions are asked for: "auto" becomes "cpu" where CUDA cannot really run, so no
        session first tries (and loudly fails) to start CUDA."""
        with self._lock:
            if not self._provider:
                auto = self.options.provider == "auto"
                self._provider = "cpu" if auto and onnx.usable_device("auto") == "cpu" else self.options.provider
            return self._provider

    @property
    def precision(self) -> str:
        """The weight set this bundle runs, chosen once: see choose_precision."""
        with self._lock:
            if not self._precision:
                device = "cuda" if self.provider != "cpu" and onnx.usable_device(self.provider) == "cuda" else "cpu"
                preferred = str((self.manifest.get("auto") or {}).get(device, ""))
                self._precision = choose_precision(self.options.precision, self.precisions(), device, preferred)
            return self._precision

    def graph_file(self, graph: Graph) -> str:
        """The file of `graph` in the chosen precision; a graph stored once for every precision (an
        exported embed_tokens.onnx, which quantisation would not change) is used as it is."""
        files = self.manifest.get("files") or {}
        wanted = variant_name(graph.file, self.precision)
        return wanted if wanted in files or graph.file not in files else graph.file

    def graphs_in_use(self) -> list[str]:
        """The graph files this bundle runs in its chosen precision (what `doctor` names)."""
        files = [f for f in self.manifest.get("files") or {} if f.endswith(".onnx")]
        bases = {next((f.replace(f"_{p}.onnx", ".onnx") for p in PRECISIONS[1:] if f.endswith(f"_{p}.onnx")), f)
                 for f in files}
        return [self.graph_file(Graph(base, (), ())) for base in sorted(bases)]

    def with_data(self, name: str) -> list[str]:
        """A graph file and its external weight files (name.onnx_data, name.onnx_data_1, ...): a graph
        over 2 GB, or any onnx-community -OPT graph, keeps its weights beside it."""
        return [name, *sorted(f for f in self.manifest.get("files") or {} if f.startswith(name + "_data"))]

    def runner(self, graph: Graph) -> onnx.BoundRunner:
        """The session of `graph`, opened once, after its file passed the checks, and checked to take
        exactly the inputs the runtime feeds (the named ones plus any cache inputs)."""
        with self._lock:
            runner = self._runners.get(graph.file)
            if runner is None:
                name = self.graph_file(graph)
                check_bundle(self.path, self.manifest, only=self.with_data(name))
                runner = self._runners[graph.file] = onnx.BoundRunner(self._session(self.path / name, graph), name)
            return runner

    def derived_runner(self, graph: Graph, source: Graph, make: Callable[[Path, Path], bool],
                       recipe: int = 1) -> onnx.BoundRunner | None:
        """The session of `graph`, a file computed from `source`'s file in the chosen precision by
        `make(source_path, target_path)` (False: nothing to change for this model; ValueError: it cannot
        have one, and why). Made once, at install or on the first load, and kept in the bundle's .derived
        folder (the user's cache folder when the bundle is read-only) under the source's checksum and the
        `recipe` number, so a changed source, or a new version of `make` (a higher recipe), is derived
        again, and the downloaded files keep theirs. None when there is no copy or it cannot be opened:
        the caller then runs the source graph, and `not_derived[graph.file]` says why."""
        with self._lock:
            if graph.file not in self._runners:
                self._runners[graph.file] = None
                try:
                    if path := self.derived(source, graph.file.removesuffix(".onnx"), make, recipe):
                        try:
                            self._runners[graph.file] = onnx.BoundRunner(self._session(path, graph), path.name)
                        except UserError:
                            _remove_derived(path)  # damaged: the next load makes it again
                            raise
                except Exception as exc:  # any failure to derive or open it leaves the source graph in use
                    self.not_derived[graph.file] = exc.problem if isinstance(exc, UserError) else \
                        str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
                    log.warning("the optimised copy of %s could not be made or opened (%s); using the "
                                "original graph", source.file, exc)
            return self._runners[graph.file]

    def derived(self, source: Graph, kind: str, make: Callable[[Path, Path], bool], recipe: int = 1) -> Path | None:
        """The path of `source`'s derived file of this `kind`, making it when missing; see derived_runner.
        Its name ends with the sha256 of what was made, checked at every load: a damaged copy is removed
        (ValueError: the source graph runs this time, and the next load makes it again)."""
        import tempfile

        name = self.graph_file(source)
        check_bundle(self.path, self.manifest, only=self.with_data(name))
        # the weights files count: a copy reads them, so another one (a new install) needs another copy
        sources = " ".join(self.manifest["files"][file]["sha256"] for file in self.with_data(name))
        digest = hashlib.sha256(f"{sources} {recipe}".encode()).hexdigest()[:16]
        base = f"{name.removesuffix('.onnx')}.{kind}.{digest}"
        folders = [self.path / DERIVED, derived_cache() / self.name]
        for folder in folders:
            if (refused := folder / f"{base}.none").is_file():  # made before: nothing to make for this source
                if reason := refused.read_text(encoding="utf-8"):
                    raise ValueError(reason)
                return None
            for path in sorted(folder.glob(f"{base}.*.onnx")) if folder.is_dir() else ():
                if _unlinked(path, base, self.path):  # made from weights files no longer installed: made again
                    _remove_derived(path)
                    continue
                if path.name.split(".")[-2] == sha256_of(*_derived_files(path, base))[:16]:
                    return path
                _remove_derived(path)
                raise ValueError(_("its optimised copy {name} was damaged (its checksum did not match); it is made "
                                   "again at the next start", name=path.name))
        for folder in folders:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryDirectory(dir=folder, prefix=".making-") as work:
                    target = Path(work) / f"{base}.onnx"
                    try:
                        made_one = make(self.path / name, target)
                    except ValueError as exc:  # remembered, so the next load does not read the graph again
                        _refuse(folder, base, str(exc))
                        raise
                    if not made_one:
                        _refuse(folder, base, "")
                        return None
                    made = Path(work) / f"{base}.{sha256_of(*_derived_files(target, base))[:16]}.onnx"
                    target.rename(made)
                    for stale in folder.glob(f"{name.removesuffix('.onnx')}.{kind}.*"):
                        stale.unlink()
                    for file in Path(work).iterdir():  # the graph, and its weights file when over 2 GB
                        os.replace(file, folder / file.name)
                return folder / made.name
            except OSError:
                continue  # a read-only models folder: try the cache folder
        return None

    def _session(self, path: Path, graph: Graph) -> Any:
        name = path.name
        try:
            session = onnx.create_session(path, self.provider, self.options.threads)
        except onnx.Unloadable as exc:  # the bundle's fix names the command that installs it again
            raise UserError(exc.problem, self.fix) from exc
        got = [i.name for i in session.get_inputs()]
        if missing := sorted(set(graph.inputs) - set(got)):
            raise UserError(_("The model file {name} in {path} has no input named {missing}, so it does not match "
                              "this version of describe-screen.",
                              name=name, path=self.path, missing=missing[0]), self.fix)
        if extra := sorted(n for n in got if n not in graph.inputs + graph.optional and not n.startswith(graph.cache)):
            raise UserError(_("The model file {name} in {path} expects an input named {extra} that this version "
                              "of describe-screen does not provide.",
                              name=name, path=self.path, extra=extra[0]), self.fix)
        return session


class ChatModel:
    """What the chat families (SmolVLM, Qwen3.5) share over their bundle: its name, tasks and options, the
    tokenizer, stop rules that end at the family's END_OF_TURN token or its `eos` ids, the provider its
    decoder really runs on, and stream() as the decoded text of its own token_ids."""

    END_OF_TURN = ""
    decoder: Callable[[], onnx.BoundRunner]  # each family's own: the session that decodes
    token_ids: Callable[[Image, Request, Callable[[], bool]], Iterator[int]]

    def __init__(self, bundle: Bundle, eos: list[int]) -> None:
        self.bundle = bundle
        self.options = bundle.options
        self.path, self.manifest, self.name, self.tasks = bundle.path, bundle.manifest, bundle.name, bundle.tasks
        self.eos = eos

    @property
    def tokenizer(self) -> Tokenizer:
        return self.bundle.tokenizer

    def limits(self) -> Limits:
        return chat_limits(self.tokenizer, self.options.max_new_tokens, self.eos, self.END_OF_TURN)

    def provider(self) -> str:
        return onnx.main_provider(self.decoder().session)

    def stream(self, image: Image, request: Request, cancelled: Callable[[], bool]) -> Iterator[str]:
        yield from stream_text(self.tokenizer, self.token_ids(image, request, cancelled))
