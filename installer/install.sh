#!/usr/bin/env bash
# Install describe-screen from this source tree on Linux (apt, dnf, pacman) or macOS (Homebrew):
# system packages, a Python virtual environment, the package itself, optionally autostart at login,
# and finally a short demo. Every step prints what it does; a failure says what to do next.
# Running it again is safe and quick: whatever is already in place is left alone.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: installer/install.sh [--dev] [--autostart] [--no-run] [--model NAME]

  --dev         also install the tools for development and model export (pytest, ruff, torch)
  --autostart   start the describe-screen daemon at every login (systemd user service or launchd agent)
  --no-run      do not run the demo at the end
  --model NAME  also install a vision model, e.g. smolvlm-256m-instruct (describe-screen models list)

On Linux with an NVIDIA GPU (its driver is installed), the CUDA and cuDNN libraries onnxruntime-gpu needs
are installed too; without one, none of them is downloaded.

Environment: DESCRIBE_SCREEN_VENV  where to create the virtual environment (default: <repo>/.venv)
             DESCRIBE_SCREEN_PYTHON which Python to build it with (default: python3, 3.10 or newer)
EOF
}

DEV=0 AUTOSTART=0 RUN=1 MODEL=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dev) DEV=1 ;;
        --autostart) AUTOSTART=1 ;;
        --no-run) RUN=0 ;;
        --model=*) MODEL="${1#--model=}" ;;
        --model)
            [ $# -ge 2 ] || { usage >&2; printf '\nThe option --model needs a model name.\n' >&2; exit 2; }
            MODEL="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; printf '\nUnknown option %s.\n' "$1" >&2; exit 2 ;;
    esac
    shift
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DESCRIBE_SCREEN_VENV:-$REPO/.venv}"
VPY="$VENV/bin/python"
OS="$(uname -s)"
ARCH="$(uname -m)"

say() { printf '==> %s\n' "$*"; }
fail() {
    printf '\ndescribe-screen was not installed: %s\n' "$1" >&2
    printf 'What to do: %s\n' "$2" >&2
    exit 1
}

# ---------------------------------------------------------------- system packages

# Run a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        fail "installing system packages needs administrator rights, and sudo is not available." \
             "Run this installer as root, or install these packages yourself: ${MISSING[*]}"
    fi
}

pick_python() {
    local candidate
    for candidate in ${DESCRIBE_SCREEN_PYTHON:-} python3 python3.13 python3.12 python3.11 python3.10; do
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            PYTHON="$(command -v "$candidate")"
            return 0
        fi
    done
    PYTHON=""
}

# Each need is checked by trying the thing itself, not by package name, so a Python from pyenv or
# a self-built Xvfb counts as present. MISSING collects this system's package names for the gaps.
MISSING=()
need() {  # need <check command...> -- <package names...>
    local check=() names=()
    while [ "$1" != "--" ]; do check+=("$1"); shift; done
    shift
    names=("$@")
    if ! "${check[@]}" >/dev/null 2>&1; then
        MISSING+=("${names[@]}")
    fi
}
has_lib() { PATH="$PATH:/sbin:/usr/sbin" ldconfig -p 2>/dev/null | grep -q "$1"; }
python_can() { [ -n "$PYTHON" ] && "$PYTHON" -c "$1"; }

# Args: this system's package names for python, venv, tkinter, PortAudio, Xvfb, shellcheck, xprop (one
# argument that may name two packages), then the DejaVu and Liberation fonts the tests draw with, then
# Chromium and the X bitmap fonts (the text reader's corpus of real screens), then the C++ compiler
# that builds llama.cpp's server for the model-server tests, then a Java runtime that draws on an X
# display (not the headless one: the held-out corpus runs a Swing window), then git (the benchmarks
# compare against an earlier commit's code).
find_missing_linux() {
    pick_python
    if [ -z "$PYTHON" ]; then MISSING+=("$1"); fi
    need python_can 'import ensurepip, venv' -- "$2"
    need python_can 'import tkinter' -- "$3"
    need command -v espeak-ng -- espeak-ng
    need command -v xclip -- xclip
    need has_lib libportaudio.so.2 -- "$4"
    need command -v Xvfb -- "$5"
    need command -v xdotool -- xdotool
    # shellcheck disable=SC2086  # $7 may name two packages (xprop and xdpyinfo)
    need command -v xprop -- $7
    # describe-screen builds its own 4-bit kernel with the system C compiler where it is faster than
    # onnxruntime's: on processors with AVX-512 VNNI (elsewhere it would not be used, so none is installed)
    if grep -qw avx512_vnni /proc/cpuinfo 2>/dev/null; then
        need command -v cc -- gcc
    fi
    if [ "$DEV" -eq 1 ]; then  # what the tests use beyond the program itself
        need command -v shellcheck -- "$6"
        need command -v sox -- sox
        need command -v strace -- strace  # the no-network test watches the daemon's system calls
        need test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf -- "$8"
        need test -f /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf -- "$9"
        # the text reader's corpus: real web pages, GTK dialogs and terminals with a bitmap font
        need command -v chromium -- "${10}"
        need command -v zenity -- zenity
        need command -v xterm -- xterm
        need test -f /usr/share/fonts/X11/misc/6x13-ISO8859-1.pcf.gz -- "${11}"  # xterm -fn fixed
        need command -v cmake -- cmake
        need command -v g++ -- "${12}"
        need sh -c 'command -v java && ls /usr/lib/jvm/*/lib/libawt_xawt.so' -- "${13}"
        need command -v git -- "${14}"
    fi
}

# The focus target reads AT-SPI through the system's PyGObject; a Wayland session captures through grim
# (wlroots) or the screenshot portal. Tests run a headless sway with its portals, PipeWire (which
# xdg-desktop-portal-wlr needs), a GTK window and wtype. Args: this system's names for PyGObject with
# the Atspi typelib, grim, xdg-desktop-portal, then the test set: sway, wtype, the wlr and gtk portals,
# the GTK 3 typelib, PipeWire, the D-Bus daemon; then gsettings (GNOME key bindings) and, for the
# tests, GNOME's media-keys settings schema that the key bindings are written into, GNOME Shell and
# its portal (the tests run GNOME headless); last the GTK 4 and libadwaita typelibs.
# shellcheck disable=SC2086  # $1, $8 and ${15} may name several packages
find_missing_desktop_linux() {
    need /usr/bin/python3 -c 'import gi; gi.require_version("Atspi", "2.0")' -- $1
    if [ -n "${WAYLAND_DISPLAY:-}" ] || [ "$DEV" -eq 1 ]; then
        need command -v grim -- "$2"
        need test -x /usr/libexec/xdg-desktop-portal -- "$3"
        need command -v gsettings -- "${11}"
    fi
    if [ "$DEV" -eq 1 ]; then
        need command -v sway -- "$4"
        need command -v wtype -- "$5"
        need test -x /usr/libexec/xdg-desktop-portal-wlr -- "$6"
        need test -x /usr/libexec/xdg-desktop-portal-gtk -- "$7"
        # GTK 3 for the focus tests' window; GTK 4 and libadwaita for the text reader's held-out screens
        need /usr/bin/python3 -c 'import gi; gi.require_version("Gtk", "3.0")' -- $8
        need /usr/bin/python3 -c 'import gi; gi.require_version("Gtk", "4.0"); gi.require_version("Adw", "1")' -- ${15}
        need command -v pipewire -- "$9"
        need command -v dbus-daemon -- "${10}"
        need test -f /usr/share/glib-2.0/schemas/org.gnome.settings-daemon.plugins.media-keys.gschema.xml \
            -- "${12}"
        need command -v gnome-shell -- "${13}"
        need test -x /usr/libexec/xdg-desktop-portal-gnome -- "${14}"
    fi
}

# Speech and braille through the user's screen reader use the system's own clients (Orca brings them);
# the tests run a real speech-dispatcher (espeak-ng module) playing into a PulseAudio null sink, and a
# BRLTTY whose Virtual driver stands in for a braille display. Args: the speech-dispatcher and BrlAPI
# Python clients, speech-dispatcher, its espeak-ng module, PulseAudio, BRLTTY.
find_missing_screenreader_linux() {
    if [ "$DEV" -eq 1 ]; then
        need /usr/bin/python3 -c 'import speechd' -- "$1"
        need /usr/bin/python3 -c 'import brlapi' -- "$2"
        need command -v speech-dispatcher -- "$3"
        need sh -c 'ls /usr/lib*/speech-dispatcher-modules/sd_espeak-ng /usr/libexec/speech-dispatcher-modules/sd_espeak-ng' -- "$4"
        need command -v pulseaudio -- "$5"
        need env PATH="$PATH:/sbin:/usr/sbin" sh -c 'command -v brltty' -- "$6"
    fi
}

install_system_packages() {
    case "$OS" in
        Linux)
            if command -v apt-get >/dev/null; then
                find_missing_linux python3 python3-venv python3-tk libportaudio2 xvfb shellcheck x11-utils \
                    fonts-dejavu-core fonts-liberation chromium xfonts-base g++ default-jre git
                find_missing_desktop_linux "python3-gi gir1.2-atspi-2.0 at-spi2-core" grim xdg-desktop-portal sway \
                    wtype xdg-desktop-portal-wlr xdg-desktop-portal-gtk gir1.2-gtk-3.0 pipewire dbus-daemon libglib2.0-bin \
                    gnome-settings-daemon-common gnome-shell xdg-desktop-portal-gnome "gir1.2-gtk-4.0 gir1.2-adw-1"
                find_missing_screenreader_linux python3-speechd python3-brlapi speech-dispatcher \
                    speech-dispatcher-espeak-ng pulseaudio brltty
                [ ${#MISSING[@]} -eq 0 ] && return 0
                say "Installing system packages with apt: ${MISSING[*]}"
                as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
                as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                    "${MISSING[@]}"
            elif command -v dnf >/dev/null; then
                find_missing_linux python3 python3 python3-tkinter portaudio xorg-x11-server-Xvfb ShellCheck "xprop xdpyinfo" \
                    dejavu-sans-fonts liberation-sans-fonts chromium xorg-x11-fonts-misc gcc-c++ java-21-openjdk git
                find_missing_desktop_linux "python3-gobject at-spi2-core" grim xdg-desktop-portal sway wtype \
                    xdg-desktop-portal-wlr xdg-desktop-portal-gtk gtk3 pipewire dbus-daemon glib2 gnome-settings-daemon \
                    gnome-shell xdg-desktop-portal-gnome "gtk4 libadwaita"
                find_missing_screenreader_linux python3-speechd python3-brlapi speech-dispatcher \
                    speech-dispatcher-espeak-ng pulseaudio brltty
                [ ${#MISSING[@]} -eq 0 ] && return 0
                say "Installing system packages with dnf: ${MISSING[*]}"
                as_root dnf install -y "${MISSING[@]}"
            elif command -v pacman >/dev/null; then
                find_missing_linux python python tk portaudio xorg-server-xvfb shellcheck "xorg-xprop xorg-xdpyinfo" \
                    ttf-dejavu ttf-liberation chromium xorg-fonts-misc gcc jre-openjdk git
                find_missing_desktop_linux "python-gobject at-spi2-core" grim xdg-desktop-portal sway wtype \
                    xdg-desktop-portal-wlr xdg-desktop-portal-gtk gtk3 pipewire dbus glib2 gnome-settings-daemon \
                    gnome-shell xdg-desktop-portal-gnome "gtk4 libadwaita"
                find_missing_screenreader_linux speech-dispatcher brltty speech-dispatcher espeak-ng pulseaudio brltty
                [ ${#MISSING[@]} -eq 0 ] && return 0
                say "Installing system packages with pacman: ${MISSING[*]}"
                as_root pacman -S --needed --noconfirm "${MISSING[@]}"
            else
                fail "this Linux has none of the package managers the installer knows (apt, dnf, pacman)." \
                     "Install Python 3.10 or newer with venv and tkinter, espeak-ng, xclip, PortAudio, Xvfb, xdotool and xprop yourself, then run this installer again."
            fi
            ;;
        Darwin)
            command -v brew >/dev/null \
                || fail "Homebrew is needed to install PortAudio and Python, and it is not installed." \
                        "Install it from https://brew.sh, then run this installer again."
            pick_python
            [ -n "$PYTHON" ] || MISSING+=(python@3.12)
            need brew list --versions portaudio -- portaudio
            if [ "$DEV" -eq 1 ]; then need command -v shellcheck -- shellcheck; fi
            [ ${#MISSING[@]} -eq 0 ] && return 0
            say "Installing with Homebrew: ${MISSING[*]}"
            brew install "${MISSING[@]}"
            ;;
        *)
            fail "this installer is for Linux and macOS, and this system is $OS." \
                 "On Windows, run installer\\install.ps1 in PowerShell instead."
            ;;
    esac
}

say "Checking system packages"
install_system_packages || fail "the system packages could not be installed (see the messages above)." \
    "Fix what the package manager reported, or install the packages yourself, then run this installer again."
pick_python
[ -n "$PYTHON" ] || fail "no Python 3.10 or newer was found." \
    "Install Python 3.10 or newer, or point DESCRIBE_SCREEN_PYTHON at one, then run this installer again."
say "System packages are in place; using $PYTHON ($("$PYTHON" -V 2>&1))"

# ---------------------------------------------------------------- virtual environment and package

if [ -x "$VPY" ]; then
    "$VPY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null \
        || fail "the virtual environment at $VENV does not work or its Python is older than 3.10." \
                "Delete that folder (rm -r '$VENV'), then run this installer again."
    say "Using the virtual environment at $VENV"
else
    say "Creating a virtual environment at $VENV"
    "$PYTHON" -m venv "$VENV" || fail "the virtual environment could not be created at $VENV." \
        "Check that the folder is writable and that Python's venv module is installed, then run this installer again."
fi

if [ "$DEV" -eq 1 ]; then EXTRAS="dev,export,voice"; else EXTRAS="voice"; fi
# pip takes a while even when nothing changes, so a stamp records what was installed last time.
STAMP="$VENV/.describe-screen-installed"
stamp_text() { printf 'repo=%s\nextras=%s\n' "$REPO" "$EXTRAS"; cat "$REPO/pyproject.toml"; }
installed_here() {
    "$VPY" -c 'import sys, describe_screen; sys.exit(not describe_screen.__file__.startswith(sys.argv[1]))' \
        "$REPO/describe_screen" 2>/dev/null
}

if [ -f "$STAMP" ] && stamp_text | cmp -s - "$STAMP" && installed_here; then
    say "describe-screen [$EXTRAS] is already installed in $VENV"
else
    rm -f "$STAMP"
    if [ "$DEV" -eq 1 ]; then
        # The export extra needs torch. This exact pin finds the CPU wheel where one is kept locally;
        # an open version range would fetch the CUDA build, gigabytes this tool does not need.
        say "Installing torch 2.13.0 (needed to export models)"
        "$VPY" -m pip install -q "torch==2.13.0" || fail "torch could not be installed." \
            "Check the network connection and free disk space, then run this installer again."
    fi
    say "Installing describe-screen [$EXTRAS] and its Python packages (this can take a few minutes)"
    "$VPY" -m pip install -q -e "${REPO}[$EXTRAS]" || fail "pip could not install describe-screen." \
        "Read pip's message above; check the network connection and free disk space, then run this installer again."
    if [ "$DEV" -eq 1 ]; then
        # The extra "crosscheck" (onnxruntime-genai, a second Qwen3.5 exporter for the tests) requires the CPU
        # onnxruntime, which would overwrite onnxruntime-gpu: install it alone, without its dependencies.
        genai="$(sed -n 's/^crosscheck = \["\(.*\)"\]$/\1/p' "$REPO/pyproject.toml")"
        say "Installing $genai for the tests (without its dependencies)"
        "$VPY" -m pip install -q --no-deps "$genai" \
            || say "$genai has no package for this machine; the test comparing exporters with it will fail here"
    fi
    stamp_text >"$STAMP"
fi

# An NVIDIA GPU with its driver: the kernel module's /proc entry, or nvidia-smi naming a GPU.
has_nvidia_gpu() {
    [ -e /proc/driver/nvidia/version ] || { command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; }
}

# onnxruntime-gpu finds CUDA and cuDNN only in the exact versions it was built for; its [cuda,cudnn]
# extras bring them as pip packages (about 1 GB), which the program preloads. Only with a GPU.
install_cuda_libraries() {
    has_nvidia_gpu || return 0
    if "$VPY" -c 'import sys; from describe_screen.vlm import onnx; sys.exit(bool(onnx.missing_cuda_wheels()))'; then
        say "An NVIDIA GPU was found; its CUDA and cuDNN libraries are already installed"
        return 0
    fi
    local version
    version="$("$VPY" -c 'from importlib.metadata import version; print(version("onnxruntime-gpu"))')"
    say "An NVIDIA GPU was found: installing the CUDA and cuDNN libraries onnxruntime-gpu $version needs (about 1 GB)"
    "$VPY" -m pip install -q "onnxruntime-gpu[cuda,cudnn]==$version" || fail "the CUDA libraries could not be installed." \
        "Check the network connection and free disk space, then run this installer again."
    if "$VPY" -c 'import sys; from describe_screen.vlm import onnx; sys.exit(not onnx.cuda_works())' 2>/dev/null; then
        say "CUDA works: models will run on the GPU"
    else
        say "CUDA could not start, so models will run on the CPU; '$VENV/bin/describe-screen' doctor says which library is missing"
    fi
}

# faster-whisper depends on plain onnxruntime, and installing it overwrites onnxruntime-gpu: both
# ship the same module. Where the GPU build is the right one, put it back alone.
if [ "$OS" = Linux ] && [ "$ARCH" = x86_64 ]; then
    versions="$("$VPY" - <<'EOF'
from importlib.metadata import PackageNotFoundError, version
def v(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"
print(v("onnxruntime"), v("onnxruntime-gpu"))
EOF
)"
    read -r ort_cpu ort_gpu <<<"$versions"
    if [ "$ort_cpu" != "-" ]; then
        say "Replacing onnxruntime $ort_cpu (pulled in by faster-whisper) with onnxruntime-gpu, which also runs on the CPU"
        gpu_spec="onnxruntime-gpu"
        [ "$ort_gpu" != "-" ] && gpu_spec="onnxruntime-gpu==$ort_gpu"
        if ! { "$VPY" -m pip uninstall -q -y onnxruntime onnxruntime-gpu \
                && "$VPY" -m pip install -q --no-deps "$gpu_spec"; }; then
            fail "onnxruntime-gpu could not be reinstalled." \
                 "Run: '$VPY' -m pip install --force-reinstall --no-deps onnxruntime-gpu, then run this installer again."
        fi
    fi
    install_cuda_libraries
    say "Checking onnxruntime"
    "$VPY" -c 'import onnxruntime, sys; p = onnxruntime.get_available_providers(); print("    providers:", ", ".join(p)); sys.exit("CUDAExecutionProvider" not in p)' \
        || fail "onnxruntime in $VENV is not the GPU build (no CUDAExecutionProvider listed)." \
                "Run: '$VPY' -m pip uninstall -y onnxruntime onnxruntime-gpu && '$VPY' -m pip install --no-deps onnxruntime-gpu"
fi

"$VENV/bin/describe-screen" --help >/dev/null 2>&1 || fail "the describe-screen command does not start." \
    "Run '$VENV/bin/describe-screen' --help to see the error, and report it."

# ---------------------------------------------------------------- a vision model

if [ -n "$MODEL" ]; then
    say "Installing the vision model $MODEL"
    # The command says in one sentence why it could not (no network, no disk space); set-up goes on.
    "$VENV/bin/describe-screen" models install "$MODEL" \
        || say "describe-screen will use its text reader until you run: '$VENV/bin/describe-screen' models install $MODEL"
fi

# ---------------------------------------------------------------- autostart

# Fill a template: @DESCRIBE_SCREEN@ becomes the command, @LOG@ the log file, escaped by the caller.
fill_template() {  # fill_template <template> <command> <log>
    local text
    text="$(<"$1")"
    text="${text//@DESCRIBE_SCREEN@/"$2"}"
    text="${text//@LOG@/"$3"}"
    printf '%s\n' "$text"
}

xml_escape() { local s="${1//&/&amp;}"; s="${s//</&lt;}"; printf '%s' "${s//>/&gt;}"; }

# A Wayland session: hand the session's variables to systemd (the service needs them to reach the
# compositor and the portals), and bind the keys in the desktop's own settings, with consent.
WAYLAND_VARS="WAYLAND_DISPLAY XDG_SESSION_TYPE XDG_CURRENT_DESKTOP DBUS_SESSION_BUS_ADDRESS SWAYSOCK HYPRLAND_INSTANCE_SIGNATURE DISPLAY"
wayland_session_setup() {  # wayland_session_setup <describe-screen command>
    # shellcheck disable=SC2086  # one word per variable name
    systemctl --user import-environment $WAYLAND_VARS 2>/dev/null \
        || say "systemd did not take the session's variables; the service may not reach the desktop."
    local desktop=""
    case "${XDG_CURRENT_DESKTOP:-}" in
        *GNOME*|*gnome*) desktop=gnome ;;
        *sway*) desktop=sway ;;
        *Hyprland*|*hyprland*) desktop=hyprland ;;
        *) return 0 ;;
    esac
    if [ "$desktop" != gnome ]; then
        say "Add this line to your $desktop config so the service starts with it:"
        printf 'exec systemctl --user import-environment %s; systemctl --user start describe-screen.service\n' "$WAYLAND_VARS"
    fi
    if [ "$desktop" = hyprland ]; then
        "$1" keys install --desktop hyprland --program "$1"
        return 0
    fi
    local answer=""
    if [ -t 0 ]; then
        read -r -p "Bind describe-screen's keys (Control Alt D and the others) in $desktop's settings? [y/N] " answer || answer=""
    fi
    case "$answer" in
        y|Y|yes)
            "$1" keys install --desktop "$desktop" --program "$1" \
                && say "To take them out again: '$1' keys remove --desktop $desktop" ;;
        *)
            say "Keys not bound. To bind them later: '$1' keys install --desktop $desktop"
            "$1" keys show --desktop "$desktop" --program "$1" ;;
    esac
}

install_autostart() {
    local exe="$VENV/bin/describe-screen"
    case "$OS" in
        Linux)
            local unit_dir="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"
            say "Installing a systemd user service so the daemon starts at every graphical login"
            mkdir -p "$unit_dir"
            # systemd treats % as a specifier: a literal one is written %%.
            fill_template "$REPO/installer/describe-screen.service" "${exe//%/%%}" "" \
                >"$unit_dir/describe-screen.service"
            if [ -n "${WAYLAND_DISPLAY:-}" ]; then wayland_session_setup "$exe"; fi
            if systemctl --user daemon-reload 2>/dev/null \
                && systemctl --user enable describe-screen.service 2>/dev/null; then
                systemctl --user start describe-screen.service 2>/dev/null \
                    || say "It will start at your next graphical login."
            else
                say "The service file is at $unit_dir/describe-screen.service, but no systemd user session answers here."
                say "Enable it from your desktop session with: systemctl --user enable --now describe-screen.service"
            fi
            ;;
        Darwin)
            local agent="$HOME/Library/LaunchAgents/org.describe-screen.daemon.plist"
            local log_dir="$HOME/Library/Logs/describe-screen"
            say "Installing a launchd agent so the daemon starts at every login"
            mkdir -p "$(dirname "$agent")" "$log_dir"
            fill_template "$REPO/installer/describe-screen.plist" "$(xml_escape "$exe")" \
                "$(xml_escape "$log_dir/daemon.log")" >"$agent"
            launchctl bootout "gui/$(id -u)" "$agent" 2>/dev/null || true
            launchctl bootstrap "gui/$(id -u)" "$agent" \
                || say "launchd did not load it now; it will start at your next login."
            say "macOS will ask to allow Screen Recording and Accessibility for Python: allow both, or the hotkeys and captures will not work."
            ;;
    esac
}

if [ "$AUTOSTART" -eq 1 ]; then
    install_autostart
fi

# ---------------------------------------------------------------- demo and the spoken last line

if [ "$RUN" -eq 1 ]; then
    say "Running the demo: describe-screen describes a screen and speaks the result"
    "$VENV/bin/describe-screen" demo || fail "the demo did not finish (see its message above)." \
        "describe-screen is installed, but something it needs is not working: follow the advice above, then run '$VENV/bin/describe-screen' demo again."
fi

say "describe-screen is installed. Start it with: $VENV/bin/describe-screen daemon"
# Speak the last line too, when there is a sound device to speak on.
if [ "$OS" = Darwin ]; then
    command say "describe-screen is installed" 2>/dev/null || true
elif command -v espeak-ng >/dev/null && { compgen -G '/dev/snd/pcmC*p' >/dev/null || pactl info >/dev/null 2>&1; }; then
    timeout 20 espeak-ng "describe-screen is installed" 2>/dev/null || true
fi
