"""Files recbole_dnr writes and reads back: checkpoints, resume states, list and retriever caches.

- :func:`save` writes atomically (sibling temp file, fsync, ``os.replace``): a crash or a full
  disk never leaves a half-written file under the real name. It appends a 40-byte trailer,
  ``b"RDNRSUM1"`` + SHA-256 of the bytes before it; zip readers ignore trailing bytes, so
  ``torch.load`` still reads the file.
- :func:`load` checks the trailer before unpickling anything: a truncated file or a flipped bit
  (a partial copy, a bad disk) raises :class:`CorruptFileError` and is never loaded. Files
  without a trailer (written before it existed) are loaded as they are.
- :func:`load_cache` is :func:`load` for caches: a missing or damaged cache is ``None`` (rebuilt).
- :func:`file_lock` serialises two processes building the same cache: the second waits, then
  reads what the first wrote instead of building it again.
- :func:`claim` marks a file as this process's for as long as the process lives (two runs of the
  same training would otherwise write one resume file in turns); the next claimant waits or fails.
- :func:`file_digest` fingerprints a data file by content, so a cache outlives a re-copy.
- :func:`check_writable` fails before any long work when an output folder cannot be written or
  its disk has less free space than the run needs.
"""

import contextlib
import errno
import hashlib
import io
import logging
import os
import shutil
import tempfile

from recbole.utils import set_color

from recbole_dnr import compat
from recbole_dnr.errors import UserInputError

MAGIC = b"RDNRSUM1"
TRAILER = len(MAGIC) + 32
_CHUNK = 1 << 20


class CorruptFileError(RuntimeError):
    """A file we wrote no longer matches its checksum (truncated or altered)."""


def _digest(f, n):
    h = hashlib.sha256()
    f.seek(0)
    while n > 0:
        block = f.read(min(_CHUNK, n))
        if not block:
            break
        h.update(block)
        n -= len(block)
    return h.digest()


def file_digest(path):
    """SHA-256 hex digest of a file's bytes (cache keys of the data files a run reads)."""
    with open(path, "rb") as f:
        return _digest(f, os.path.getsize(path)).hex()


def save(obj, path):
    """``torch.save(obj)`` to ``path`` atomically, with a checksum trailer."""
    import torch

    path = str(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pth", dir=directory)
    try:
        with os.fdopen(fd, "w+b") as f:
            torch.save(obj, f, pickle_protocol=4)
            f.flush()
            size = f.tell()
            digest = _digest(f, size)
            f.seek(size)
            f.write(MAGIC + digest)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserInputError(f"disk full while writing {path} ({_free(directory)} free): free space or set "
                                 "checkpoint_dir to another disk; the previous file under that name is intact") from err
        raise
    except BaseException:
        _remove(tmp)
        raise


def verify(path):
    """Raise :class:`CorruptFileError` when ``path`` carries a trailer that does not match its bytes.
    Returns True when a trailer was checked, False for a file without one."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if size >= TRAILER:
            f.seek(size - TRAILER)
            tail = f.read(TRAILER)
            if tail[:len(MAGIC)] == MAGIC:
                if _digest(f, size - TRAILER) != tail[len(MAGIC):]:
                    raise CorruptFileError(f"{path} does not match its checksum (truncated or altered)")
                return True
        # no trailer at the end: an old file, or a new one cut short (its trailer is gone with its end)
        f.seek(0)
        head = f.read(4)
    if head != b"PK\x03\x04":
        raise CorruptFileError(f"{path} is not a torch file")
    return False


def load(path, map_location="cpu", pickle_module=None):
    """The object saved at ``path``, after :func:`verify`; ``pickle_module``: as ``torch.load``'s."""
    path = str(path)
    verify(path)
    try:
        return compat.load_checkpoint(path, map_location=map_location, pickle_module=pickle_module)
    except UserInputError:  # raised by pickle_module (a class it cannot import): not a damaged file
        raise
    except Exception as err:  # an old, trailer-less file that is damaged: torch raises several types
        raise CorruptFileError(f"{path} cannot be read ({type(err).__name__}: {str(err)[:120]})") from err


def load_cache(path):
    """The cached object at ``path``, or None when there is none or it is damaged (then rebuilt)."""
    if not os.path.isfile(path):
        return None
    try:
        return load(path)
    except CorruptFileError as err:
        logging.getLogger().warning(set_color("Damaged cache rebuilt", "red") + f": {err}")
        return None


@contextlib.contextmanager
def file_lock(path):
    """Exclusive inter-process lock on ``path + '.lock'`` (POSIX ``flock``; elsewhere a no-op, where
    the atomic write alone keeps the file whole, at the cost of building it twice)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(str(path) + ".lock", "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


_CLAIMS = {}  # path -> open lock file of a claim this process holds


def claim(path, wait=False, on_wait=None):
    """Hold an exclusive lock on ``path + '.lock'`` until :func:`release` or the process ends (the
    kernel drops it then, also on SIGKILL, so no stale lock survives a crash). True when held; with
    ``wait=False`` False when another process holds it; with ``wait=True`` blocks, calling
    ``on_wait()`` once first. A second claim by the same process is a no-op. POSIX ``flock``;
    elsewhere always True."""
    key = os.path.abspath(str(path))
    if key in _CLAIMS:
        return True
    try:
        import fcntl
    except ImportError:  # Windows
        return True
    os.makedirs(os.path.dirname(key), exist_ok=True)
    waited = False
    while True:
        f = open(key + ".lock", "a")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                f.close()
                return False
            if on_wait and not waited:
                on_wait()
            waited = True
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:  # the holder may have released by deleting the lock file: then ours locks a dead inode
            if os.stat(key + ".lock").st_ino == os.fstat(f.fileno()).st_ino:
                _CLAIMS[key] = f
                return True
        except FileNotFoundError:
            pass
        f.close()


def release(path, remove=False):
    """Drop this process's claim on ``path``; ``remove`` also deletes the lock file (a finished run)."""
    key = os.path.abspath(str(path))
    f = _CLAIMS.pop(key, None)
    if f is not None:
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.remove(key + ".lock")  # before unlocking: a waiter then finds its inode gone and retries
        f.close()  # closing the only descriptor drops the flock


def _replace(path, data):
    """Write ``data`` (bytes) to a temporary file beside ``path``, then rename it over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see the old file
    or the whole new one, never a part."""
    _replace(path, text.encode("utf-8"))


def write_if_changed(path, data):
    """Write ``data`` (bytes) to ``path`` atomically, unless the file already holds exactly that:
    re-rendering unchanged results leaves files, their times and git untouched. True if written."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except OSError:
        pass
    _replace(path, data)
    return True


def replace_block(path, tag, lines, generator):
    """Rewrite what lies between ``<!-- BEGIN tag (generated by generator) -->`` and ``<!-- END tag -->``
    in the markdown file ``path`` with ``lines`` (appended at the end when the markers are missing);
    the rest of the file is kept. Returns ``path``."""
    begin, end = f"<!-- BEGIN {tag} (generated by {generator}) -->", f"<!-- END {tag} -->"
    body = "\n".join([begin, "", *lines, end])
    text = open(path, encoding="utf-8").read() if os.path.isfile(path) else ""
    if begin in text and end in text:
        text = text[:text.index(begin)] + body + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    write_if_changed(path, text.encode("utf-8"))
    return path


def pyplot():
    """matplotlib's pyplot on the headless Agg backend (what :func:`save_figure` writes from), or None
    when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(fig, path, dpi=110):
    """A matplotlib figure as PNG with fixed metadata (no software version), written only when its
    bytes changed: the same data renders to the same file."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return write_if_changed(path, buf.getvalue())


def check_writable(folder, need_bytes=0, what="output folder", fix="choose a folder you can write"):
    """Create ``folder`` and write a probe file there; fail clearly when that is impossible or
    the disk has less than ``need_bytes`` free; ``fix`` tells the user what to change."""
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise UserInputError(f"{what} {os.path.abspath(folder)} is not writable ({err.strerror}): {fix}") from err
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise UserInputError(f"{what} {os.path.abspath(folder)} has {_human(free)} free; this run needs about "
                             f"{_human(need_bytes)}: free space, or {fix}")


def _free(directory):
    try:
        return _human(shutil.disk_usage(directory).free)
    except OSError:
        return "unknown"


def _human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _remove(path):
    with contextlib.suppress(OSError):
        os.remove(path)
