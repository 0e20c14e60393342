"""The `describe-screen` command: talks to a running daemon, or does the job itself when none runs.

Only the standard library is imported at start, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from describe_screen import __version__, i18n
from describe_screen.errors import UserError
from describe_screen.i18n import N_, _
from describe_screen.options import COMMAND_TARGETS, DETAILS, PRECISIONS

# argparse's own messages (Python 3.11's argparse.py) that a command line can bring out, quoted inside ours: marked
# here so that every catalog translates them; argparse looks each one up and fills in its %-placeholders itself.
ARGPARSE = (N_("argument %(argument_name)s: %(message)s"), N_("unrecognized arguments: %s"),
            N_("not allowed with argument %s"), N_("ignored explicit argument %r"),
            N_("the following arguments are required: %s"), N_("one of the arguments %s is required"),
            N_("expected one argument"), N_("expected at most one argument"), N_("expected at least one argument"),
            N_("ambiguous option: %(option)s could match %(matches)s"), N_("unexpected option string: %s"),
            N_("invalid %(type)s value: %(value)r"), N_("invalid choice: %(value)r (choose from %(choices)s)"))


class UsageError(UserError):
    """A command line argparse could not read: exit code 2, as argparse's own."""


class _Help(argparse.HelpFormatter):
    """argparse's help, its "usage:" in the user's language too."""

    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, _("usage: ") if prefix is None else prefix)


class _Parser(argparse.ArgumentParser):
    """argparse with its own words in the user's language: the section titles, -h's help, and a command line it
    cannot read said as a plain error with what to do, argparse's detail quoted inside it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(formatter_class=_Help, add_help=False, **kwargs)
        self._positionals.title = _("positional arguments")
        self._optionals.title = _("options")
        self.add_argument("-h", "--help", action="help", help=_("show this help and exit"))

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        """What argparse says of a command line it cannot read in the user's language too: it looks its messages
        up through its module's `_` (gettext's global domain, which is not ours) while it parses."""
        looked_up, argparse._ = argparse._, i18n.unformatted  # type: ignore[attr-defined]
        try:
            return super().parse_known_args(args, namespace)
        finally:
            argparse._ = looked_up  # type: ignore[attr-defined]

    def error(self, message: str) -> NoReturn:
        raise UsageError(_("This command line was not understood ({message}).", message=message),
                         _("{prog} --help says what it takes.", prog=self.prog))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="describe-screen",
        description=_("Press a key, hear what is on the screen. Everything runs on this computer."),
    )
    parser.add_argument("--version", action="version", version=f"describe-screen {__version__}",
                        help=_("say the version and exit"))
    parser.add_argument("--config", type=Path, help=_("settings file to use instead of the usual one"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    daemon = sub.add_parser("daemon", help=_("run in the background: hotkeys, speech, the local socket"))
    daemon.add_argument("--speech-file", type=Path, help=_("record speech to this WAV instead of playing it"))
    daemon.add_argument("--no-hotkeys", action="store_true", help=_("serve only the command line"))

    def job(name: str, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=_(text))
        p.add_argument("--target", choices=COMMAND_TARGETS,
                       help=_("what to capture (default: the settings file's capture.target)"))
        p.add_argument("--image", type=Path, help=_("describe this image file instead of the screen"))
        p.add_argument("--json", action="store_true", help=_("print the result as JSON"))
        p.add_argument("--speech-file", type=Path, help=_("record speech to this WAV (runs without the daemon)"))
        return p

    job("describe", N_("describe the screen, a window, the area under the pointer, or an image")).add_argument(
        "--detail", choices=DETAILS, help=_("how much to say (default: describe.detail)"))
    job("read", N_("read all the text, in reading order"))
    ask = job("ask", N_("ask a question about the last capture (or a new one)"))
    ask.add_argument("question", nargs="?", default="", help=_("the question, in words"))
    ask.add_argument("--audio", type=Path, help=_("a WAV file holding the spoken question"))
    for name, text in (("repeat", N_("say the last result again")), ("stop", N_("stop speaking now")),
                       ("status", N_("what the daemon is doing")),
                       ("copy", N_("copy the last result to the clipboard")),
                       ("listen", N_("start a spoken question; the next listen sends it (for desktop key bindings)"))):
        sub.add_parser(name, help=_(text)).add_argument("--json", action="store_true", help=_("print JSON"))

    from describe_screen.explore import MOVES

    explore = sub.add_parser("explore", help=_("move through the last capture element by element, find one, press it"))
    explore.add_argument("move", choices=(*MOVES, "find", *PRESSES),
                         help=_("where to move (next, next-button, below, ...), find WORDS, or press the element"))
    explore.add_argument("words", nargs="*", help=_("for find: the words to look for"))
    explore.add_argument("--json", action="store_true", help=_("print JSON"))

    doctor = sub.add_parser("doctor", help=_("check display, capture, hotkeys, speech, GPU and models"))
    doctor.add_argument("--json", action="store_true", help=_("print the checks as JSON"))
    demo = sub.add_parser("demo", help=_("a first run: describe the screen, or a sample window when there is none"))
    demo.add_argument("--speech-file", type=Path, help=_("where to save the speech (default: demo-speech.wav)"))

    from describe_screen.commands import keys

    keys.add_parser(sub)
    models = sub.add_parser("models", help=_("list, install, export, verify or remove vision models"))
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    msub.add_parser("list", help=_("models you can export, and the ones installed"))
    export = msub.add_parser("export", help=_("download (or take a local folder) and export a model to ONNX"))
    export.add_argument("name", help=_("a model name from `describe-screen models list`"))
    export.add_argument("--precision", choices=("auto", "all", "fp32", "fp16", "int8"), default="auto",
                        help=_("auto: fp32 and int8 (the CPU runs int8); all: adds fp16 for a GPU"))
    export.add_argument("--source", type=Path, help=_("a local folder holding the checkpoint (no download)"))
    export.add_argument("--out", type=Path, help=_("where to write the bundle (default: the models folder)"))
    install = msub.add_parser("install", help=_("download a model's published ONNX files (no export needed)"))
    install.add_argument("name", help=_("a model name from `describe-screen models list`"))
    install.add_argument("--precision", choices=PRECISIONS, default="auto",
                         help=_("auto: int8 on the CPU, fp16 when CUDA really works"))
    imported = msub.add_parser("import",
                               help=_("install a folder exported elsewhere (e.g. an onnx-community download)"))
    imported.add_argument("folder", type=Path)
    imported.add_argument("name", help=_("which known model it is, e.g. smolvlm-256m-instruct"))
    for name, text in (("verify", N_("check every file of an installed model")),
                       ("remove", N_("delete an installed model"))):
        msub.add_parser(name, help=_(text)).add_argument("name")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 0
        return run(args)
    except UserError as exc:
        print(f"describe-screen: {exc}", file=sys.stderr)
        _say_error(exc)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        return 130


def _say_error(exc: UserError) -> None:
    """Errors before the speaker exists are spoken too, when speech works at all."""
    from describe_screen.config import SpeechConfig
    from describe_screen.speech import Speaker

    try:
        speaker = Speaker(SpeechConfig())
    except UserError:  # no voice or no sound device: the printed line is all we can give
        return
    try:
        speaker.say(str(exc))
        speaker.wait_idle(30)
    finally:
        speaker.close()


def run(args: argparse.Namespace) -> int:
    from describe_screen import config as settings
    from describe_screen import i18n

    if args.config:
        os.environ["DESCRIBE_SCREEN_CONFIG"] = str(args.config)
    config = settings.load()
    i18n.use(config.general.language)
    if args.command == "daemon":
        from describe_screen.daemon import run as run_daemon

        return run_daemon(config, args.speech_file, hotkeys=not args.no_hotkeys)
    if args.command == "doctor":
        from describe_screen.commands.doctor import run as run_doctor

        return run_doctor(config, as_json=args.json)
    if args.command == "demo":
        from describe_screen.commands.demo import run as run_demo

        return run_demo(config, args.speech_file)
    if args.command == "models":
        from describe_screen.commands.models import run as run_models

        return run_models(config, args)
    if args.command == "keys":
        from describe_screen.commands.keys import run as run_keys

        return run_keys(config, args)
    return _daemon_command(config, args)


PRESSES = {"press": "click", "double-click": "double", "right-click": "right"}  # explore press -> click


def _request(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "explore" and args.move in PRESSES:
        return {"cmd": "activate", "click": PRESSES[args.move]}
    if args.command == "explore":
        return {"cmd": "explore", "move": args.move, "text": " ".join(args.words)}
    request: dict[str, Any] = {"cmd": args.command}
    for key in ("target", "detail", "question"):
        if getattr(args, key, None):
            request[key] = getattr(args, key)
    for key in ("image", "audio"):
        if getattr(args, key, None):
            # absolute for the daemon, but not resolved: a link is named as the link the user gave
            request[key] = os.path.abspath(Path(getattr(args, key)).expanduser())
    return request


def _daemon_command(config: Any, args: argparse.Namespace) -> int:
    """Send to the running daemon; without one, describe/read/ask run here and now."""
    from describe_screen import ipc

    request = _request(args)
    as_json = getattr(args, "json", False)
    speech_file = getattr(args, "speech_file", None)
    printer = _Printer(as_json)
    if speech_file is None:
        try:  # straight to the daemon: checking first and then connecting again could race a busy one
            return printer.finish(ipc.Client().request(request, printer.event))
        except ipc.NotRunning:
            pass
    if args.command in ("describe", "read", "ask"):
        final = _one_shot(config, request, speech_file, printer)
    elif args.command == "status":
        final = {"event": "done", "result": {"running": False}}
        if not as_json:
            print(_("No describe-screen daemon is running. Start it with: describe-screen daemon"))
            return 0
    else:
        raise UserError(_("No describe-screen daemon is running, so there is nothing to {command}.",
                          command=args.command),
                        _("Start it with: describe-screen daemon"))
    return printer.finish(final)


def _one_shot(config: Any, request: dict, speech_file: Path | None, printer: _Printer) -> dict:
    from describe_screen.daemon import Daemon
    from describe_screen.speech import Speaker, lost_speech_error

    speaker = Speaker(config.speech, speech_file)
    try:
        final = Daemon(config, speaker).handle(request, printer.event)
        printer.error_shown = final.get("event") == "error"  # the daemon's report_error printed it
        speaker.wait_idle()
    finally:
        speaker.close()
    if speaker.lost:  # the user did not hear the whole answer: say why, and exit non-zero
        error = lost_speech_error(speaker.lost)
        return {"event": "error", "problem": error.problem, "fix": error.fix}
    return final


STOPPED = 3  # exit code of a request the stop key or a newer request ended: not an answer, not an error


class _Printer:
    """Prints streamed text as it comes (a screen reader reads it too), or JSON once at the end.

    A reader that stops reading (`| head -1`) ends the printing quietly; the speech goes on.
    """

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.printed = False
        self.error_shown = False  # a one-shot run's error was already printed where it happened
        self._gone = False

    def event(self, event: dict) -> None:
        if self.as_json:
            return
        if event.get("event") == "text":
            self._write(event["text"])
            self.printed = True
        elif event.get("event") == "question":
            self._write(_("Question: {text}", text=event["text"]) + "\n")

    def finish(self, final: dict) -> int:
        result = final.get("result") if final.get("event") == "done" else None
        result = result if isinstance(result, dict) else {}
        stopped = bool(result.get("cancelled"))  # the stop key or a newer request ended it: no answer
        if self.as_json:
            self._write(json.dumps(final, ensure_ascii=False) + "\n")
            return STOPPED if stopped else 0 if final.get("event") == "done" else 1
        if final.get("event") == "error":
            if not self.error_shown:
                print(f"describe-screen: {final.get('problem', '')} {final.get('fix', '')}".rstrip(), file=sys.stderr)
            return 1
        if self.printed:
            self._write("\n")
        if stopped:
            print("describe-screen: " + _("Stopped."), file=sys.stderr)
            return STOPPED
        if not self.printed and result.get("text"):
            self._write(result["text"] + "\n")
        elif not self.printed and "busy" in result:
            self._write(_status_words(result) + "\n")
        return 0

    def _write(self, text: str) -> None:
        if self._gone:
            return
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            self._gone = True  # and Python's own flush at exit must not fail on the closed pipe again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _status_words(status: dict) -> str:
    said = (_("The daemon is running and working on: {busy}.", busy=status["busy"]) if status.get("busy") else
            _("The daemon is running and idle."))
    return said + (" " + _("Last result: {last}", last=status["last"]) if status.get("last") else "")
