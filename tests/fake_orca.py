"""A stand-in for Orca's D-Bus remote controller, run by the system's python3 (PyGObject) on a private bus.

Written from Orca's own documentation and source (README-REMOTE-CONTROLLER.md and
REMOTE-CONTROLLER-COMMANDS.md of 49.7 and 50.2, docs/remote-controller*.md of 51.beta, and
src/orca/dbus_service.py of each). Orca publishes its objects with dasbus, which hands each object's
introspection XML to GDBus (Gio.DBusConnection.register_object); this does the same, so GDBus itself
refuses a call to another path, interface or method, or with other argument types, exactly as it does
for the real Orca, and answers Introspect. A handler that raises becomes dasbus's error
"not.known.Error.<exception name>". Exported: the service object and the speech module, each with its
documented methods in full (51's D-Bus properties, which we never touch, are left out).

usage: python3 fake_orca.py ADDRESS VERSION CALLS [--refuse METHOD] [--false METHOD] [--no-speech-module]
VERSION is 49, 50 or 51. Each call is appended to the file CALLS as a JSON line [path, interface, method,
args]; "ready" is printed once the service name is owned. --refuse makes METHOD fail as Orca does when
the code behind it raises; --false makes it return False (the documented "did not succeed");
--no-speech-module leaves the speech module unpublished, as Orca does when publishing it fails.
"""

import json
import sys

from gi.repository import Gio, GLib

COMMANDS_49 = ("IncreaseRate", "DecreaseRate", "IncreasePitch", "DecreasePitch", "IncreaseVolume", "DecreaseVolume",
               "ChangeNumberStyle", "CycleCapitalizationStyle", "CyclePunctuationLevel", "CycleSynthesizer",
               "InterruptSpeech", "RefreshSpeech", "ShutdownSpeech", "StartSpeech", "ToggleIndentationAndJustification",
               "ToggleSpeech", "ToggleTableCellReadingMode", "ToggleVerbosity")
COMMANDS_50 = ("CycleCapitalizationStyle", "CyclePunctuationLevel", "CycleSynthesizer", "DecreasePitch", "DecreaseRate",
               "DecreaseVolume", "IncreasePitch", "IncreaseRate", "IncreaseVolume", "InterruptSpeech", "RefreshSpeech",
               "ShutdownSpeech", "StartSpeech", "ToggleSpeech")
COMMANDS_51 = ("CycleCapitalizationStyle", "CyclePunctuationLevel", "CycleSynthesizer", "CycleVoiceSet",
               "DecreasePitch", "DecreasePitchRange", "DecreaseRate", "DecreaseVolume", "IncreasePitch",
               "IncreasePitchRange", "IncreaseRate", "IncreaseVolume", "InterruptSpeech", "RefreshSpeech",
               "ShutdownSpeech", "StartSpeech", "ToggleSpeech")


def method(name: str, inputs: str = "", output: str = "") -> str:
    """One <method>: inputs as "name:type name:type", the return value as dasbus names it."""
    args = "".join(f'<arg direction="in" name="{arg.split(":")[0]}" type="{arg.split(":")[1]}"/>'
                   for arg in inputs.split())
    if output:
        args += f'<arg direction="out" name="return" type="{output}"/>'
    return f'<method name="{name}">{args}</method>'


# 49 and 50: service org.gnome.Orca.Service; every module shares the interface org.gnome.Orca.Module.
SERVICE_49 = "".join([
    method("ListModules", output="as"), method("ListCommands", output="a(ss)"), method("ShowPreferences", output="b"),
    method("PresentMessage", "message:s", "b"), method("GetVersion", output="s"), method("Quit", output="b")])
MODULE_49 = "".join([
    method("ExecuteRuntimeGetter", "getter_name:s", "v"), method("ExecuteRuntimeSetter", "setter_name:s value:v", "b"),
    method("ListCommands", output="a(ss)"), method("ListParameterizedCommands", output="a(ssa(ss))"),
    method("ListRuntimeGetters", output="a(ss)"), method("ListRuntimeSetters", output="a(ss)"),
    method("ExecuteCommand", "command_name:s notify_user:b", "b"),
    method("ExecuteParameterizedCommand", "command_name:s parameters:a{sv} notify_user:b", "v")])
# 51: service org.gnome.Orca1.Service; each module has its own interface, its commands called directly.
SERVICE_51 = "".join([
    method("DisplayMessage", "message:s persistent:b", "b"), method("GetVersion", output="s"),
    method("PresentMessage", "message:s", "b"), method("Quit", output="b"), method("ShowPreferences", output="b"),
    method("SpeakMessage", "message:s", "b")])
SPEECH_MANAGER_51 = "".join([method(name, "notify_user:b", "b") for name in COMMANDS_51] + [
    method("ActivateVoiceSet", "set_id:s notify_user:b", "b"),
    method("GetVoicesForLanguage", "language:s variant:s notify_user:b", "a(sss)")])

# version: (service, version string, {path: (interface, methods)}, the speech module's commands)
VERSIONS = {
    "49": ("org.gnome.Orca.Service", "49.7", {
        "/org/gnome/Orca/Service": ("org.gnome.Orca.Service", SERVICE_49),
        "/org/gnome/Orca/Service/SpeechAndVerbosityManager": ("org.gnome.Orca.Module", MODULE_49)}, COMMANDS_49),
    "50": ("org.gnome.Orca.Service", "50.2", {
        "/org/gnome/Orca/Service": ("org.gnome.Orca.Service", SERVICE_49),
        "/org/gnome/Orca/Service/SpeechManager": ("org.gnome.Orca.Module", MODULE_49)}, COMMANDS_50),
    "51": ("org.gnome.Orca1.Service", "51.beta", {
        "/org/gnome/Orca1/Service": ("org.gnome.Orca1.Service", SERVICE_51),
        "/org/gnome/Orca1/Service/SpeechManager": ("org.gnome.Orca1.SpeechManager", SPEECH_MANAGER_51)}, COMMANDS_51),
}


class SpeechServerGone(Exception):
    """What a refused call raises inside the stand-in (as Orca's code would when its speech server is gone)."""


def main() -> None:
    address, version, calls_file, *options = sys.argv[1:]
    service, version_string, objects, commands = VERSIONS[version]
    refuse = options[options.index("--refuse") + 1] if "--refuse" in options else ""
    false = options[options.index("--false") + 1] if "--false" in options else ""
    if "--no-speech-module" in options:
        objects = {path: spec for path, spec in objects.items() if path.count("/") == 4}
    flags = Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION
    connection = Gio.DBusConnection.new_for_address_sync(address, flags, None, None)
    modules = [path.rsplit("/", 1)[1] for path in objects if path.count("/") == 5]

    def answer(name: str, args: tuple) -> GLib.Variant | None:
        if name == refuse:
            raise SpeechServerGone("the speech server is not running")
        if name == "GetVersion":
            return GLib.Variant("(s)", (version_string,))
        if name == "ListModules":
            return GLib.Variant("(as)", (modules,))
        if name == "ExecuteCommand":  # Orca 49/50 answer False to a command the module does not have
            return GLib.Variant("(b)", (args[0] in commands and args[0] != false,))
        if name in commands or name in ("PresentMessage", "SpeakMessage", "DisplayMessage"):
            return GLib.Variant("(b)", (name != false,))
        raise NotImplementedError(f"the stand-in does not model {name}")

    def on_call(connection, sender, path, interface, name, parameters, invocation) -> None:
        args = parameters.unpack()
        with open(calls_file, "a") as calls:
            calls.write(json.dumps([path, interface, name, list(args)]) + "\n")
        try:
            invocation.return_value(answer(name, args))
        except Exception as exc:  # as dasbus's default error mapping names it
            invocation.return_dbus_error(f"not.known.Error.{type(exc).__name__}", str(exc))

    for path, (interface, methods) in objects.items():
        node = Gio.DBusNodeInfo.new_for_xml(f'<node><interface name="{interface}">{methods}</interface></node>')
        connection.register_object(path, node.interfaces[0], on_call, None, None)
    loop = GLib.MainLoop()

    def owned(*_) -> None:
        print("ready", flush=True)

    Gio.bus_own_name_on_connection(connection, service, Gio.BusNameOwnerFlags.NONE, owned, lambda *_: loop.quit())
    connection.connect("closed", lambda *_: loop.quit())
    loop.run()


if __name__ == "__main__":
    main()
