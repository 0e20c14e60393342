"""The command line: instant help, one-shot jobs without a daemon, doctor, demo, plain errors."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def cli(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "describe_screen", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def isolated_env(tmp_path: Path, **extra: str) -> dict:
    env = dict(os.environ, DESCRIBE_SCREEN_SOCKET=str(tmp_path / "none.sock"),
               DESCRIBE_SCREEN_CONFIG=str(tmp_path / "config.toml"), DESCRIBE_SCREEN_DATA=str(tmp_path / "data"))
    env.update(extra)
    return env


def text_image(path: Path, lines: list[str]) -> Path:
    image = Image.new("RGB", (900, 80 + 50 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 26)
    for n, line in enumerate(lines):
        draw.text((30, 30 + 50 * n), line, fill="black", font=font)
    image.save(path)
    return path


def test_help_is_instant_and_imports_nothing_heavy():
    code = ("import sys; from describe_screen.commands import cli; cli.build_parser().format_help(); "
            "heavy = {'numpy', 'onnxruntime', 'torch', 'PIL', 'rapidocr', 'transformers'} & set(sys.modules); "
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert "describe" in cli("--help").stdout


def test_one_shot_read_of_an_image_prints_and_speaks(tmp_path):
    image = text_image(tmp_path / "note.png", ["Meeting moved to Thursday", "Room 204 on the second floor"])
    speech = tmp_path / "out.wav"
    result = cli("read", "--image", str(image), "--speech-file", str(speech), env=isolated_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Meeting moved to Thursday" in result.stdout
    assert "Room 204" in result.stdout
    with wave.open(str(speech)) as w:
        assert w.getnframes() / w.getframerate() > 2.0


def test_one_shot_question_answered_from_text(tmp_path):
    image = text_image(tmp_path / "error.png", ["Error", "The file report.txt could not be saved", "OK"])
    result = cli("ask", "what does the error say?", "--image", str(image), "--speech-file",
                 str(tmp_path / "a.wav"), env=isolated_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "could not be saved" in result.stdout


def test_missing_image_is_a_plain_error(tmp_path):
    result = cli("describe", "--image", str(tmp_path / "nope.png"), "--speech-file", str(tmp_path / "e.wav"),
                 env=isolated_env(tmp_path))
    assert result.returncode == 1
    assert "nope.png" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("does not exist") == 1, result.stderr  # printed once, not twice


def test_no_daemon_status_and_stop(tmp_path):
    env = isolated_env(tmp_path)
    status = cli("status", env=env)
    assert status.returncode == 0 and "No describe-screen daemon is running" in status.stdout
    stop = cli("stop", env=env)
    assert stop.returncode == 1 and "describe-screen daemon" in stop.stderr


def test_bad_setting_is_named(tmp_path):
    env = isolated_env(tmp_path)
    Path(env["DESCRIBE_SCREEN_CONFIG"]).write_text('[describe]\ndetail = "everything"\n')
    result = cli("status", env=env)
    assert result.returncode == 1
    assert "describe.detail" in result.stderr and "brief, full" in result.stderr


def test_doctor_reports_real_provider(tmp_path, xvfb):
    result = cli("doctor", env=isolated_env(tmp_path, DISPLAY=xvfb))
    out = result.stdout
    assert "OK: Display" in out
    assert "OK: Screen capture" in out
    runtime = next(line for line in out.splitlines() if "Model runtime" in line)
    assert "models run on the cpu" in runtime.lower()  # no GPU here: CUDA is listed but must not be claimed
    assert "on the GPU" not in runtime
    assert "NOTE: Vision models: No vision model is installed" in out


def test_demo_without_display_describes_sample_window(tmp_path):
    env = isolated_env(tmp_path)
    env.pop("DISPLAY", None)
    speech = tmp_path / "demo.wav"
    result = cli("demo", "--speech-file", str(speech), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Save" in result.stdout and "Cancel" in result.stdout
    assert "report.txt" in result.stdout
    assert speech.exists() and "The demo worked." in result.stdout


def test_ask_by_recorded_question(tmp_path):
    """`ask --audio` transcribes the recording and answers from the screen's text."""
    from test_microphone import speak

    image = text_image(tmp_path / "dialog.png", ["Warning", "The battery is almost empty", "OK"])
    question = speak(tmp_path, "What does the warning say?")
    result = cli("ask", "--audio", str(question), "--image", str(image), "--speech-file", str(tmp_path / "a.wav"),
                 env=isolated_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Question:" in result.stdout and "warning" in result.stdout.lower()
    assert "battery is almost empty" in result.stdout


def test_silent_or_broken_recordings_are_plain_errors(tmp_path):
    import wave

    silent = tmp_path / "silent.wav"
    with wave.open(str(silent), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 32000)
    broken = tmp_path / "broken.wav"
    broken.write_text("not a sound file")
    image = text_image(tmp_path / "x.png", ["Hello"])
    for recording, words in ((silent, "heard no speech"), (broken, "broken.wav")):
        result = cli("ask", "--audio", str(recording), "--image", str(image), "--speech-file",
                     str(tmp_path / "e.wav"), env=isolated_env(tmp_path))
        assert result.returncode == 1
        assert words in result.stderr and "Traceback" not in result.stderr


def test_status_with_a_refused_socket_folder_does_not_claim_no_daemon(tmp_path):
    """A daemon may well run behind a folder we refuse to use: say what is wrong, not "not running"."""
    env = isolated_env(tmp_path, TMPDIR=str(tmp_path))
    del env["DESCRIBE_SCREEN_SOCKET"]
    env.pop("XDG_RUNTIME_DIR", None)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / f"describe-screen-{os.getuid()}").symlink_to(tmp_path / "elsewhere")
    status = cli("status", env=env)
    assert status.returncode == 1
    assert "not a plain folder" in status.stderr
    assert "No describe-screen daemon is running" not in status.stdout + status.stderr


def test_status_and_stop_of_a_busy_daemon_do_not_claim_it_is_gone(tmp_path):
    """A listener whose connection queue stays full: the command waits, then says the daemon is busy."""
    from test_ipc import busy_listener

    sock = tmp_path / "busy.sock"
    with busy_listener(sock):
        for command in ("status", "stop"):
            done = cli(command, env=isolated_env(tmp_path, DESCRIBE_SCREEN_SOCKET=str(sock)))
            assert done.returncode == 1
            assert "too busy" in done.stderr
            assert "not running" not in done.stdout + done.stderr


def test_a_settings_path_that_is_a_folder_is_a_plain_error(tmp_path):
    env = isolated_env(tmp_path)
    Path(env["DESCRIBE_SCREEN_CONFIG"]).mkdir()
    result = cli("status", env=env)
    assert result.returncode == 1
    assert "is a folder, not a file" in result.stderr and "Traceback" not in result.stderr


def test_models_import_into_an_uncreatable_folder_is_a_plain_error(tmp_path):
    (tmp_path / "plain-file").write_text("not a folder")
    env = isolated_env(tmp_path, DESCRIBE_SCREEN_DATA=str(tmp_path / "plain-file" / "data"))
    (tmp_path / "bundle").mkdir()
    result = cli("models", "import", str(tmp_path / "bundle"), "smolvlm-256m-instruct", env=env)
    assert result.returncode == 1
    assert "cannot be created" in result.stderr and "Traceback" not in result.stderr


def test_output_cut_short_by_head_gives_no_traceback(tmp_path):
    lines = [f"Line {n} of the shopping list" for n in range(1, 9)]
    image = text_image(tmp_path / "list.png", lines)
    command = (f"{sys.executable} -m describe_screen read --image {image} --speech-file {tmp_path / 'r.wav'}"
               " | head -1")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=180,
                            env=isolated_env(tmp_path))
    assert result.stdout.startswith("Line 1")
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert "went wrong" not in result.stderr


def test_a_reading_the_stop_key_ended_says_stopped_and_exits_non_zero(tmp_path):
    """The daemon answers a request cancelled by the stop key or a newer request with cancelled: true."""
    from describe_screen import ipc

    def stopped(request: dict, send) -> dict:
        send({"event": "text", "text": "Invoice 42\n"})
        return {"event": "done", "result": {"cancelled": True, "text": "Invoice 42"}}

    sock = tmp_path / "daemon.sock"
    with ipc.Server(stopped, sock):
        env = isolated_env(tmp_path, DESCRIBE_SCREEN_SOCKET=str(sock))
        plain, as_json = cli("read", env=env), cli("read", "--json", env=env)
    assert plain.returncode == as_json.returncode == 3
    assert plain.stdout == "Invoice 42\n\n" and plain.stderr == "describe-screen: Stopped.\n"
    assert '"cancelled": true' in as_json.stdout
    assert "no text" not in (plain.stdout + plain.stderr).lower()


def test_a_pipe_or_a_link_to_a_device_is_named_as_what_it_is(tmp_path):
    """Given as --image or --audio: said at once by its kind (a named pipe would block a reader forever),
    and a link is named by the link the user gave, not by what it leads to."""
    pipe = tmp_path / "question.wav"
    os.mkfifo(pipe)
    device = tmp_path / "screenshot.png"
    device.symlink_to("/dev/zero")
    dangling = tmp_path / "old.png"
    dangling.symlink_to(tmp_path / "gone.png")
    env = isolated_env(tmp_path)
    cases = [(("read", "--image", str(pipe)), f"{pipe} is a named pipe, not an image file."),
             (("read", "--image", str(device)), f"{device} is a link to a character device, not an image file."),
             (("read", "--image", str(dangling)), f"{dangling} is a link to {tmp_path / 'gone.png'}, which does "
                                                   "not exist."),
             (("ask", "--audio", str(pipe)), f"{pipe} is a named pipe, not a sound file."),
             (("ask", "--audio", str(device)), f"{device} is a link to a character device, not a sound file.")]
    for args, said in cases:
        result = cli(*args, "--speech-file", str(tmp_path / "speech.wav"), env=env, timeout=120)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert said in result.stderr, result.stderr
        assert "/dev/zero" not in result.stderr
