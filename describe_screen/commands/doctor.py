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

from describe_screen.config import Config, config_path
from describe_screen.errors import UserError

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
        label = {OK: "OK", NOTE: "NOTE", PROBLEM: "PROBLEM"}[self.status]
        return f"{label}: {self.part}: {self.says}" + (f" To fix: {self.fix}" if self.fix else "")


def check_settings(config: Config) -> Check:
    path = config_path()
    where = f"read from {path}" if path.exists() else f"defaults (no file at {path})"
    return Check("Settings", OK, f"Settings are valid, {where}.")


def check_display(config: Config) -> Check:
    from describe_screen.capture import session

    if session.current().kind == "wayland":
        return check_wayland(config)
    if sys.platform.startswith("linux"):
        if not os.environ.get("DISPLAY"):
            wayland = " A Wayland session was found, but screen capture needs X11 or XWayland." if os.environ.get(
                "WAYLAND_DISPLAY") else ""
            return Check("Display", PROBLEM, f"No X display is set.{wayland}",
                         "Run describe-screen inside your desktop session, or try describe-screen demo, "
                         "which makes a virtual display.")
        from Xlib import display as xdisplay
        from Xlib.error import DisplayError

        try:
            xdisplay.Display().close()
        except DisplayError as exc:
            return Check("Display", PROBLEM, f"The X display {os.environ['DISPLAY']} cannot be opened: {exc}.",
                         "Check that the desktop session is running and DISPLAY is right.")
        return Check("Display", OK, f"X display {os.environ['DISPLAY']} is open.")
    return Check("Display", OK, f"Desktop of {sys.platform}.")


def check_wayland(config: Config) -> Check:
    """Which Wayland path is in use, and what the desktop gives or withholds."""
    from describe_screen.capture import _wayland, session

    now = session.current()
    how = _wayland.route(now, config.capture.wayland)
    capture = ("Screen capture uses wlroots screencopy through grim, which needs no permission." if how == "screencopy"
               else "Screen capture uses the desktop's screenshot portal; the first time, the desktop asks you "
                    "to allow describe-screen to take screenshots: choose Allow.")
    windows = ("Window outlines come from the compositor." if now.compositor in ("sway", "hyprland")
               else "This desktop does not tell programs where windows are, so 'window' describes the whole "
                    "screen and names the active window.")
    return Check("Display", OK, f"This is {now.describe()}, used through its own interfaces (not Xwayland). "
                 f"{capture} {windows} The pointer position is not available on Wayland: use the focus key "
                 "to describe the focused object.")


def check_focus(config: Config) -> Check:
    from describe_screen import atspi

    try:
        atspi.check()
    except UserError as exc:
        return Check("Focused object", NOTE, f"The focus target cannot work. {exc.problem}", exc.fix)
    return Check("Focused object", OK, "The focused object is read from the accessibility bus (AT-SPI).")


def check_capture(config: Config) -> Check:
    from describe_screen.blank import describe_blank
    from describe_screen.capture import capture

    shot = capture("screen", wayland=config.capture.wayland)
    width, height = shot.image.size
    blank = describe_blank(shot.image)
    says = f"The screen was captured, {width} by {height} pixels." + (f" {blank}" if blank else "")
    return Check("Screen capture", OK, says)


def check_hotkeys(config: Config) -> Check:
    from describe_screen.capture import session
    from describe_screen.hotkeys import HotkeyListener
    from describe_screen.keys import spoken_hotkey

    bindings = {action: combo for action, combo in asdict(config.hotkeys).items() if combo}
    if session.current().kind == "wayland":
        return check_wayland_keys(bindings, session.current().compositor)
    listener = HotkeyListener(bindings, lambda action: None)
    listener.start()
    listener.stop()
    keys = ", ".join(f"{action.replace('_', ' ')}: {spoken_hotkey(combo)}" for action, combo in bindings.items())
    return Check("Hotkeys", OK, f"Hotkeys can be heard. {keys}.")


def check_pressing(config: Config) -> Check:
    """Which route presses the element explored (explore, then press), or why there is none yet."""
    from describe_screen import press

    try:
        route = press.route()
    except UserError as exc:
        return Check("Pressing", NOTE, exc.problem, exc.fix)
    return Check("Pressing", OK, f"Pressing the element explored uses {route}: the pointer moves to its centre and "
                 "clicks, only when you press the key, after saying what it presses. Nothing leaves this computer. "
                 + press.ALLOWED[route])


def check_wayland_keys(bindings: dict[str, str], compositor: str) -> Check:
    """The keys this Wayland desktop really has: its shortcuts portal, or what its own settings bind."""
    from describe_screen import portal_keys, wayland_keys

    if portal_keys.portal_version():
        return Check("Hotkeys", OK, "Hotkeys come from the desktop's global shortcuts portal, with press and "
                     "release, so holding the ask key works. The desktop asks once which keys to use.")
    fix = f"Run: {wayland_keys.program()} keys install"
    if compositor == "hyprland":
        fix = f"Add the lines that {wayland_keys.program()} keys show prints to ~/.config/hypr/hyprland.conf."
    found = wayland_keys.bound_keys(compositor)
    head = f"This Wayland desktop has no global shortcuts portal, so its own settings bind the keys. " \
           f"{wayland_keys.PRESS_TWICE}"
    if found is None:
        return Check("Hotkeys", NOTE, f"{head} describe-screen cannot ask this desktop which keys are bound.", fix)
    wanted = [action for action in bindings if action in wayland_keys.COMMANDS]
    missing = [action.replace("_", " ") for action in wanted if action not in found]
    said = "; ".join(f"{action.replace('_', ' ')}: {key.keys}" for action, key in found.items())
    lost = sorted({key.program for key in found.values() if not key.runnable})
    if lost:
        return Check("Hotkeys", PROBLEM, f"{head} The bound keys run {', '.join(lost)}, which the desktop may not "
                     "find, so they may do nothing.", f"{fix} (it binds them to the full path).")
    if not found:
        return Check("Hotkeys", NOTE, f"{head} No describe-screen key is bound yet.", fix)
    if missing:
        return Check("Hotkeys", NOTE, f"{head} Bound: {said}. Not bound: {', '.join(missing)}.", fix)
    return Check("Hotkeys", OK, f"{head} Bound: {said}.")


def check_speech(config: Config) -> Check:
    from describe_screen.speech import Speaker

    speaker = Speaker(config.speech)
    try:
        braille = speaker.braille()
        braille = f" Answers are also shown on the {braille}." if braille else ""
        return Check("Speech", OK, f"{speaker.reason} Speech works with {speaker.driver()}.{braille}")
    finally:
        speaker.close()


def check_onnxruntime(config: Config) -> Check:
    """Which onnxruntime package, what it lists, and what a real session runs on."""
    packages = [name for name in ("onnxruntime-gpu", "onnxruntime") if _installed(name)]
    if not packages:
        return Check("Model runtime", PROBLEM, "onnxruntime is not installed.",
                     "Reinstall describe-screen with installer/install.sh.")
    import onnxruntime as ort

    if len(packages) == 2:
        return Check("Model runtime", PROBLEM, "Both onnxruntime and onnxruntime-gpu are installed; they overwrite "
                     "each other, so the GPU may be unusable.",
                     "Run: pip uninstall -y onnxruntime onnxruntime-gpu, then pip install --no-deps onnxruntime-gpu.")
    listed = ort.get_available_providers()
    from describe_screen.vlm import onnx

    onnx.preload_cuda()  # as the runtime does before its first CUDA session
    ort.set_default_logger_severity(4)  # the CUDA load failure is reported below in plain words
    probe = str(resources.files("describe_screen") / "data" / "probe.onnx")
    wanted = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in listed]
    used = ort.InferenceSession(probe, providers=wanted).get_providers()[0]
    ort.set_default_logger_severity(2)
    head = f"{packages[0]} {ort.__version__} lists {', '.join(listed)}; a test session ran on {used}."
    if used == "CUDAExecutionProvider":
        return Check("Model runtime", OK, f"{head} Models run on the GPU with CUDA.")
    if "CUDAExecutionProvider" in listed and not onnx.nvidia_driver():
        return Check("Model runtime", OK, f"{head} There is no NVIDIA GPU driver, so models run on the CPU.")
    if "CUDAExecutionProvider" in listed:
        return Check("Model runtime", NOTE, f"{head} CUDA is listed but could not start, so models run on the CPU.",
                     "For the GPU, install an NVIDIA driver with CUDA 12 or 13 and cuDNN 9, as onnxruntime-gpu needs.")
    return Check("Model runtime", OK, f"{head} Models run on the CPU.")


def check_gpu(config: Config) -> Check:
    """Which CUDA and cuDNN libraries were loaded, and from where; or exactly which one is missing."""
    import onnxruntime as ort

    from describe_screen.vlm import onnx

    listed = "CUDAExecutionProvider" in ort.get_available_providers()
    return gpu_check(listed, onnx.nvidia_driver(), onnx.preload_cuda())


def gpu_check(listed: bool, driver: bool, libraries: CudaLibraries) -> Check:
    """The GPU line from the facts: CUDA in this onnxruntime build, an NVIDIA driver, the libraries found."""
    if not driver:
        return Check("GPU", OK, "No NVIDIA GPU driver was found, so no CUDA library was loaded; models run on the CPU.")
    if not listed:
        return Check("GPU", NOTE, "An NVIDIA GPU driver is present, but this onnxruntime has no CUDA support, so "
                     "models run on the CPU.", "Run the installer again: with an NVIDIA GPU it installs "
                     "onnxruntime-gpu with its CUDA and cuDNN libraries.")
    loaded = "; ".join(f"{name} from {where}" for name, where in libraries.found.items() if where)
    if libraries.missing:
        missing = ", ".join(libraries.missing)
        return Check("GPU", NOTE, f"An NVIDIA GPU driver is present, but these CUDA libraries were not found: "
                     f"{missing}, so CUDA cannot start." + (f" Loaded: {loaded}." if loaded else ""),
                     "Install them with: pip install \"onnxruntime-gpu[cuda,cudnn]\", or run the installer again.")
    return Check("GPU", OK, f"CUDA and cuDNN libraries loaded: {loaded}.")


def check_text_reader(config: Config) -> Check:
    from describe_screen import language, scripts
    from describe_screen.ocr import TextRecognizer

    reader = TextRecognizer(provider=config.models.provider, threads=config.models.threads,
                            models_dir=config.models_dir())
    reader.warm_up()
    found = scripts.installed(config.models_dir())
    also = "".join(f" With {name} it also reads {scripts.SCRIPT_MODELS[name].says}." for name in found)
    said = f"The text reader is ready, running on {reader.provider()}. It reads {scripts.BUNDLED}.{also}"
    wanted = scripts.FOR_LANGUAGE.get(language.user_language())
    if wanted and wanted not in found:
        return Check("Text reader", NOTE, f"{said} Text in {language.name(language.user_language())} needs "
                     "another recogniser.", f"Install it with: describe-screen models install {wanted}")
    return Check("Text reader", OK, said)


def check_models(config: Config) -> Check:
    from describe_screen import models, vlm

    folder = config.models_dir()
    found = models.installed(folder)
    machine = models.Machine.here(config.models.provider)
    if not found:
        return Check("Vision models", NOTE, f"No vision model is installed in {folder}; descriptions use the text "
                     "reader.", "For descriptions of pictures and free questions: "
                     f"{models.install_hint(vlm.ASK, machine=machine)}")
    names = ", ".join(m.name for m in found)
    chosen = []
    for task, label in ((vlm.CAPTION_BRIEF, "describe"), (vlm.ASK, "ask")):
        bundle, passed_over = models.choice(task, folder, machine)
        chosen.append(f"{label} uses {_in_use(config, bundle) if bundle else 'the text reader'}")
        chosen += [f"{m.name} is installed but needs {models.needs(m.speed)}, and this computer has "
                   f"{machine.says()}" for m in passed_over]
    return Check("Vision models", OK, f"Installed: {names}. {'; '.join(chosen)}.{_decoders(config, found)}")


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
                said.append(f" {model.name} runs {in_use()}.")
        except UserError as exc:
            said.append(f" {model.name} cannot be opened: {exc.problem}")
    return "".join(said)


def _in_use(config: Config, model: InstalledModel) -> str:
    """The model as it would run with these settings: family, precision and graph files."""
    from describe_screen import vlm
    from describe_screen.vlm.bundle import Bundle

    options = vlm.RuntimeOptions(provider=config.models.provider, precision=config.models.precision)
    try:
        opened = Bundle(model.path, options)
        return (f"{model.name} (the {model.family} family, {opened.precision} weights: "
                f"{', '.join(opened.graphs_in_use())})")
    except UserError as exc:
        return f"{model.name}, which cannot run: {exc}"


def check_server(config: Config) -> Check:
    """Where captures go: nowhere, or the user's own model server, checked with a real image request."""
    if not config.models.server:
        return Check("Model server", OK, "No model server is set, so screen captures never leave this machine.")
    from describe_screen.model_server import ServerModel

    server = ServerModel.from_config(config)
    model = server.probe()
    how = "encrypted (https)" if server.url.startswith("https:") else "unencrypted (plain http)"
    return Check("Model server", OK, f"Screen captures, screen text and questions will be sent to {server.host}, "
                 f"{how}, for the model {model}, which is there and takes images.")


def check_voice(config: Config) -> Check:
    try:
        from describe_screen.asr import SpeechRecognizer
    except ImportError:
        return Check("Voice questions", NOTE, "Speech recognition is not installed; questions can be typed.",
                     'For spoken questions, run: pip install "describe-screen[voice]".')
    from describe_screen.microphone import microphones

    recognizer = SpeechRecognizer(config.voice.asr_model, config.voice.asr_device, models_dir=config.models_dir())
    inputs = microphones()
    mic = f"{len(inputs)} microphone(s) found." if inputs else "No microphone was found."
    status = OK if inputs else NOTE
    return Check("Voice questions", status, f"{recognizer.describe().rstrip('.')}. {mic}",
                 "" if inputs else "Plug in a microphone, or ask by typing: describe-screen ask \"your question\".")


def check_daemon(config: Config) -> Check:
    from describe_screen import ipc

    if ipc.daemon_running():
        return Check("Daemon", OK, f"The daemon is running, listening at {ipc.socket_path()}.")
    return Check("Daemon", NOTE, "The daemon is not running.", "Start it with: describe-screen daemon.")


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


CHECKS: list[tuple[str, Callable[[Config], Check]]] = [
    ("Settings", check_settings), ("Display", check_display), ("Screen capture", check_capture),
    ("Focused object", check_focus), ("Hotkeys", check_hotkeys), ("Pressing", check_pressing),
    ("Speech", check_speech), ("GPU", check_gpu),
    ("Model runtime", check_onnxruntime),
    ("Text reader", check_text_reader), ("Vision models", check_models),
    ("Model server", check_server), ("Voice questions", check_voice),
    ("Daemon", check_daemon),
]


def checks(config: Config) -> list[Check]:
    """Run every check; one that raises becomes a PROBLEM line, and the rest still run."""
    results = []
    for part, check in CHECKS:
        try:
            results.append(check(config))
        except UserError as exc:
            results.append(Check(part, PROBLEM, exc.problem, exc.fix))
        except Exception as exc:  # a broken part must not hide the report on the others
            results.append(Check(part, PROBLEM, f"The check failed: {type(exc).__name__}: {exc}.",
                                 "Reinstall with installer/install.sh; if it stays, report this line."))
    return results


def run(config: Config, as_json: bool = False) -> int:
    results = checks(config)
    if as_json:
        print(json.dumps([asdict(c) for c in results], indent=2))
    else:
        for check in results:
            print(check.line(), flush=True)
        problems = sum(c.status == PROBLEM for c in results)
        print(f"{problems} problem(s) found." if problems else "Everything needed works.")
    return 1 if any(c.status == PROBLEM for c in results) else 0
