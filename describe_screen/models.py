"""The catalogue: which models exist (manifests in models/*.toml) and which are installed (bundles in the
models folder).

A manifest pins everything an export needs (repo, revision, family, prompts); an installed bundle is a
folder named after the model holding the ONNX files and a manifest.json written by the exporter. The
ranks decide which model serves which task, so no other module names a model. Reading and writing
bundle files is describe_screen.vlm.manifest's job.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from describe_screen.errors import UserError
from describe_screen.i18n import _
from describe_screen.vlm.manifest import MANIFEST, check_bundle, copy_support_files, publish, read_manifest, staging_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib



def _manifest_dir() -> Path:
    """models/ beside the package in a source tree (and an editable install); a wheel ships the same
    files inside the package as describe_screen/manifests (see setup.py)."""
    source = Path(__file__).resolve().parent.parent / "models"
    return source if source.is_dir() else Path(__file__).resolve().parent / "manifests"


MANIFEST_DIR = _manifest_dir()


@dataclass(frozen=True)
class ModelManifest:
    """One exportable model: where its weights come from and how the daemon should prompt it."""

    name: str
    repo: str
    revision: str
    family: str
    tasks: tuple[str, ...]
    prompts: dict[str, str]
    licence: str
    size_mb: int  # approximate download + bundle size, told to the user before an export
    rank: int = 100  # lower ranks are preferred when the settings say model = "auto"
    description: str = ""
    export: dict[str, Any] = field(default_factory=dict)  # family-specific export options
    published: dict[str, Any] = field(default_factory=dict)  # ready ONNX files: repo, revision, graphs, auto
    speed: dict[str, int] = field(default_factory=dict)  # what a CPU needs to run it at speed (Machine.runs)

    def bundle_info(self) -> dict[str, Any]:
        """What the exporter copies into the bundle's manifest.json."""
        info = {"name": self.name, "family": self.family, "tasks": list(self.tasks), "prompts": self.prompts,
                "source": {"repo": self.repo, "revision": self.revision}, "licence": self.licence,
                "rank": self.rank, "speed": self.speed}
        if "auto" in self.published:  # the family's own choice of weights for "auto" (see bundle.choose_precision)
            info["auto"] = dict(self.published["auto"])
        return info


@dataclass(frozen=True)
class InstalledModel:
    name: str
    path: Path
    family: str
    tasks: frozenset[str]
    precisions: tuple[str, ...]
    size_bytes: int
    rank: int
    speed: dict[str, int] = field(default_factory=dict)
    graphs: tuple[str, ...] = ()  # the .onnx files it holds


@dataclass(frozen=True)
class Machine:
    """What this computer offers a model: physical cores, memory, and whether CUDA really runs."""

    cores: int
    memory_gb: float
    cuda: bool

    @classmethod
    def here(cls, provider: str = "auto") -> Machine:
        import os

        from describe_screen.vlm import onnx

        try:
            memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
        except (AttributeError, ValueError, OSError):  # no sysconf (Windows): memory is not what decides
            memory = float("inf")
        return cls(onnx.physical_cores(), memory, onnx.usable_device(provider) == "cuda")

    def runs(self, speed: dict[str, int]) -> bool:
        """True when a model with these `speed` needs (cpu_cores, memory_gb on the CPU) answers at speed
        here: any model does with CUDA."""
        return self.cuda or (self.cores >= speed.get("cpu_cores", 0) and self.memory_gb >= speed.get("memory_gb", 0))

    def says(self) -> str:
        cuda = "CUDA" if self.cuda else _("no usable CUDA")
        if self.memory_gb == float("inf"):
            return _("{cores} cores and {cuda}", cores=self.cores, cuda=cuda)
        return _("{cores} cores, {memory} GB of memory and {cuda}", cores=self.cores,
                 memory=round(self.memory_gb), cuda=cuda)


def needs(speed: dict[str, int]) -> str:
    """A model's `speed` needs in words."""
    return _("a GPU with CUDA, or {cores} cores and {memory} GB of memory, to answer at speed",
             cores=speed.get("cpu_cores", 1), memory=speed.get("memory_gb", 1))


def _parse(path: Path) -> ModelManifest:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return ModelManifest(name=data["name"], repo=data["repo"], revision=data["revision"],
                             family=data["family"], tasks=tuple(data["tasks"]), prompts=dict(data["prompts"]),
                             licence=data["licence"], size_mb=int(data["size_mb"]),
                             rank=int(data.get("rank", 100)), description=data.get("description", ""),
                             export=dict(data.get("export", {})), published=dict(data.get("published", {})),
                             speed={k: int(v) for k, v in data.get("speed", {}).items()})
    except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise UserError(_("The model description {name} is damaged ({exc}).", name=path.name, exc=exc),
                        _("Reinstall describe-screen.")) from exc


def available(directory: Path = MANIFEST_DIR) -> list[ModelManifest]:
    """Every model this version knows how to export, best first."""
    return sorted((_parse(p) for p in directory.glob("*.toml")), key=lambda m: (m.rank, m.name))


def manifest(name: str, directory: Path = MANIFEST_DIR) -> ModelManifest:
    for candidate in available(directory):
        if candidate.name == name:
            return candidate
    known = ", ".join(m.name for m in available(directory))
    raise UserError(_("There is no model called {name}.", name=name), _("Known models are: {known}.", known=known))


def fetch_command(name: str, directory: Path = MANIFEST_DIR) -> str:
    """The command that installs the catalogued model `name` as written (install where it has published
    files, else export), or "" for a name the catalogue does not know."""
    spec = next((m for m in available(directory) if m.name == name), None)
    if spec is None:
        return ""
    return f"describe-screen models {'install' if spec.published else 'export'} {name}"


def install_hint(task: str, directory: Path = MANIFEST_DIR, machine: Machine | None = None) -> str:
    """How to get the best catalogued model for `task` that this `machine` (this computer when None) runs
    at speed, in one sentence for the user."""
    able = [m for m in available(directory) if task in m.tasks]
    if not able:
        return ""
    if any(m.speed for m in able):
        machine = machine or Machine.here()
        able = [m for m in able if machine.runs(m.speed)] or able
    return _("To install one, run: {command}.", command=fetch_command(able[0].name, directory))


def _installed_model(path: Path, check: bool = False) -> InstalledModel:
    """The bundle in `path`; `check` also looks for missing, cut or replaced files (manifest.check_bundle)."""
    data = read_manifest(path)
    if check:
        check_bundle(path, data)
    size = sum(entry["size"] for entry in (data.get("files") or {}).values())
    return InstalledModel(name=str(data.get("name", path.name)), path=path, family=str(data.get("family", "")),
                          tasks=frozenset(data.get("tasks", [])), precisions=tuple(data.get("precisions", [])),
                          size_bytes=size, rank=int(data.get("rank", 100)), speed=dict(data.get("speed") or {}),
                          graphs=tuple(sorted(f for f in data.get("files") or {} if f.endswith(".onnx"))))


def _scan(models_dir: Path) -> tuple[list[InstalledModel], dict[str, UserError]]:
    """(usable bundles, best first; {folder name: what is wrong} for the others). A bundle with a damaged
    manifest or a missing, cut or replaced file is never chosen, so the next-best model serves instead."""
    found, problems = [], {}
    if models_dir.is_dir():
        for path in sorted(models_dir.iterdir()):
            if path.name.endswith((".partial", ".download")) or not (path / MANIFEST).is_file():
                continue  # an export or install still under way (or stopped), or no bundle at all
            try:
                found.append(_installed_model(path, check=True))
            except UserError as exc:
                problems[path.name] = exc
    return sorted(found, key=lambda m: (m.rank, m.name)), problems


def installed(models_dir: Path) -> list[InstalledModel]:
    """Usable bundles in `models_dir`, best first."""
    return _scan(models_dir)[0]


def broken(models_dir: Path) -> dict[str, UserError]:
    """{folder name: what is wrong} for each bundle in `models_dir` that cannot be used; each error's fix
    is a command that works as written (manifest.repair_fix)."""
    return _scan(models_dir)[1]


def _not_installed(name: str, models_dir: Path) -> UserError:
    command = fetch_command(name)
    return UserError(_("The model {name} is not installed in {models_dir}.", name=name, models_dir=models_dir),
                     _("Install it with: {command}.", command=command) if command else
                     _("See the installed and known models with: describe-screen models list."))


def find(name: str, models_dir: Path) -> InstalledModel:
    path = models_dir / name
    if not (path / MANIFEST).is_file():
        raise _not_installed(name, models_dir)
    return _installed_model(path)


def verify(name: str, models_dir: Path) -> InstalledModel:
    """Re-hash every file of an installed bundle and read its settings; raises UserError naming the first
    bad file."""
    from describe_screen.vlm import RuntimeOptions, load_model

    model = find(name, models_dir)
    check_bundle(model.path, read_manifest(model.path), full=True)
    load_model(model.path, RuntimeOptions(provider="cpu"))  # reads every setting the family needs
    return model


def remove(name: str, models_dir: Path) -> Path:
    """Delete the bundle folder `name`, readable or broken: removing is how a broken bundle is fixed."""
    path = models_dir / name
    if path.parent != models_dir or name in ("", ".", ".."):
        raise UserError(_("{name} is not a model name.", name=name),
                        _("See the installed models with: describe-screen models "
                                                          "list."))
    if not (path / MANIFEST).is_file():
        raise _not_installed(name, models_dir)
    shutil.rmtree(path)
    return path


def import_bundle(folder: Path, name: str, models_dir: Path) -> InstalledModel:
    """Install a folder exported elsewhere with our file names, e.g. an onnx-community download
    (configs and tokenizer at the top, graphs in onnx/), as the known model `name`, whose manifest
    supplies family, tasks and prompts. fp32, int8 and fp16 graphs are kept; q4/bnb4/uint8 are skipped."""
    spec = manifest(name)
    graphs = folder / "onnx" if (folder / "onnx").is_dir() else folder
    staging = staging_dir(models_dir / name)
    found: set[str] = set()
    for path in sorted(graphs.glob("*.onnx*")):
        precision = _graph_precision(path.name)
        if precision:
            shutil.copy2(path, staging / path.name)
            found.add(precision)
    if "fp32" not in found:
        shutil.rmtree(staging)
        raise UserError(_("The folder {folder} has no full-precision ONNX files for {name}.",
                          folder=folder, name=name),
                        _("Pick the folder that holds the onnx subfolder, or export with: describe-screen models "
                          "export {name}.",
                          name=name))
    copy_support_files(folder, staging)
    return _installed_model(publish(staging, models_dir / name, spec.bundle_info(),
                                           [p for p in IMPORTED if p in found]))


IMPORTED = ("fp32", "int8", "fp16")


def _graph_precision(filename: str) -> str:
    """"fp32", "int8" or "fp16" for graphs (and their external data) we run; "" for other quantisations."""
    stem = filename.split(".onnx")[0]
    suffix = stem.rsplit("_", 1)[-1]
    if suffix in ("int8", "fp16"):
        return suffix
    return "" if suffix in ("q4", "q4f16", "bnb4", "uint8", "quantized", "q8") else "fp32"


def default_for(task: str, models_dir: Path, machine: Machine | None = None,
                provider: str = "auto") -> InstalledModel | None:
    """The best installed model that can do `task` and that this `machine` runs at speed (when none
    does, the one that needs least), or None when none can do it."""
    return choice(task, models_dir, machine, provider)[0]


def choice(task: str, models_dir: Path, machine: Machine | None = None, provider: str = "auto"
           ) -> tuple[InstalledModel | None, list[InstalledModel]]:
    """default_for's pick, and the better-ranked models it passed over because `machine` (this computer,
    with models.provider `provider`, when None) would run them too slowly."""
    able = [m for m in installed(models_dir) if task in m.tasks]
    if not any(m.speed for m in able):
        return (able[0] if able else None), []
    machine = machine or Machine.here(provider)
    fast = [m for m in able if machine.runs(m.speed)]
    chosen = fast[0] if fast else min(able, key=lambda m: (m.speed.get("cpu_cores", 0), m.speed.get("memory_gb", 0),
                                                           m.rank))
    return chosen, [m for m in able if m.rank < chosen.rank and m not in fast]
