"""Install a model from its published ONNX files: only one precision's graphs, checked, published whole.

The hub lists, for a pinned commit, every file's size and (for large files) its SHA-256. huggingface_hub
downloads each file into `<models>/<name>.download`; a transfer that breaks off is taken up again with a
Range request, and files already finished stay there, so after Ctrl+C or a lost connection the next
attempt fetches only what is missing. Only when every file is present and matches the hub's checksum are
the files moved, flat and under onnx-community's names, into a staging folder whose manifest.json is
written last; the folder is then renamed into place. A bundle is therefore either absent or whole:
nothing half-installed is ever loaded. No torch and no transformers here.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from describe_screen.errors import UserError
from describe_screen.i18n import _
from describe_screen.vlm import bundle
from describe_screen.vlm.manifest import PRECISIONS, SUPPORT_FILES, publish, sha256_of, staging_dir

if TYPE_CHECKING:
    from describe_screen.models import InstalledModel, ModelManifest

PRECISION_CHOICES = ("auto", *PRECISIONS)  # onnx/<graph>[_<precision>].onnx; uint8, bnb4 are left out
# Room left free besides the files: the manifest, the hub client's metadata, and the rest of the system.
SPARE_BYTES = 64 * 1024 * 1024
DOWNLOAD_SUFFIX = ".download"


@dataclass(frozen=True)
class RemoteFile:
    """One file of the repo at the pinned commit: its path there, its name in the bundle, and its hashes."""

    path: str
    size: int
    sha256: str  # from the hub's LFS metadata; "" for small files kept in git
    git_sha1: str  # the git blob id, which checks small files

    @property
    def bundle_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def choose_precision(precision: str, provider: str = "auto", configured: str = "auto",
                     preferred: dict[str, str] | None = None) -> str:
    """"auto" picks the weights the runtime will load with these settings: models.precision when it names
    one, else, where models.provider lets sessions really run on CUDA or not, the model's `preferred`
    weights for that device (its manifest's published.auto), or fp16 on CUDA and int8 on the CPU."""
    if precision == "auto":
        precision = configured
    if precision != "auto":
        if precision not in PRECISIONS:
            raise UserError(_("The precision {precision!r} is unknown.", precision=precision), _("Use one of: {items}.",
                                                                          items=', '.join(PRECISION_CHOICES)))
        return precision
    from describe_screen.vlm import onnx

    device = onnx.usable_device(provider)
    return (preferred or {}).get(device) or onnx.auto_precision(device)


def wanted_files(spec: ModelManifest, precision: str, listing: dict[str, RemoteFile]) -> list[RemoteFile]:
    """The graphs of one precision (with their external weight files) and the support files."""
    published = spec.published
    chosen = []
    for graph in published["graphs"]:
        path = "onnx/" + bundle.variant_name(f"{graph}.onnx", precision)
        if path not in listing:
            other = "fp32" if precision != "fp32" else "int8"
            raise UserError(_("{repo} publishes no {precision} weights for {name} ({path} is missing).",
                              repo=published['repo'], precision=precision, name=spec.name, path=path),
                            _("Choose another precision, for example: describe-screen models install "
                                           "{name} --precision {other}.",
                                           name=spec.name, other=other))
        chosen.append(listing[path])
        chosen += [f for p, f in sorted(listing.items()) if p.startswith(path + "_data")]
    chosen += [listing[name] for name in SUPPORT_FILES if name in listing]
    return chosen


def _listing(repo: str, revision: str) -> tuple[str, dict[str, RemoteFile]]:
    """(commit, files) of `repo` at `revision`, as the hub reports them."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo, revision=revision, files_metadata=True)
    files = {}
    for sibling in info.siblings or []:
        lfs = sibling.lfs
        files[sibling.rfilename] = RemoteFile(path=sibling.rfilename, size=int(lfs.size if lfs else sibling.size or 0),
                                              sha256=lfs.sha256 if lfs else "", git_sha1=sibling.blob_id or "")
    if not info.sha:
        raise UserError(_("The model server did not say which version of {repo} it serves.", repo=repo),
                        _("Try again later."))
    return info.sha, files


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    digest.update(path.read_bytes())
    return digest.hexdigest()


def check_file(path: Path, remote: RemoteFile) -> bool:
    """True when the downloaded file is exactly the one the hub lists (size, then SHA-256 or git hash)."""
    if path.stat().st_size != remote.size:
        return False
    if remote.sha256:
        return sha256_of(path) == remote.sha256
    return _git_blob_sha1(path) == remote.git_sha1


def free_bytes(folder: Path) -> int:
    """Free space on the disk that holds `folder` (or its nearest existing parent)."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _check_space(folder: Path, needed: int, name: str) -> None:
    free = free_bytes(folder)
    if free < needed + SPARE_BYTES:
        raise UserError(_("There is not enough free disk space to install {name}: it needs {megabytes} megabytes "
                          "and {megabytes2} are free in {folder}.",
                          name=name, megabytes=megabytes(needed + SPARE_BYTES), megabytes2=megabytes(free),
                          folder=folder),
                        _("Free some space, or choose a smaller precision such as int8 or q4, then try again."))


def megabytes(size: int) -> int:
    return max(1, round(size / 1e6))


def _network_error(exc: BaseException) -> bool:
    """Errors that mean the hub could not be reached or the transfer broke off: huggingface_hub's own,
    and its HTTP library's transport errors (httpx, or the fork newer releases use), named by module."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    transport = type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "requests", "urllib3")
    return transport or isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError,
                                         TimeoutError))


def _explain(exc: Exception, repo: str, name: str, download: Path) -> UserError:
    """One plain sentence for every way a download fails."""
    import errno

    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        shutil.rmtree(download, ignore_errors=True)  # a full disk is worse than a lost resume point
        return UserError(_("The disk filled up while {name} was downloading, so it was not installed.",
                           name=name),
                         _("Free some space, then run the install again."))
    if isinstance(exc, (RepositoryNotFoundError, RevisionNotFoundError)):
        return UserError(_("The model server has no {repo} at the version this describe-screen expects.",
                           repo=repo),
                         _("Update describe-screen, then try again."))
    if _network_error(exc) or (isinstance(exc, HfHubHTTPError) and exc.response is not None
                               and exc.response.status_code >= 500):
        return UserError(_("The model server could not be reached, so {name} was not installed.", name=name),
                         _("Check the internet connection and run the install again: it resumes where it stopped."))
    return UserError(_("{name} could not be downloaded ({kind}: {splitlines}).",
                       name=name, kind=type(exc).__name__, splitlines=str(exc).splitlines()[0][:160]),
                     _("Run the install again; if it keeps failing, check the internet connection."))


def install(spec: ModelManifest, models_dir: Path, precision: str = "auto",
            tell: Callable[..., None] | None = None, provider: str = "auto", configured: str = "auto"
            ) -> InstalledModel:
    """Download, check and publish one precision of `spec` as `models_dir/<name>`; `tell` hears the
    sentences a user should hear (start and size; the end, with installed=True). `provider` and
    `configured` are the settings' models.provider and models.precision, which "auto" follows."""
    from describe_screen import models

    tell = tell or (lambda text, installed=False: print(text, flush=True))
    if not spec.published:
        raise UserError(_("{name} has no published ONNX files to install.", name=spec.name),
                        _("Export it instead with: describe-screen models export {name}.", name=spec.name))
    precision = choose_precision(precision, provider, configured, spec.published.get("auto"))
    repo = spec.published["repo"]
    out = models_dir / spec.name
    download = models_dir / (spec.name + DOWNLOAD_SUFFIX)
    stop = _Interrupts()
    try:
        with stop:
            commit, listing = _listing(repo, spec.published["revision"])
            files = wanted_files(spec, precision, listing)
            total = sum(f.size for f in files)
            present = sum(f.size for f in files if _complete(download / f.path, f))
            _check_space(models_dir, total - present, spec.name)
            tell(_("Downloading {name}, {precision}, {megabytes} megabytes.", name=spec.name, precision=precision,
                   megabytes=megabytes(total)))
            _fetch(repo, commit, files, download)
    except BaseException as exc:
        if stop.seen or isinstance(exc, KeyboardInterrupt):  # finished files stay for the next attempt
            raise UserError(_("The install of {name} was stopped, so it is not installed.", name=spec.name),
                            _("Run the same command again to go on from where it stopped.")) from exc
        if isinstance(exc, Exception):
            raise _explain(exc, repo, spec.name, download) from exc
        raise
    bad = [f for f in files if not check_file(download / f.path, f)]
    if bad:
        for remote in bad:
            (download / remote.path).unlink()
        raise UserError(_("The file {path} of {name} does not match the checksum the model server lists for it, "
                          "so the model was not installed.",
                          path=bad[0].path, name=spec.name),
                        _("Run the install again; if this keeps happening, the download is being tampered with."))
    info = spec.bundle_info() | {"source": {"repo": repo, "revision": commit, "published": True}}
    try:
        path = _publish(download, out, files, info, precision)
    except OSError as exc:
        raise _explain(exc, repo, spec.name, download) from exc
    tell(_("{name} is installed.", name=spec.name), installed=True)
    return models.find(path.name, models_dir)


def _complete(path: Path, remote: RemoteFile) -> bool:
    return path.is_file() and path.stat().st_size == remote.size


class _Interrupts:
    """Notes a Ctrl+C while active. The hub client may turn the KeyboardInterrupt that breaks a transfer
    into a transport error of its own, which alone would read as "the server could not be reached"."""

    def __init__(self) -> None:
        self.seen = False
        self._previous: Any = None

    def __enter__(self) -> _Interrupts:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._interrupted)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _interrupted(self, signum: int, frame: Any) -> None:
        self.seen = True
        raise KeyboardInterrupt


def _fetch(repo: str, commit: str, files: list[RemoteFile], download: Path) -> None:
    """Downloads into `download`: huggingface_hub resumes a broken transfer with Range requests, and
    skips files a previous attempt finished (it keeps their commit and ETag beside them)."""
    from huggingface_hub import hf_hub_download

    download.mkdir(parents=True, exist_ok=True)
    for remote in files:
        hf_hub_download(repo, remote.path, revision=commit, local_dir=download)


def _publish(download: Path, out: Path, files: list[RemoteFile], info: dict[str, Any], precision: str) -> Path:
    """Move the checked files flat into a staging folder and publish it (manifest.json written last, then
    a rename); the download folder, with the hub client's bookkeeping, goes away."""
    staging = staging_dir(out)
    try:
        for remote in files:
            (download / remote.path).rename(staging / remote.bundle_name)
        publish(staging, out, info, [precision])
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(download, ignore_errors=True)
    return out
