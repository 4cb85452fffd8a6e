"""Writing files so that a crash never leaves a half-written file where a good one was; hashing files."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

# mkstemp makes files only their owner can read; finished files get the usual umask-based mode.
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    On an exception the temporary file is removed and `path` keeps its old content.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> target.read_text()
    'hello'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def unused_name(name_for: Callable[[str], str], stem: str, used: set[str]) -> str:
    """`name_for(stem)`, or `name_for(stem_1)`, `name_for(stem_2)`... the first not in `used`.

    Names are compared without case, as macOS and Windows file systems do; the one returned is
    added to `used`. Batch commands use it so that no input's output overwrites another's.

    >>> used = set()
    >>> [unused_name(lambda s: s + ".jpg", "a", used) for _ in range(3)]
    ['a.jpg', 'a_1.jpg', 'a_2.jpg']
    >>> unused_name(lambda s: s + ".jpg", "A", used)
    'A_3.jpg'
    """
    name, n = name_for(stem), 0
    while name.lower() in used:
        n += 1
        name = name_for(f"{stem}_{n}")
    used.add(name.lower())
    return name


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in chunks (never the whole file in memory).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"
    >>> _ = p.write_bytes(b"abc")
    >>> file_digest(p, "md5")
    '900150983cd24fb0d6963f7d28e17f72'
    """
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


CACHE_ENV = "MASKDETECT_CACHE_DIR"


def user_cache_dir(kind: str) -> Path:
    """The per-user folder where files made from a model (its ONNX export, its int8 twin) are kept.

    `$MASKDETECT_CACHE_DIR/kind`, else `$XDG_CACHE_HOME/maskdetect/kind`, else
    `~/.cache/maskdetect/kind`; the temp folder when none of those can be written. Nothing is ever
    written beside a model: a model in a read-only folder works, and a shared one stays as shipped.
    Names in it carry the content hash of what they were made from, so a stale file is never used.

    >>> import os, tempfile
    >>> os.environ[CACHE_ENV] = tempfile.mkdtemp()
    >>> user_cache_dir("onnx").name
    'onnx'
    """
    base = os.environ.get(CACHE_ENV)
    if not base:
        base = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "maskdetect")
    for root in (Path(base), Path(tempfile.gettempdir()) / f"maskdetect-cache-{os.getuid()}"):
        folder = root / kind
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
    raise OSError(f"no writable cache folder for maskdetect's {kind} files (tried {base} and the temp "
                  f"folder); set {CACHE_ENV} to a writable folder")
