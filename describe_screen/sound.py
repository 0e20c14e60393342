"""Sound files and sample rates: the one WAV/AIFF reader and the one resampler.

Both the synthesiser's output (synthesis.py) and recorded questions (microphone.py) come through here, so
every file format quirk (8/16/24/32-bit and float WAV, WAVE_FORMAT_EXTENSIBLE, big-endian AIFF from
macOS voices, pipes that leave the data size unknown) is handled once. numpy is imported inside
functions so that `describe-screen --help` stays instant.
"""

from __future__ import annotations

import logging
import struct
from math import gcd
from pathlib import Path
from typing import TYPE_CHECKING

from describe_screen.errors import UserError
from describe_screen.i18n import _

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

RATE = 22050  # the rate our speech is played at: every utterance and tone is converted to it


def read_sound(path: Path, max_seconds: float = float("inf")) -> tuple[np.ndarray, int, float]:
    """Mono float32 samples at the file's own rate, that rate, and the file's full length in seconds.

    Only the first max_seconds of a WAV are read from disk, so a ten-minute file costs no more than a
    short one. Problems are UserErrors that say what to do.
    """
    import numpy as np

    path = Path(path)
    aiff = _is_aiff(path)
    if aiff:
        raw, rate, channels, width = _parse_aiff(path.read_bytes())
        fmt, data_at, data_size = _PCM, 0, len(raw)
    else:
        fmt, rate, channels, width, data_at, data_size = _wav_layout(path)
    frame_bytes = channels * width
    seconds = data_size // frame_bytes / rate
    keep = min(data_size // frame_bytes, int(min(max_seconds, seconds) * rate))
    if not aiff:
        with path.open("rb") as f:
            f.seek(data_at)
            raw = f.read(keep * frame_bytes)
    frames = min(keep, len(raw) // frame_bytes)
    if frames == 0:
        raise UserError(_("The sound file {name} is empty.", name=path.name), _("Record the question again."))
    samples = _decode(raw[:frames * frame_bytes], fmt, width).reshape(frames, channels).mean(axis=1)
    if seconds > max_seconds:
        log.warning("%s is %.0f seconds long; only the first %g seconds are used", path, seconds, max_seconds)
    return samples.astype(np.float32), rate, seconds


def _is_aiff(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"FORM"
    except OSError:
        return False  # _wav_layout explains the problem


_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


def _wav_layout(path: Path) -> tuple[int, int, int, int, int, int]:
    """Walk the RIFF chunks: (format, rate, channels, bytes per sample, data offset, data bytes)."""
    not_wav = UserError(_("The file {name} is not a WAV sound file.", name=path.name),
                        _("Save the question as a WAV file, for example with: sox question.mp3 question.wav."))
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                raise not_wav
            fmt_chunk = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    break
                name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if name == b"fmt ":
                    fmt_chunk = f.read(length)
                elif name == b"data":
                    if fmt_chunk is None:
                        raise not_wav
                    # writers that stream to a pipe leave the size unknown; the file end bounds it
                    return (*_parse_fmt(path, fmt_chunk), f.tell(), min(length, size - f.tell()))
                else:
                    f.seek(length, 1)
                if length % 2:
                    f.seek(1, 1)
    except FileNotFoundError as exc:
        raise UserError(_("The sound file {path} does not exist.", path=path),
                        _("Check the file name and try again.")) from exc
    except IsADirectoryError as exc:
        raise UserError(_("{path} is a folder, not a sound file.", path=path),
                        _("Give the path of a WAV file.")) from exc
    except OSError as exc:
        raise UserError(_("The sound file {path} cannot be read: {reason}.",
                          path=path, reason=exc.strerror or exc),
                        _("Check that the file exists and that you may read it.")) from exc
    if fmt_chunk is None:
        raise not_wav
    raise UserError(_("The sound file {name} is empty.", name=path.name), _("Record the question again."))


def _parse_fmt(path: Path, chunk: bytes) -> tuple[int, int, int, int]:
    """(format, rate, channels, bytes per sample) from a fmt chunk, refusing encodings we cannot read."""
    if len(chunk) < 16:
        raise UserError(_("The file {name} is a damaged WAV file.", name=path.name), _("Record the question again."))
    fmt, channels, rate, _byte_rate, _block_align, bits = struct.unpack("<HHIIHH", chunk[:16])
    if fmt == _EXTENSIBLE and len(chunk) >= 26:
        fmt = struct.unpack("<H", chunk[24:26])[0]  # the first two bytes of the sub-format GUID
    width = bits // 8
    readable = (fmt == _PCM and width in (1, 2, 3, 4)) or (fmt == _FLOAT and width in (4, 8))
    if not readable or channels < 1 or rate < 1000 or bits % 8:
        raise UserError(_("The sound file {name} uses a WAV encoding I cannot read.", name=path.name),
                        _("Convert it to plain 16-bit WAV, for example with: sox {name} -b 16 question.wav.",
                          name=path.name))
    return fmt, rate, channels, width


def _decode(raw: bytes, fmt: int, width: int) -> np.ndarray:
    """Little-endian samples to float64 in [-1, 1]."""
    import numpy as np

    if fmt == _FLOAT:
        return np.frombuffer(raw, "<f4" if width == 4 else "<f8").astype(np.float64)
    if width == 1:  # 8-bit WAV is the one unsigned width
        return (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
    if width == 3:  # place the three bytes in the top of an int32 so the sign comes along
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)
        return ints.astype(np.float64) / 2.0**31
    return np.frombuffer(raw, f"<i{width}").astype(np.float64) / 2.0 ** (8 * width - 1)


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling with a Hann-windowed sinc, one precomputed filter per phase.

    The rate ratio is reduced to up/down integers, so output sample n always sits at phase
    (n * down) mod up and the filter table is built once; the cut-off follows the lower of the two
    rates so that downsampling does not fold high frequencies back into the speech band.
    """
    import numpy as np

    audio = np.asarray(audio, np.float32)
    if rate == target or audio.size == 0:
        return audio
    g = gcd(rate, target)
    up, down = target // g, rate // g
    cutoff = min(1.0, target / rate)  # as a fraction of the input Nyquist
    half = int(np.ceil(12 / cutoff))  # input samples either side of each output sample
    taps = np.arange(-half + 1, half + 1)
    distance = (np.arange(up) / up)[:, None] - taps[None, :]  # row p: output at input index + p/up
    table = cutoff * np.sinc(cutoff * distance) * (0.5 + 0.5 * np.cos(np.pi * distance / half))
    table = (table / table.sum(axis=1, keepdims=True)).astype(np.float32)  # exact gain at 0 Hz
    n_out = len(audio) * up // down
    padded = np.pad(audio, half, mode="edge")  # no step at the ends: a held level stays that level
    out = np.empty(n_out, np.float32)
    step = max(1, 2**20 // len(taps))
    for first in range(0, n_out, step):
        n = np.arange(first, min(first + step, n_out), dtype=np.int64)
        index = (n * down // up)[:, None] + taps[None, :] + half
        out[n] = np.einsum("ij,ij->i", padded[index], table[n * down % up])
    return out


def _parse_aiff(data: bytes) -> tuple[bytes, int, int, int]:
    """PCM (as little-endian), rate, channels and sample width of an AIFF/AIFF-C file."""
    import numpy as np

    chunks, pos = {}, 12
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], struct.unpack(">I", data[pos + 4:pos + 8])[0]
        chunks[kind] = data[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    comm = chunks[b"COMM"]
    channels, _, bits = struct.unpack(">hIh", comm[:8])
    exponent, mantissa = struct.unpack(">HQ", comm[8:18])
    rate = round(mantissa * 2.0 ** ((exponent & 0x7FFF) - 16383 - 63))
    little = data[8:12] == b"AIFC" and comm[18:22] == b"sowt"
    offset = struct.unpack(">I", chunks[b"SSND"][:4])[0]
    pcm = chunks[b"SSND"][8 + offset:]
    width = bits // 8
    if not little and width > 1:
        pcm = np.frombuffer(pcm[: len(pcm) // width * width], f">i{width}").astype(f"<i{width}").tobytes()
    elif width == 1:  # AIFF bytes are signed; WAV bytes (what read_audio expects) are unsigned
        pcm = (np.frombuffer(pcm, "i1").astype(np.int16) + 128).astype("u1").tobytes()
    return pcm, rate, channels, width
