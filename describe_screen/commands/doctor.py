"""`describe-screen doctor`: every part checked for real, each answer a sentence with what to fix.

"Available" is not "usable": onnxruntime-gpu lists CUDA on machines with no GPU, so the GPU check
opens a session and reports the provider it really got.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata, resources
from typing import TYPE_CHECKING

from describe_screen import i18n
from describe_screen.config import Config, config_path
from describe_screen.errors import UserError
from describe_screen.i18n import N_, _, ngettext

if TYPE_CHECKING:
    from describe_screen.models import InstalledModel
    from describe_screen.vlm.onnx import CudaLibraries

OK, NOTE, PROBLEM = "ok", "note", "problem"


@dataclass
class Check:
    part: str
    status: str
    says: str
    fix: str = ""

    def line(self) -> str:
        label = _({OK: N_("OK"), NOTE: N_("NOTE"), PROBLEM: N_("PROBLEM")}[self.status])
        return _("{label}: {part}: {says}", label=label, part=self.part, says=self.says) + (
            " " + _("To fix: {fix}", fix=self.fix) if self.fix else "")


def check_settings(config: Config) -> Check:
    path = config_path()
    if path.exists():
        return Check(_("Settings"), OK, _("Settings are valid, read from {path}.", path=path))
    return Check(_("Settings"), OK, _("Settings are valid, defaults (no file at {path}).", path=path))


def check_language(config: Config) -> Check:
    """Which language describe-screen speaks, and where that came from (the settings or the desktop)."""
    used = i18n.language()
    name = i18n.NAMES.get(used.code, used.code)
    if used.wanted:
        return Check(_("Language"), NOTE, _("{name}: {source} asks for {wanted}, which has no catalog yet "
                                            "(catalogs: {catalogs}).", name=name, source=used.source,
                                            wanted=used.wanted, catalogs=", ".join(i18n.shipped())),
                     _("Set general.language in {path} to one of: {catalogs}.", path=config_path(),
                       catalogs=", ".join(i18n.shipped())))
    return Check(_("Language"), OK, _("{name} ({code}), from {source}.", name=name, code=used.code,
                                      source=used.source))


def check_display(config: Config) -> Check:
    from describe_screen.capture import session

    if session.current().kind == "wayland":
        return check_wayland(config)
    if sys.platform.startswith("linux"):
        if not os.environ.get("DISPLAY"):
            wayland = " " + _("A Wayland session was found, but screen capture needs X11 or XWayland.") if (
                os.environ.get("WAYLAND_DISPLAY")) else ""
            return Check(_("Display"), PROBLEM, _("No X display is set.{wayland}", wayland=wayland),
                         _("Run describe-screen inside your desktop session, or try describe-screen demo, which "
                           "makes a virtual display."))
        from Xlib import display as xdisplay
        from Xlib.error import DisplayError

        try:
            xdisplay.Display().close()
        except DisplayError as exc:
            return Check(_("Display"), PROBLEM, _("The X display {DISPLAY} cannot be opened: {exc}.",
                                               DISPLAY=os.environ['DISPLAY'], exc=exc),
                         _("Check that the desktop session is running and DISPLAY is right."))
        return Check(_("Display"), OK, _("X display {DISPLAY} is open.", DISPLAY=os.environ['DISPLAY']))
    return Check(_("Display"), OK, _("Desktop of {platform}.", platform=sys.platform))


def check_wayland(config: Config) -> Check:
    """Which Wayland path is in use, and what the desktop gives or withholds."""
    from describe_screen.capture import _wayland, session

    now = session.current()
    how = _wayland.route(now, config.capture.wayland)
    capture = (_("Screen capture uses wlroots screencopy through grim, which needs no permission.")
               if how == "screencopy" else
               _("Screen capture uses the desktop's screenshot portal; the first time, the desktop asks you "
                 "to allow describe-screen to take screenshots: choose Allow."))
    windows = (_("Window outlines come from the compositor.") if now.compositor in ("sway", "hyprland")
               else _("This desktop does not tell programs where windows are, so 'window' describes the whole "
                      "screen and names the active window."))
    return Check(_("Display"), OK, _("This is {describe}, used through its own interfaces (not Xwayland). {capture} "
                                  "{windows} The pointer position is not available on Wayland: use the focus key "
                                  "to describe the focused object.",
                                  describe=now.describe(), capture=capture, windows=windows))


def check_focus(config: Config) -> Check:
    from describe_screen import atspi

    try:
        atspi.check()
    except UserError as exc:
        return Check(_("Focused object"), NOTE, _("The focus target cannot work. {problem}", problem=exc.problem),
                     exc.fix)
    return Check(_("Focused object"), OK, _("The focused object is read from the accessibility bus (AT-SPI)."))


def check_capture(config: Config) -> Check:
    from describe_screen.blank import describe_blank
    from describe_screen.capture import capture

    shot = capture("screen", wayland=config.capture.wayland)
    width, height = shot.image.size
    blank = describe_blank(shot.image)
    says = _("The screen was captured, {width} by {height} pixels.", width=width, height=height) + (
        f" {blank}" if blank else "")
    return Check(_("Screen capture"), OK, says)


def check_hotkeys(config: Config) -> Check:
    from describe_screen.capture import session
    from describe_screen.hotkeys import HotkeyListener
    from describe_screen.keys import spoken_action, spoken_hotkey

    bindings = {action: combo for action, combo in asdict(config.hotkeys).items() if combo}
    if session.current().kind == "wayland":
        return check_wayland_keys(bindings, session.current().compositor)
    listener = HotkeyListener(bindings, lambda action: None)
    listener.start()
    listener.stop()
    keys = ", ".join(f"{spoken_action(action)}: {spoken_hotkey(combo)}" for action, combo in bindings.items())
    return Check(_("Hotkeys"), OK, _("Hotkeys can be heard. {keys}.", keys=keys))


def check_pressing(config: Config) -> Check:
    """Which route presses the element explored (explore, then press), or why there is none yet."""
    from describe_screen import press

    try:
        route = press.route()
    except UserError as exc:
        return Check(_("Pressing"), NOTE, exc.problem, exc.fix)
    return Check(_("Pressing"), OK, _("Pressing the element explored uses {route}: the pointer moves to its centre "
                                   "and clicks, only when you press the key, after saying what it presses. "
                                   "Nothing leaves this computer.", route=_(route)) + " " + _(press.ALLOWED[route]))


def check_wayland_keys(bindings: dict[str, str], compositor: str) -> Check:
    """The keys this Wayland desktop really has: its shortcuts portal, or what its own settings bind."""
    from describe_screen import portal_keys, wayland_keys
    from describe_screen.keys import spoken_action

    if portal_keys.portal_version():
        return Check(_("Hotkeys"), OK, _("Hotkeys come from the desktop's global shortcuts portal, with press and "
                                      "release, so holding the ask key works. The desktop asks once which keys to "
                                      "use."))
    fix = _("Run: {program} keys install", program=wayland_keys.program())
    if compositor == "hyprland":
        fix = _("Add the lines that {program} keys show prints to ~/.config/hypr/hyprland.conf.",
                program=wayland_keys.program())
    found = wayland_keys.bound_keys(compositor)
    head = _("This Wayland desktop has no global shortcuts portal, so its own settings bind the keys.") + " " + _(
        wayland_keys.PRESS_TWICE)
    if found is None:
        return Check(_("Hotkeys"), NOTE, _("{head} describe-screen cannot ask this desktop which keys are bound.",
                                        head=head), fix)
    wanted = [action for action in bindings if action in wayland_keys.COMMANDS]
    missing = [spoken_action(action) for action in wanted if action not in found]
    said = "; ".join(f"{spoken_action(action)}: {key.keys}" for action, key in found.items())
    lost = sorted({key.program for key in found.values() if not key.runnable})
    if lost:
        return Check(_("Hotkeys"), PROBLEM, _("{head} The bound keys run {items}, which the desktop may not find, so "
                                           "they may do nothing.",
                                           head=head, items=', '.join(lost)),
                     _("{fix} (it binds them to the full path).", fix=fix))
    if not found:
        return Check(_("Hotkeys"), NOTE, _("{head} No describe-screen key is bound yet.", head=head), fix)
    if missing:
        return Check(_("Hotkeys"), NOTE, _("{head} Bound: {said}. Not bound: {items}.",
                                        head=head, said=said, items=', '.join(missing)), fix)
    return Check(_("Hotkeys"), OK, _("{head} Bound: {said}.", head=head, said=said))


def check_speech(config: Config) -> Check:
    from describe_screen.speech import Speaker

    speaker = Speaker(config.speech)
    try:
        braille = speaker.braille()
        braille = " " + _("Answers are also shown on the {braille}.", braille=braille) if braille else ""
        return Check(_("Speech"), OK, _("{reason} Speech works with {driver}.{braille}",
                                     reason=speaker.reason, driver=speaker.driver().rstrip("."), braille=braille))
    finally:
        speaker.close()


def check_onnxruntime(config: Config) -> Check:
    """Which onnxruntime package, what it lists, and what a real session runs on."""
    packages = [name for name in ("onnxruntime-gpu", "onnxruntime") if _installed(name)]
    if not packages:
        return Check(_("Model runtime"), PROBLEM, _("onnxruntime is not installed."),
                     _("Reinstall describe-screen with installer/install.sh."))
    import onnxruntime as ort

    if len(packages) == 2:
        return Check(_("Model runtime"), PROBLEM, _("Both onnxruntime and onnxruntime-gpu are installed; they "
                                                 "overwrite each other, so the GPU may be unusable."),
                     _("Run: pip uninstall -y onnxruntime onnxruntime-gpu, then pip install --no-deps "
                       "onnxruntime-gpu."))
    listed = ort.get_available_providers()
    from describe_screen.vlm import onnx

    onnx.preload_cuda()  # as the runtime does before its first CUDA session
    ort.set_default_logger_severity(4)  # the CUDA load failure is reported below in plain words
    probe = str(resources.files("describe_screen") / "data" / "probe.onnx")
    wanted = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in listed]
    used = ort.InferenceSession(probe, providers=wanted).get_providers()[0]
    ort.set_default_logger_severity(2)
    head = _("{package} {version} lists {providers}; a test session ran on {used}.", package=packages[0],
             version=ort.__version__, providers=", ".join(listed), used=used)
    if used == "CUDAExecutionProvider":
        return Check(_("Model runtime"), OK, _("{head} Models run on the GPU with CUDA.", head=head))
    if "CUDAExecutionProvider" in listed and not onnx.nvidia_driver():
        return Check(_("Model runtime"), OK, _("{head} There is no NVIDIA GPU driver, so models run on the CPU.",
                                            head=head))
    if "CUDAExecutionProvider" in listed:
        return Check(_("Model runtime"), NOTE, _("{head} CUDA is listed but could not start, so models run on the "
                                              "CPU.",
                                              head=head),
                     _("For the GPU, install an NVIDIA driver with CUDA 12 or 13 and cuDNN 9, as onnxruntime-gpu "
                       "needs."))
    return Check(_("Model runtime"), OK, _("{head} Models run on the CPU.", head=head))


def check_gpu(config: Config) -> Check:
    """Which CUDA and cuDNN libraries were loaded, and from where; or exactly which one is missing."""
    import onnxruntime as ort

    from describe_screen.vlm import onnx

    listed = "CUDAExecutionProvider" in ort.get_available_providers()
    return gpu_check(listed, onnx.nvidia_driver(), onnx.preload_cuda())


def gpu_check(listed: bool, driver: bool, libraries: CudaLibraries) -> Check:
    """The GPU line from the facts: CUDA in this onnxruntime build, an NVIDIA driver, the libraries found."""
    if not driver:
        return Check(_("GPU"), OK, _("No NVIDIA GPU driver was found, so no CUDA library was loaded; models run on "
                                  "the CPU."))
    if not listed:
        return Check(_("GPU"), NOTE, _("An NVIDIA GPU driver is present, but this onnxruntime has no CUDA support, "
                                    "so models run on the CPU."),
                     _("Run the installer again: with an NVIDIA GPU it installs "
                                                 "onnxruntime-gpu with its CUDA and cuDNN libraries."))
    loaded = "; ".join(_("{name} from {where}", name=name, where=where)
                       for name, where in libraries.found.items() if where)
    if libraries.missing:
        missing = ", ".join(libraries.missing)
        return Check(_("GPU"), NOTE, _("An NVIDIA GPU driver is present, but these CUDA libraries were not found: "
                                       "{missing}, so CUDA cannot start.", missing=missing) + (
                         " " + _("Loaded: {loaded}.", loaded=loaded) if loaded else ""),
                     _("Install them with: pip install \"onnxruntime-gpu[cuda,cudnn]\", or run the installer "
                       "again."))
    return Check(_("GPU"), OK, _("CUDA and cuDNN libraries loaded: {loaded}.", loaded=loaded))


def check_text_reader(config: Config) -> Check:
    from describe_screen import language, scripts
    from describe_screen.ocr import TextRecognizer

    reader = TextRecognizer(provider=config.models.provider, threads=config.models.threads,
                            models_dir=config.models_dir())
    reader.warm_up()
    found = scripts.installed(config.models_dir())
    said = _("The text reader is ready, running on {provider}. It reads {scripts}.", provider=reader.provider(),
             scripts=_(scripts.BUNDLED))
    said += "".join(" " + _("With {name} it also reads {scripts}.", name=name,
                            scripts=_(scripts.SCRIPT_MODELS[name].says)) for name in found)
    desktop = language.user_language()
    wanted = scripts.FOR_LANGUAGE.get(desktop)
    if wanted and wanted not in found:
        return Check(_("Text reader"), NOTE, said + " " + _("Text in {language} needs another recogniser.",
                                                             language=language.spoken_name(desktop)),
                     _("Install it with: describe-screen models install {name}", name=wanted))
    if desktop in scripts.Alphabets(reader.characters(), "").lacking:  # no recogniser to install reads it
        return Check(_("Text reader"), NOTE, said + " " + _(
            "It cannot read all the letters of {language}: text in {language} is left out, never read wrongly.",
            language=language.spoken_name(desktop)))
    return Check(_("Text reader"), OK, said)


def check_models(config: Config) -> Check:
    from describe_screen import models, vlm

    folder = config.models_dir()
    found = models.installed(folder)
    machine = models.Machine.here(config.models.provider)
    if not found:
        return Check(_("Vision models"), NOTE, _("No vision model is installed in {folder}; descriptions use the "
                                              "text reader.",
                                              folder=folder),
                     _("For descriptions of pictures and free questions: {install_hint}",
                                  install_hint=models.install_hint(vlm.ASK, machine=machine)))
    names = ", ".join(m.name for m in found)
    chosen = []
    for task, uses, reader in ((vlm.CAPTION_BRIEF, N_("describe uses {model}"), N_("describe uses the text reader")),
                               (vlm.ASK, N_("ask uses {model}"), N_("ask uses the text reader"))):
        bundle, passed_over = models.choice(task, folder, machine)
        chosen.append(_(uses, model=_in_use(config, bundle)) if bundle else _(reader))
        chosen += [_("{name} is installed but needs {needs}, and this computer has {has}", name=m.name,
                     needs=models.needs(m.speed), has=machine.says()) for m in passed_over]
    return Check(_("Vision models"), OK, _("Installed: {names}. {items}.{decoders}",
                                        names=names, items='; '.join(chosen),
                                        decoders=_decoders(config, found)))


def _decoders(config: Config, found: list) -> str:
    """Which decoder each model runs here (the fast rebuilt one or its original graph, and why), opened
    as the daemon opens it: the speed figures in the README apply only to the fast one."""
    from describe_screen import vlm
    from describe_screen.commands.models import runtime_options

    said = []
    for model in found:
        try:
            in_use = getattr(vlm.load_model(model.path, runtime_options(config)), "decoder_in_use", None)
            if in_use:
                said.append(" " + _("{name} runs {decoder}.", name=model.name, decoder=in_use()))
        except UserError as exc:
            said.append(" " + _("{name} cannot be opened: {problem}", name=model.name, problem=exc.problem))
    return "".join(said)


def _in_use(config: Config, model: InstalledModel) -> str:
    """The model as it would run with these settings: family, precision and graph files."""
    from describe_screen import vlm
    from describe_screen.vlm.bundle import Bundle

    options = vlm.RuntimeOptions(provider=config.models.provider, precision=config.models.precision)
    try:
        opened = Bundle(model.path, options)
        return _("{name} (the {family} family, {precision} weights: {graphs})", name=model.name,
                 family=model.family, precision=opened.precision, graphs=", ".join(opened.graphs_in_use()))
    except UserError as exc:
        return _("{name}, which cannot run: {problem}", name=model.name, problem=exc)


def check_server(config: Config) -> Check:
    """Where captures go: nowhere, or the user's own model server, checked with a real image request."""
    if not config.models.server:
        return Check(_("Model server"), OK, _("No model server is set, so screen captures never leave this machine."))
    from describe_screen.model_server import ServerModel

    server = ServerModel.from_config(config)
    model = server.probe()
    how = _("encrypted (https)") if server.url.startswith("https:") else _("unencrypted (plain http)")
    return Check(_("Model server"), OK, _("Screen captures, screen text and questions will be sent to {host}, {how}, "
                                       "for the model {model}, which is there and takes images.",
                                       host=server.host, how=how, model=model))


def check_voice(config: Config) -> Check:
    try:
        from describe_screen.asr import SpeechRecognizer
    except ImportError:
        return Check(_("Voice questions"), NOTE, _("Speech recognition is not installed; questions can be typed."),
                     _("For spoken questions, run: pip install \"describe-screen[voice]\"."))
    from describe_screen.microphone import microphones

    recognizer = SpeechRecognizer(config.voice.asr_model, config.voice.asr_device, models_dir=config.models_dir())
    inputs = microphones()
    mic = ngettext("{n} microphone found.", "{n} microphones found.", len(inputs)) if inputs else _(
        "No microphone was found.")
    status = OK if inputs else NOTE
    return Check(_("Voice questions"), status, _("{rstrip}. {mic}",
                                              rstrip=recognizer.describe().rstrip('.'), mic=mic),
                 "" if inputs else _("Plug in a microphone, or ask by typing: describe-screen ask \"your question\"."))


def check_daemon(config: Config) -> Check:
    from describe_screen import ipc

    if ipc.daemon_running():
        return Check(_("Daemon"), OK, _("The daemon is running, listening at {socket_path}.",
                                     socket_path=ipc.socket_path()))
    return Check(_("Daemon"), NOTE, _("The daemon is not running."), _("Start it with: describe-screen daemon."))


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


CHECKS: list[tuple[str, Callable[[Config], Check]]] = [
    (N_("Settings"), check_settings), (N_("Language"), check_language), (N_("Display"), check_display),
    (N_("Screen capture"), check_capture), (N_("Focused object"), check_focus), (N_("Hotkeys"), check_hotkeys),
    (N_("Pressing"), check_pressing), (N_("Speech"), check_speech), (N_("GPU"), check_gpu),
    (N_("Model runtime"), check_onnxruntime),
    (N_("Text reader"), check_text_reader), (N_("Vision models"), check_models),
    (N_("Model server"), check_server), (N_("Voice questions"), check_voice),
    (N_("Daemon"), check_daemon),
]


def checks(config: Config) -> list[Check]:
    """Run every check; one that raises becomes a PROBLEM line, and the rest still run."""
    results = []
    for part, check in CHECKS:
        try:
            results.append(check(config))
        except UserError as exc:
            results.append(Check(_(part), PROBLEM, exc.problem, exc.fix))
        except Exception as exc:  # a broken part must not hide the report on the others
            results.append(Check(_(part), PROBLEM, _("The check failed: {kind}: {exc}.",
                                                  kind=type(exc).__name__, exc=exc),
                                 _("Reinstall with installer/install.sh; if it stays, report this line.")))
    return results


def run(config: Config, as_json: bool = False) -> int:
    results = checks(config)
    if as_json:
        print(json.dumps([asdict(c) for c in results], indent=2))
    else:
        for check in results:
            print(check.line(), flush=True)
        problems = sum(c.status == PROBLEM for c in results)
        print(ngettext("{n} problem found.", "{n} problems found.", problems) if problems else
              _("Everything needed works."))
    return 1 if any(c.status == PROBLEM for c in results) else 0
