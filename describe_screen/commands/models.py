"""`describe-screen models list|install|export|import|verify|remove`: the model folder, in plain sentences."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from describe_screen import asr_models, models, scripts
from describe_screen.config import Config
from describe_screen.errors import UserError
from describe_screen.i18n import _

if TYPE_CHECKING:
    from describe_screen import vlm


def run(config: Config, args: argparse.Namespace) -> int:
    folder = config.models_dir()
    action = args.models_command
    if action in ("install", "import") or (action == "export" and not args.out):
        _make_folder(folder)
    if action == "list":
        present = {m.name: m for m in models.installed(folder)}
        broken = models.broken(folder)
        print(_("Models folder: {folder}", folder=folder))
        for spec in models.available():
            got = present.get(spec.name)
            state = (_("installed ({precisions}, {megabytes:.0f} MB: {graphs})", precisions=", ".join(got.precisions),
                       megabytes=got.size_bytes / 1e6, graphs=", ".join(got.graphs))
                     if got else _("installed but broken (see below)") if spec.name in broken
                     else _("not installed, about {megabytes} MB", megabytes=spec.size_mb))
            print(_("{name}: {family}, does {tasks}; {licence} licence; {state}.", name=spec.name, family=spec.family,
                    tasks=", ".join(t.replace("_", " ") for t in spec.tasks), licence=spec.licence, state=state))
        for name in sorted(set(present) - {spec.name for spec in models.available()}):
            print(_("{name}: installed, no manifest here.", name=name))
        speech = asr_models.installed(folder)
        for name, model in asr_models.SPEECH_MODELS.items():
            state = _("installed") if name in speech else _("not installed, about {megabytes} MB",
                                                                 megabytes=model.size_mb)
            print(_("{name}: {description}; MIT licence; {state}.", name=name, description=_(model.description),
                    state=state))
        readers = scripts.installed(folder)
        for name, reader in scripts.SCRIPT_MODELS.items():
            print(_("{name}: reads {scripts}; Apache-2.0 licence; {state}.", name=name, scripts=_(reader.says),
                    state=_("installed") if name in readers else _("not installed")))
        if broken:  # missing, cut or damaged files and unreadable manifests: never used, each with its fix
            print(_("Broken:"))
            for name, problem in broken.items():
                print(f"{name}: {problem}")
        return 0
    # speech recognisers and script recognisers: single pinned files or folders, no bundle
    extra = {**dict.fromkeys(asr_models.SPEECH_MODELS, asr_models), **dict.fromkeys(scripts.SCRIPT_MODELS, scripts)}
    if action in ("install", "remove") and args.name in extra:
        module = extra[args.name]
        if action == "remove":
            print(_("{name} was removed from {folder}.", name=args.name, folder=module.remove(args.name, folder)))
        else:
            print(_("It is in {folder}.", folder=module.install(args.name, folder, _teller())))
        return 0
    if action == "install":
        from describe_screen.download import install

        tell = _teller()
        model = install(models.manifest(args.name), folder, args.precision, tell=tell,
                        provider=config.models.provider, configured=config.models.precision)
        print(_("It is in {folder}, with {precisions} weights.", folder=model.path,
                precisions=", ".join(model.precisions)))
        _prepare(config, model.path)
        return 0
    if action == "export":
        from describe_screen.export import export_model

        out = args.out or folder / args.name
        print(_("Exporting {name} to {folder}. This takes several minutes.", name=args.name, folder=out), flush=True)
        path = export_model(args.name, out, args.precision, args.source)
        print(_("The model {name} is installed in {folder}.", name=args.name, folder=path))
        _prepare(config, path)
        return 0
    if action == "import":
        model = models.import_bundle(args.folder, args.name, folder)
        print(_("The model {name} is installed in {folder}, with {precisions} weights.", name=model.name,
                folder=model.path, precisions=", ".join(model.precisions)))
        _prepare(config, model.path)
        return 0
    if action == "verify":
        model = models.verify(args.name, folder)
        print(_("Every file of {name} is intact.", name=model.name))
        return 0
    path = models.remove(args.name, folder)
    print(_("The model {name} was removed from {folder}.", name=args.name, folder=path))
    return 0


def _prepare(config: Config, path: Path) -> None:
    """Open the new model as the daemon will and run one tiny pass: the optimised copies of its graphs
    (vlm/fused.py) are made now rather than at the first hotkey, and a model that cannot run here says
    so at once."""
    from describe_screen import vlm

    print(_("Preparing it for this computer."), flush=True)
    model = vlm.load_model(path, runtime_options(config))
    model.warm_up()
    if why := getattr(model, "fused_failure", str)():  # only families with a fused decoder have one
        print(_("This model's decoder could not be rewritten for speed: {why}. It will run, more slowly.", why=why))
    print(_("It is ready."))


def runtime_options(config: Config) -> vlm.RuntimeOptions:
    """How the daemon runs a model with these settings: install and doctor open it the same way."""
    from describe_screen import vlm

    return vlm.RuntimeOptions(provider=config.models.provider, threads=config.models.threads,
                              tiles=config.models.tiles, precision=config.models.precision)


def _teller() -> Callable[..., None]:
    """Print each progress sentence, and have a running daemon speak it too, so the start and the end of
    a long download are heard."""
    from describe_screen import ipc

    speak = ipc.daemon_running()

    def tell(text: str, installed: bool = False) -> None:
        print(text, flush=True)
        if speak:
            with contextlib.suppress(OSError, UserError):  # the daemon went away: the printed line stands
                if installed:  # the daemon picks its models again, so the next request can use this one
                    ipc.Client(timeout=10).request({"cmd": "models_changed"})
                ipc.Client(timeout=10).request({"cmd": "say", "text": text})

    return tell


def _make_folder(folder: Path) -> None:
    """The models folder must exist before anything is written into it; say so plainly if it cannot."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(_("The models folder {folder} cannot be created: {reason}.",
                          folder=folder, reason=exc.strerror or exc),
                        _("Set models.dir in the settings file to a folder you can write to, or check the folders "
                          "above it.")) from exc
