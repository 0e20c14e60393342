"""The installer scripts: static checks, and install.sh's quick path run for real against a stand-in venv."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALLER = ROOT / "installer"
SCRIPTS = [INSTALLER / "install.sh", INSTALLER / "test.sh"]


def test_shell_scripts_parse_and_pass_shellcheck() -> None:
    for script in SCRIPTS:
        subprocess.run(["bash", "-n", str(script)], check=True)
        assert os.access(script, os.X_OK), f"{script.name} is not executable"
    if not shutil.which("shellcheck"):
        pytest.fail("shellcheck is missing: installer/install.sh --dev installs it.")
    result = subprocess.run(["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_help_and_unknown_option() -> None:
    shown = subprocess.run([str(INSTALLER / "install.sh"), "--help"], capture_output=True, text=True)
    assert shown.returncode == 0
    assert all(flag in shown.stdout for flag in ("--dev", "--autostart", "--no-run", "--model NAME",
                                                 "DESCRIBE_SCREEN_VENV"))
    wrong = subprocess.run([str(INSTALLER / "install.sh"), "--bogus"], capture_output=True, text=True)
    assert wrong.returncode == 2
    assert "Unknown option --bogus" in wrong.stderr


def test_templates_have_their_placeholders() -> None:
    plist = plistlib.loads((INSTALLER / "describe-screen.plist").read_bytes())
    assert plist["ProgramArguments"] == ["@DESCRIBE_SCREEN@", "daemon"]
    assert plist["RunAtLoad"] is True
    assert plist["StandardErrorPath"] == "@LOG@"
    unit = (INSTALLER / "describe-screen.service").read_text()
    assert 'ExecStart="@DESCRIBE_SCREEN@" daemon' in unit
    assert "WantedBy=graphical-session.target" in unit


def stand_in_venv(folder: Path, pip_log: Path | None = None) -> None:
    """A venv whose python and describe-screen run this test's own, and whose pip refuses to run.

    With a matching install stamp, install.sh must take its quick path; if it ever calls pip, the
    refusal fails the test instead of changing the real environment. With `pip_log`, pip calls are
    written there and succeed without doing anything.
    """
    real_bin = Path(sys.executable).parent
    (folder / "bin").mkdir(parents=True)
    pip = f'echo "$@" >> "{pip_log}"; exit 0' if pip_log else 'echo "pip was called" >&2; exit 97'
    wrappers = {
        "python": f'if [ "${{1:-}}" = -m ] && [ "${{2:-}}" = pip ]; then {pip}; fi\n'
                  f'exec "{real_bin / "python"}" "$@"\n',
        "describe-screen": f'exec "{real_bin / "describe-screen"}" "$@"\n',
    }
    for name, body in wrappers.items():
        (folder / "bin" / name).write_text("#!/bin/sh\n" + body)
        (folder / "bin" / name).chmod(0o755)
    stamp = f"repo={ROOT}\nextras=voice\n" + (ROOT / "pyproject.toml").read_text()
    (folder / ".describe-screen-installed").write_text(stamp)


def fake_systemctl(folder: Path, works: bool = True) -> tuple[Path, Path]:
    """A systemctl that writes each call's arguments to a file and succeeds (or fails): (its folder, the file)."""
    fake_bin = folder / "fake-bin"
    fake_bin.mkdir()
    calls = folder / "systemctl-calls"
    (fake_bin / "systemctl").write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\nexit {0 if works else 1}\n')
    (fake_bin / "systemctl").chmod(0o755)
    return fake_bin, calls


@pytest.mark.parametrize("systemctl_works", [True, False])
def test_quick_reinstall_with_autostart(tmp_path: Path, systemctl_works: bool) -> None:
    venv = tmp_path / "my venv %h"  # a space and a systemd specifier, both to be escaped
    stand_in_venv(venv)
    fake_bin, calls = fake_systemctl(tmp_path, systemctl_works)
    env = dict(os.environ, DESCRIBE_SCREEN_VENV=str(venv), HOME=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path / "config"), PATH=f"{fake_bin}:{os.environ['PATH']}")
    result = subprocess.run([str(INSTALLER / "install.sh"), "--autostart", "--no-run"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"describe-screen [voice] is already installed in {venv}" in result.stdout
    assert "Running the demo" not in result.stdout
    assert "NVIDIA" not in result.stdout  # no GPU here: no CUDA library is downloaded (pip would have failed)
    last_line = result.stdout.rstrip().splitlines()[-1]
    assert last_line == f"==> describe-screen is installed. Start it with: {venv}/bin/describe-screen daemon"
    unit = (tmp_path / "config" / "systemd" / "user" / "describe-screen.service").read_text()
    assert f'ExecStart="{tmp_path}/my venv %%h/bin/describe-screen" daemon' in unit
    logged = calls.read_text().splitlines()
    if systemctl_works:
        assert logged == ["--user daemon-reload", "--user enable describe-screen.service",
                          "--user start describe-screen.service"]
    else:
        assert logged == ["--user daemon-reload"]
        assert "systemctl --user enable --now describe-screen.service" in result.stdout


def quick_install(tmp_path: Path, *args: str, pip_log: Path | None = None, fake_bin: dict[str, str] | None = None,
                  **env: str) -> subprocess.CompletedProcess:
    """install.sh's quick path with a stand-in venv; `fake_bin` puts small scripts first on the PATH."""
    venv = tmp_path / "venv"
    stand_in_venv(venv, pip_log)
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    for name, body in (fake_bin or {}).items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    full_env = dict(os.environ, DESCRIBE_SCREEN_VENV=str(venv), HOME=str(tmp_path),
                    DESCRIBE_SCREEN_SOCKET=str(tmp_path / "none.sock"), DESCRIBE_SCREEN_DATA=str(tmp_path / "data"),
                    DESCRIBE_SCREEN_CONFIG=str(tmp_path / "config.toml"), PATH=f"{bin_dir}:{os.environ['PATH']}", **env)
    return subprocess.run([str(INSTALLER / "install.sh"), "--no-run", *args], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=300)


def test_nvidia_gpu_gets_the_cuda_and_cudnn_libraries(tmp_path: Path) -> None:
    from importlib.metadata import version

    pip_log = tmp_path / "pip-calls"
    smi = 'if [ "$1" = -L ]; then echo "GPU 0: NVIDIA GeForce RTX 4060 (UUID: GPU-0)"; fi\n'
    result = quick_install(tmp_path, pip_log=pip_log, fake_bin={"nvidia-smi": smi})
    assert result.returncode == 0, result.stdout + result.stderr
    gpu = version("onnxruntime-gpu")
    assert pip_log.read_text().splitlines() == [f"-m pip install -q onnxruntime-gpu[cuda,cudnn]=={gpu}"]
    assert f"An NVIDIA GPU was found: installing the CUDA and cuDNN libraries onnxruntime-gpu {gpu} needs" \
        in result.stdout
    # the stand-in pip installed nothing, so CUDA cannot start, and the installer says so and where to look
    assert "CUDA could not start, so models will run on the CPU" in result.stdout
    assert "doctor says which library is missing" in result.stdout


def test_model_without_network_says_so_once_and_finishes_with_the_text_reader(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result = quick_install(tmp_path, "--model", "smolvlm-256m-instruct", HF_ENDPOINT=closed,
                           HF_HOME=str(tmp_path / "hf"))
    assert result.returncode == 0, result.stdout + result.stderr
    said = result.stdout + result.stderr
    assert said.count("The model server could not be reached") == 1
    assert "describe-screen will use its text reader until you run:" in result.stdout
    assert "Traceback" not in said
    assert result.stdout.rstrip().splitlines()[-1].startswith("==> describe-screen is installed.")
    assert not (tmp_path / "data" / "models" / "smolvlm-256m-instruct").exists()


def test_model_is_installed_during_set_up(tmp_path: Path, tmp_path_factory) -> None:
    from fake_hub import FakeHub, Repo, repo_from_bundle
    from tiny import tiny_smolvlm_bundle

    from describe_screen import models

    spec = models.manifest("smolvlm-256m-instruct")
    source, bundle = tiny_smolvlm_bundle(tmp_path_factory.getbasetemp())
    files = repo_from_bundle(source, bundle, spec.published["graphs"])
    with FakeHub({spec.published["repo"]: Repo(files)}) as hub:
        result = quick_install(tmp_path, "--model=smolvlm-256m-instruct", HF_ENDPOINT=hub.url,
                               HF_HOME=str(tmp_path / "hf"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "==> Installing the vision model smolvlm-256m-instruct" in result.stdout
    assert "smolvlm-256m-instruct is installed." in result.stdout
    assert "text reader" not in result.stdout
    manifest = tmp_path / "data" / "models" / "smolvlm-256m-instruct" / "manifest.json"
    assert manifest.is_file()
