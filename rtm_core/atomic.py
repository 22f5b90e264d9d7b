"""Writes that a crash cannot leave half done.

`write_files_atomically` replaces a *set* of files in a folder at once: it builds the new
folder beside the old one (keeping the old folder's other files through hard links), then
swaps the two with one atomic renameat2(RENAME_EXCHANGE) on Linux. A process killed at any moment leaves either the
complete old set or the complete new set, never a mix.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import tempfile
from pathlib import Path

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o644)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False where the OS cannot (then the caller falls back)."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def swap_in(staging: Path, folder: Path) -> None:
    """`staging` takes `folder`'s place in one step (an atomic exchange where the OS has one); the
    old contents are removed once the new ones are in place."""
    if not folder.exists():
        os.rename(staging, folder)
    elif _exchange(staging, folder):
        shutil.rmtree(staging)  # now holds the old contents
    else:
        # No atomic exchange here: a short window where `folder` is missing and the old
        # contents sit in `folder.old` remains.
        old = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(folder, old)
        os.rename(staging, folder)
        shutil.rmtree(old)
    _fsync_dir(folder.parent)


def write_files_atomically(folder: str | os.PathLike, files: dict[str, bytes]) -> Path:
    """Create or update `folder` so that all of `files` (name -> content) appear at once.

    Files already in the folder that are not in `files` are kept.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{folder.name}.saving-*"):  # left by a killed writer
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.saving-", dir=folder.parent))
    try:
        for name, data in files.items():
            _write_durably(staging / name, data)
        if folder.exists():
            for item in folder.iterdir():
                if item.name in files:
                    continue
                if item.is_dir():
                    shutil.copytree(item, staging / item.name)
                else:
                    try:
                        os.link(item, staging / item.name)  # free, and the content is shared
                    except OSError:
                        shutil.copy2(item, staging / item.name)
            os.chmod(staging, folder.stat().st_mode & 0o7777)
        else:
            os.chmod(staging, 0o755)
        _fsync_dir(staging)
        swap_in(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder
