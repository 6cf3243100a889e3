"""Atomic file output: write to a temporary file beside the target, then rename.

A reader never sees a half-written file, and a crash leaves the previous
version (or nothing) in place. Write failures a user can fix (a full disk, a
read-only or missing folder) become a :class:`DataError` naming the target,
with the temporary file removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import DataError

# errno values that mean "the place you asked us to write to cannot take it".
_USER_FIXABLE = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                 errno.EFBIG: "file too large for this file system or limit",
                 errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                 errno.EPERM: "permission denied", errno.ENOENT: "folder does not exist",
                 errno.ENOTDIR: "a parent of the path is a file, not a folder",
                 errno.EEXIST: "a parent of the path is a file, not a folder",
                 errno.ENAMETOOLONG: "file name too long"}


def _as_data_error(exc: OSError, target: Path) -> DataError | None:
    reason = _USER_FIXABLE.get(exc.errno or -1)
    if reason is None:
        return None
    return DataError(f"cannot write the output: {reason}; nothing was written", file=target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _user_fixable(target: Path) -> Iterator[None]:
    """OSErrors the user can fix (full disk, read-only folder) become one-line DataErrors naming ``target``."""
    try:
        yield
    except OSError as exc:
        err = _as_data_error(exc, target)
        if err is None:
            raise
        raise err from exc


def _make_parent(target: Path) -> None:
    with _user_fixable(target):
        target.parent.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success."""
    target = Path(target)
    if target.is_dir():
        raise DataError("the output names a folder; give a file name", file=target)
    _make_parent(target)
    with _user_fixable(target):
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=suffix if suffix is not None else ".tmp" + target.suffix,
            dir=target.parent,
        )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the output the permissions a plain open() would.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        err = _as_data_error(exc, target)
        if err is None:
            raise
        raise err from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder; it replaces ``target`` (a folder) on success.

    On Linux the old and new folders are swapped in one ``renameat2(RENAME_EXCHANGE)``, so a reader
    sees either the whole old folder or the whole new one; elsewhere two renames leave a short
    window with no folder at all (never a mixed one).
    """
    target = Path(target).absolute()
    _make_parent(target)
    with _user_fixable(target):
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if target.exists():
            replace_folder(tmp, target)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        err = _as_data_error(exc, target)
        if err is None:
            raise
        raise err from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


# How long a job that must not wait tries for a lock before it refuses (a holder releasing it meanwhile is
# not another job).
REFUSE_AFTER_S = 0.2


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike[str], *, what: str, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block (``filelock.FileLock``: ``flock`` on POSIX,
    ``LockFileEx`` on Windows); the lock file is removed after.

    ``wait=False`` refuses at once when another process holds it (two jobs writing one output);
    ``wait=True`` queues (promotions of one model name, which must happen one after the other).
    The file is unlinked while still locked; filelock retries a lock it took on a file that was unlinked
    meanwhile, so two processes can never both believe they hold it. A single attempt could meet the file
    a holder has just unlinked and report "held" with no holder left: ``wait=False`` tries for
    ``REFUSE_AFTER_S`` before refusing.
    """
    from filelock import FileLock, Timeout

    path = Path(path)
    _make_parent(path)
    lock = FileLock(path, timeout=-1 if wait else REFUSE_AFTER_S)
    try:
        with _user_fixable(path):
            lock.acquire()
    except Timeout as exc:
        raise DataError(f"another job is already writing {what}; wait for it or choose another output",
                        file=path) from exc
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # Windows: filelock removes it after the release instead
            path.unlink()
        lock.release()


def replace_folder(new: Path, old: Path) -> None:
    """Put the folder ``new`` in the place of ``old``: one renameat2 exchange where Linux allows, else two
    renames with the old folder set aside first; the old contents are removed afterwards."""
    if _exchange(new, old):
        shutil.rmtree(new, ignore_errors=True)  # new now holds the old folder
        return
    aside = old.with_name(f".{old.name}.old-{os.getpid()}")
    os.replace(old, aside)
    os.replace(new, old)
    shutil.rmtree(aside, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
