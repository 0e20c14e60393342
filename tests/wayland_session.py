"""A real Wayland desktop for tests and benchmarks: headless sway on its own D-Bus session bus, with
xdg-desktop-portal(-wlr) and the accessibility bus activated on that bus as a user's session would.

sway refuses to run as root. An ordinary user cannot work here either: the daemon and the command
that sway's key bindings run must be the same user (the daemon's socket is private to its user), and
the test virtualenv's Python lives under /root, which other users cannot enter. So under root sway
alone runs in a new user namespace (`unshare --user`), where it is not root; everything runs with a
private XDG_RUNTIME_DIR. Every process started here, and every process the bus activated for it, is
ended by `close()`: they are found by that private runtime folder in their environment, so nothing
else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GTK_WINDOW = Path(__file__).resolve().parent / "gtk_window.py"
SYSTEM_PYTHON = "/usr/bin/python3"
PORTALS = Path("/usr/share/xdg-desktop-portal/portals")  # its PyGObject matches the system's GTK typelibs


class HeadlessDesktop:
    """A private session bus and a headless compositor; `env` is what a program in that session sees."""

    desktop = ""  # XDG_CURRENT_DESKTOP
    display = ""  # the compositor's Wayland socket name

    def __init__(self, portals: tuple[str, ...]) -> None:
        """`portals` names the portal back-ends the session offers (other installed ones stay unused)."""
        self.base = Path(tempfile.mkdtemp(prefix="dscreen-wl-"))
        self.runtime = self.base / "run"
        self.procs: list[subprocess.Popen] = []
        self.env = {
            **os.environ, "XDG_RUNTIME_DIR": str(self.runtime), "XDG_SESSION_TYPE": "wayland",
            "XDG_CURRENT_DESKTOP": self.desktop, "WAYLAND_DISPLAY": self.display, "GDK_BACKEND": "wayland",
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.runtime}/bus", "PYTHONPATH": str(ROOT),
            "XDG_DESKTOP_PORTAL_DIR": str(self.base / "portals"), "HOME": str(self.base / "home"),
            # describe-screen's own files for this session (the portal saves pictures under HOME too)
            "DESCRIBE_SCREEN_SOCKET": str(self.base / "daemon.sock"),
            "DESCRIBE_SCREEN_CONFIG": str(self.base / "config.toml"), "DESCRIBE_SCREEN_DATA": str(self.base / "data"),
        }
        # as in a desktop session, the test virtualenv is not on PATH: what the desktop runs must name it
        venv = Path(sys.executable).parent
        self.env["PATH"] = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p) != venv)
        for name in ("DISPLAY", "SWAYSOCK", "HYPRLAND_INSTANCE_SIGNATURE", "NO_AT_BRIDGE", "XDG_CONFIG_HOME"):
            self.env.pop(name, None)
        try:
            self.runtime.mkdir(mode=0o700)
            (self.base / "portals").mkdir()
            (self.base / "home").mkdir()
            for name in portals:
                shutil.copy(PORTALS / f"{name}.portal", self.base / "portals")
            self.bus("bus")
            self.compositor()
            self._wait_for(self.runtime / self.display, "the compositor's Wayland socket")
            self.started()
        except BaseException:
            self.close()
            raise

    def bus(self, name: str) -> str:
        """Start a D-Bus daemon listening in the runtime folder; returns its address."""
        address = f"unix:path={self.runtime}/{name}"
        self.start(["dbus-daemon", "--session", "--nofork", "--nosyslog", f"--address={address}"])
        self._wait_for(self.runtime / name, f"the D-Bus daemon {name}")
        return address

    def compositor(self) -> None:
        raise NotImplementedError

    def started(self) -> None:
        """What the session needs once the compositor runs."""


    def start(self, argv: list[str], **extra: str) -> subprocess.Popen:
        """Run a program inside the session, in a process group of its own, its output in a log."""
        with open(self.base / f"{Path(argv[0]).name}-{len(self.procs)}.log", "ab") as out:
            proc = subprocess.Popen(argv, env={**self.env, **extra}, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def run(self, argv: list[str], timeout: float = 60, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(argv, env={**self.env, **extra}, capture_output=True, text=True, timeout=timeout)

    def gtk_window(self, title: str, text: str, *buttons: str) -> subprocess.Popen:
        """A native GTK window; returns once it is shown and (where the desktop gives focus) active."""
        proc = subprocess.Popen([SYSTEM_PYTHON, str(GTK_WINDOW), title, text, *buttons], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        self.procs.append(proc)
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("ready"):
            raise RuntimeError("the GTK test window did not open")
        time.sleep(0.5)  # the compositor shows its next frame
        return proc

    def __enter__(self) -> HeadlessDesktop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        end_all(self.procs, f"XDG_RUNTIME_DIR={self.runtime}")
        shutil.rmtree(self.base, ignore_errors=True)

    def _wait_for(self, path: Path, what: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while not path.exists():
            if time.time() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"{what} did not appear: {self._logs()}")
            time.sleep(0.05)

    def _wait_glob(self, pattern: str, timeout: float = 60) -> Path:
        deadline = time.time() + timeout
        while not (found := sorted(self.runtime.glob(pattern))):
            if time.time() > deadline:
                raise RuntimeError(f"{pattern} did not appear: {self._logs()}")
            time.sleep(0.05)
        return found[0]

    def _logs(self) -> str:
        return "\n".join(f"{p.name}: {p.read_text(errors='replace')[-2000:]}" for p in self.base.glob("*.log"))


class HeadlessSway(HeadlessDesktop):
    """sway, headless with the pixman renderer, with PipeWire (xdg-desktop-portal-wlr will not start
    without it) and a virtual keyboard."""

    desktop, display = "sway", "wayland-1"

    def __init__(self, config: tuple[str, ...] | None = (), portals: tuple[str, ...] = ("wlr",)) -> None:
        """`config`: more lines for sway's config (key bindings); None: start as a login does, with the
        config sway finds itself (the user's, or the system's when the user has none)."""
        self.config = config
        super().__init__(portals)

    def compositor(self) -> None:
        argv = ["sway"]
        if self.config is not None:
            sway_config = self.base / "sway.conf"
            lines = ["output HEADLESS-1 resolution 1280x720", "default_border none", "xwayland disable", *self.config]
            sway_config.write_text("\n".join(lines) + "\n", encoding="utf-8")
            argv += ["--config", str(sway_config)]
        not_root = ["unshare", "--user"] if os.geteuid() == 0 else []  # sway refuses to run as root
        self.start([*not_root, *argv], WLR_BACKENDS="headless", WLR_LIBINPUT_NO_DEVICES="1", WLR_RENDERER="pixman")

    def started(self) -> None:
        self.env["SWAYSOCK"] = str(self._wait_glob("sway-ipc.*.sock"))
        self.start(["pipewire"])
        self._wait_for(self.runtime / "pipewire-0", "PipeWire's socket")
        # A seat without a keyboard gives no window the keyboard focus, so nothing would be focused:
        # a virtual keyboard stays plugged in for the session (it types F24 after a day).
        self.start(["wtype", "-s", "86400000", "-k", "F24"])


class HeadlessGnome(HeadlessDesktop):
    """GNOME Shell with a virtual monitor (mutter's headless back-end) and xdg-desktop-portal-gnome.

    GNOME Shell asks logind on the system bus at start; a container has no system bus, so a private
    D-Bus daemon stands in for it (logind is then simply absent, as GNOME Shell tolerates).
    """

    desktop, display = "GNOME", "wayland-0"

    def __init__(self) -> None:
        super().__init__(portals=("gnome", "gtk"))

    def compositor(self) -> None:
        self.env["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus("system_bus")
        # Without GDM, GNOME Shell puts up a "Screen Lock disabled" banner over the top of the screen,
        # covering whatever a test shows there: no screen lock, and no banners, in this session.
        for schema, key in (("org.gnome.desktop.screensaver", "lock-enabled"),
                            ("org.gnome.desktop.notifications", "show-banners")):
            done = self.run(["gsettings", "set", schema, key, "false"])
            assert done.returncode == 0, done.stderr
        self.start(["gnome-shell", "--headless", "--wayland", "--no-x11", "--virtual-monitor", "1280x720"])

    def answer_screenshots(self, answer: str) -> None:
        """What the user's answer to the desktop's question stores ("yes" for Allow, "no" for Deny):
        screenshots for programs outside a sandbox (app id "") in the portal's permission store. A
        headless desktop cannot show the question, so the test gives the answer this way."""
        done = self.run(["gdbus", "call", "--session", "--dest", "org.freedesktop.impl.portal.PermissionStore",
                         "--object-path", "/org/freedesktop/impl/portal/PermissionStore", "--method",
                         "org.freedesktop.impl.portal.PermissionStore.SetPermission",
                         "screenshot", "true", "screenshot", "", f"['{answer}']"])
        assert done.returncode == 0, done.stderr


def _end(pid: int, sig: int = signal.SIGTERM) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def processes_with(variable: str) -> list[int]:
    """Processes whose environment holds `variable` ("NAME=value"): what one test session started,
    including what its D-Bus activated, and nothing else on the machine."""
    marker, found = variable.encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def end_all(procs: list[subprocess.Popen], variable: str) -> None:
    """End `procs` (each in its own process group), then anything else carrying `variable`."""
    for proc in reversed(procs):
        _end(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    for pid in processes_with(variable):
        _end(pid)
    deadline = time.time() + 10
    while processes_with(variable) and time.time() < deadline:
        time.sleep(0.1)
    for pid in processes_with(variable):
        _end(pid, signal.SIGKILL)


CAPTURE = """
import json, sys
from describe_screen.capture import capture
for target in sys.argv[1:]:
    shot = capture(target)
    print(json.dumps({"size": shot.image.size, "origin": shot.origin, "title": shot.title,
                      "context": shot.context, "colours": len(shot.image.getcolors(1 << 16) or ())}))
"""


def captures(env: dict[str, str], *targets: str) -> list[dict]:
    """Capture `targets` in a fresh process with `env`, as the daemon of that session would (the
    accessibility library keeps its first bus for the life of a process)."""
    done = subprocess.run([sys.executable, "-c", CAPTURE, *targets], env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]
