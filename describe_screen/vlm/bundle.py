"""A model bundle: one folder, read and opened in one place for every family.

`Bundle` owns, once and under a lock, what every family used to read for itself: manifest.json and
the config files, the precision choice, the checksum checks, and one `onnx.BoundRunner` per graph.
A family module only says which graphs it needs (`Graph`) and which settings it reads.

Every problem with a bundle is a UserError naming the file and saying how to repair it, whatever its
type (a list where a table belongs, a word where a number belongs): a user cannot inspect the folder,
and a bad model must never take the daemon down with it. The folder's files (manifest, checksums, atomic
writing) are manifest.py's; what is derived from them at first load (optimised graph copies) is here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from describe_screen.errors import UserError
from describe_screen.i18n import _
from describe_screen.vlm import onnx
from describe_screen.vlm.decoding import Limits, chat_limits, stream_text
from describe_screen.vlm.manifest import (
    PRECISIONS,
    check_bundle,
    damaged,
    read_json,
    read_manifest,
    repair_fix,
    sha256_of,
)

if TYPE_CHECKING:
    from PIL.Image import Image
    from tokenizers import Tokenizer

    from describe_screen.vlm import Request, RuntimeOptions

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
                    raise damaged(self.path / name, _("it has no setting {keys}", keys=keys), self.fix)
                return default
            data = data[key]
        try:
            if kind is int and (isinstance(data, bool) or not isinstance(data, (int, float))):
                raise TypeError(data)
            return kind(data)
        except (TypeError, ValueError) as exc:
            unusable = _("the setting {keys} has the unusable value {value!r}", keys=keys, value=data)
            raise damaged(self.path / name, unusable, self.fix) from exc

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
