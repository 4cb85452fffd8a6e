"""Reading images from any source, safely: one place that knows about EXIF, modes and bombs."""

from __future__ import annotations

import functools
import io
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

try:  # HEIC/HEIF, what iPhones save photos as; pillow-heif applies their orientation when it reads
    import pillow_heif
except ImportError:  # pragma: no cover - installed by scripts/install.sh
    pillow_heif = None
else:
    pillow_heif.register_heif_opener()

ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray

# The file suffixes every folder walk treats as images (lower case; compare with `suffix.lower()`).
IMAGE_SUFFIXES: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".heic", ".heif",
)

# The Pillow formats those suffixes hold (JPEG opens MPO too), the only ones opened: their headers give
# the size that decodes. Other formats' need not (an ICO's 16x16 entry may hold a 15000x15000 PNG,
# which Image.open itself decodes), so they are refused unread.
IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "WEBP", "GIF", "TIFF", "HEIF")

# Phones shoot 108 and 200 MP photos (12000x9000, 16320x12240): they are read (about 2 GB of memory
# for 108 MP through detection); past this a file is far more likely a bomb than a photo.
DEFAULT_MAX_PIXELS = 250_000_000
# Photos have 1 scan (baseline) or about 10 (progressive); each scan of a progressive JPEG makes the
# decoder pass over every coefficient again, so a small scan repeated 10,000 times is a decoding bomb
# (minutes of CPU for a 1 MB file). libjpeg-turbo's own tools refuse past 100 (djpeg -maxscans).
DEFAULT_MAX_SCANS = 100
# Pillow warns past MAX_IMAGE_PIXELS and refuses twice that, at 179 MP by default: a 200 MP photo would
# never reach the check above, which every read here makes from the header before decoding.
if Image.MAX_IMAGE_PIXELS is not None:  # None: the user has turned Pillow's guard off
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS, DEFAULT_MAX_PIXELS)


def find_files(
    root: str | os.PathLike,
    suffixes: tuple[str, ...] | frozenset[str] | set[str] = IMAGE_SUFFIXES,
    *,
    on_skip: Callable[[Path, str], None] | None = None,
) -> list[Path]:
    """Every regular file under `root` whose suffix (any case) is in `suffixes`, sorted: the one folder walk.

    Hidden files and folders (a leading dot) are left out; linked folders are followed, each real
    folder once. An entry that carries a wanted suffix but is no readable file (a dangling link, a
    FIFO, a folder named ``x.jpg``) is passed to `on_skip(path, reason)`, so callers can report it.

    Raises:
        FileNotFoundError: `root` is not a folder.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("b.JPG", "a/c.png", "notes.txt", ".hidden.jpg"):
    ...     (root / name).parent.mkdir(exist_ok=True); _ = (root / name).write_bytes(b"")
    >>> [p.relative_to(root).as_posix() for p in find_files(root)]
    ['a/c.png', 'b.JPG']
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    wanted = {s.lower() for s in suffixes}
    found: list[Path] = []
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree: walked already
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files + [d for d in dirs if Path(d).suffix.lower() in wanted]:
            path = Path(folder, name)
            if name.startswith(".") or path.suffix.lower() not in wanted:
                continue
            if path.is_file():
                found.append(path)
            elif on_skip is not None:
                on_skip(path, _not_a_file(path))
    return sorted(found)


def find_images(root: str | os.PathLike, *, on_skip: Callable[[Path, str], None] | None = None) -> list[Path]:
    """Every image file under `root` (`IMAGE_SUFFIXES`), sorted; see `find_files`."""
    return find_files(root, IMAGE_SUFFIXES, on_skip=on_skip)


def _not_a_file(path: Path) -> str:
    if path.is_symlink() and not path.exists():
        return "a link to nothing"
    if path.is_dir():
        return "a folder, not a file"
    return "not a regular file"


class ImageError(ValueError):
    """An input that is not a usable image; the message names the input and the problem."""


class ImageTooLargeError(ImageError):
    """An image with more pixels than allowed (a service answers 413 to it, not 422)."""


def _describe(source: ImageSource, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


def open_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
    name: str | None = None,
    max_scans: int = DEFAULT_MAX_SCANS,
) -> Image.Image:
    """Decode an image to RGB with its EXIF orientation applied.

    Args:
        source: a path, encoded bytes, a PIL image or an HxWx3 (or HxW) uint8 array (RGB).
        max_pixels: refuse images whose header claims more pixels than this, before decoding.
        draft_size: let JPEG decode at a reduced scale no smaller than this (much faster
            when the image is only going to be shrunk).
        name: how to call the input in error messages (defaults to the path).
        max_scans: refuse a JPEG with more scans than this, counted from its markers before decoding.

    Returns:
        A fully decoded RGB PIL image.

    Raises:
        ImageError: empty, truncated, corrupt, not an image, not a format read here
            (`IMAGE_FORMATS`), or too large.

    >>> open_image(np.zeros((4, 6, 3), np.uint8)).size
    (6, 4)
    """
    label = _describe(source, name)
    if isinstance(source, np.ndarray):
        return _from_array(source, label)
    if isinstance(source, Image.Image):
        return _finish(source, label, max_pixels, draft_size, max_scans)
    if isinstance(source, bytes):
        if not source:
            raise ImageError(f"{label}: empty input (0 bytes)")
        return _finish(_open(io.BytesIO(source), label, max_pixels), label, max_pixels, draft_size, max_scans)
    path = Path(source)
    if not path.is_file():
        raise ImageError(f"{label}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{label}: empty file (0 bytes)")
    with path.open("rb") as handle:
        return _finish(_open(handle, label, max_pixels), label, max_pixels, draft_size, max_scans)


def image_size(
    source: bytes | str | os.PathLike, *, name: str | None = None, oriented: bool = False
) -> tuple[int, int]:
    """Width and height from an image's header, without decoding its pixels (to budget for them).

    Args:
        source: a path or encoded bytes.
        name: how to call the input in error messages (defaults to the path).
        oriented: the size as shown, after the EXIF orientation (width and height swapped for a
            photo turned a quarter); read from the header too.

    Raises:
        ImageError: empty, not an image, not a format read here (`IMAGE_FORMATS`), or unreadable.

    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (6, 4)).save(buffer, "PNG")
    >>> image_size(buffer.getvalue())
    (6, 4)
    """
    label = _describe(source, name)
    if isinstance(source, bytes):
        if not source:
            raise ImageError(f"{label}: empty input (0 bytes)")
        return _header_size(_open(io.BytesIO(source), label, DEFAULT_MAX_PIXELS), label, oriented)
    path = Path(source)
    if not path.is_file():
        raise ImageError(f"{label}: no such file")
    with path.open("rb") as handle:
        return _header_size(_open(handle, label, DEFAULT_MAX_PIXELS), label, oriented)


def _header_size(image: Image.Image, label: str, oriented: bool) -> tuple[int, int]:
    width, height = image.size
    if not oriented:
        return width, height
    try:  # Image's own getexif: PNG's decodes every pixel to reach an eXIf chunk after them
        turned = Image.Image.getexif(image).get(0x0112, 1) in (5, 6, 7, 8)
    except (OSError, SyntaxError, ValueError) as err:
        raise _unreadable(label, err) from None
    return (height, width) if turned else (width, height)


def _open(handle: io.IOBase, label: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():  # _finish refuses too large a file with a clear error
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(handle, formats=_open_formats())
    except UnidentifiedImageError:
        raise ImageError(_unread_format(handle, label)) from None
    except Image.DecompressionBombError as err:
        # Pillow's own guard (twice MAX_IMAGE_PIXELS) fired first: quote our limit, not Pillow's.
        claimed = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(claimed[1]):,} pixels" if claimed else "too many pixels"
        raise ImageTooLargeError(f"{label}: {size} is over the limit of {max_pixels:,}") from None
    except (OSError, ValueError) as err:
        # ValueError: a PNG chunk read with the header (zTXt, iTXt, iCCP) that inflates past
        # Pillow's limit, among others.
        raise _unreadable(label, err) from None


@functools.cache
def _open_formats() -> tuple[str, ...]:
    Image.init()  # every plugin registered, so that Image.open finds each name (HEIF only with pillow-heif)
    return tuple(name for name in IMAGE_FORMATS if name in Image.OPEN)


def _unread_format(handle: io.IOBase, label: str) -> str:
    # Name the format of a file that is an image, just not one read here; no plugin is opened.
    try:
        handle.seek(0)
        prefix = handle.read(16)
    except (OSError, ValueError):
        prefix = b""
    for name in Image.ID:
        accept = Image.OPEN[name][1] if name not in IMAGE_FORMATS and name in Image.OPEN else None
        if prefix and accept is not None and accept(prefix) is True:
            return (f"{label}: {name} is not a format read here (only {', '.join(_open_formats())}): "
                    "its header need not give the size that decodes")
    return f"{label}: not an image Pillow can read"


def _unreadable(label: str, err: Exception) -> ImageError:
    if "MAX_TEXT_CHUNK" in str(err):
        return ImageError(
            f"{label}: PNG metadata (a zTXt, iTXt or iCCP chunk) inflates past "
            f"{PngImagePlugin.MAX_TEXT_CHUNK:,} bytes: refused as a decompression bomb"
        )
    return ImageError(f"{label}: corrupt or truncated image ({err})")


def _finish(
    image: Image.Image, label: str, max_pixels: int, draft_size: tuple[int, int] | None, max_scans: int
) -> Image.Image:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(f"{label}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{label}: {width}x{height} = {width * height:,} pixels is over the limit of {max_pixels:,}"
        )
    _check_scans(image, label, max_scans)
    try:
        if draft_size is not None and image.format == "JPEG":
            image.draft("RGB", draft_size)
        image.load()
        image = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(f"{label}: too many pixels ({err})") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise _unreadable(label, err) from None
    if image.mode != "RGB":
        image = _to_rgb(image)
    return image


# A marker: 0xFF (fill bytes may repeat it) then a code that is not stuffing (00), a restart marker
# (D0-D7, inside scan data) or more fill; everything between markers is segment or scan data.
_JPEG_MARKER = re.compile(rb"\xff+([^\x00\xd0-\xd7\xff])")
_SOS, _EOI = 0xDA, 0xD9


def jpeg_scan_count(data: bytes, stop_after: int | None = None) -> int:
    """How many scans (SOS markers) a JPEG holds, read from its markers without decoding.

    Segments are skipped by their stated length, so an EXIF thumbnail or ICC profile is not counted.

    Args:
        data: the encoded file.
        stop_after: stop counting once past this many (a bound on the work for a bomb).

    >>> import io
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (16, 16)).save(buffer, "JPEG", progressive=True)
    >>> jpeg_scan_count(buffer.getvalue()) > 1, jpeg_scan_count(b"not a jpeg")
    (True, 0)
    """
    if not data.startswith(b"\xff\xd8"):
        return 0
    scans, pos = 0, 2
    while (match := _JPEG_MARKER.search(data, pos)) is not None:
        marker = match.group(1)[0]
        if marker == _EOI:
            break
        if marker == 0x01:  # TEM: no length
            pos = match.end()
            continue
        scans += marker == _SOS
        if stop_after is not None and scans > stop_after:
            break
        pos = match.end() + int.from_bytes(data[match.end() : match.end() + 2], "big")
    return scans


def _check_scans(image: Image.Image, label: str, max_scans: int) -> None:
    if image.format not in ("JPEG", "MPO") or getattr(image, "fp", None) is None:
        return
    try:
        where = image.fp.tell()
        image.fp.seek(0)
        data = image.fp.read()
        image.fp.seek(where)
    except (OSError, ValueError):  # a caller's image whose file is gone: load() will say so
        return
    scans = jpeg_scan_count(data, stop_after=max_scans)
    if scans > max_scans:
        raise ImageError(
            f"{label}: JPEG with more than {max_scans:,} scans (photos have at most a few dozen): "
            f"refused before decoding; the limit is {max_scans:,}"
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I") or image.mode == "F":
        return _deep_grey_to_rgb(image)
    # Transparent pixels become white rather than whatever colour the encoder left under them.
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def _deep_grey_to_rgb(image: Image.Image) -> Image.Image:
    # 16-bit and 32-bit grey (scans, medical and machine-vision cameras): Pillow's convert clips
    # every value over 255 to white, so scale by the depth the values show instead.
    grey = np.asarray(image, dtype=np.float64)
    top = float(grey.max(initial=0.0))
    if image.mode.startswith("I;16") or 255 < top <= 65535:
        full = 65535.0
    elif top <= 1.0 and image.mode == "F":
        full = 1.0
    else:
        full = max(top, 255.0)
    scaled = np.clip(np.rint(grey * (255.0 / full)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, "L").convert("RGB")


def _from_array(array: np.ndarray, label: str) -> Image.Image:
    if array.dtype != np.uint8:
        raise ImageError(f"{label}: array dtype must be uint8, got {array.dtype}")
    if array.ndim == 2:
        return Image.fromarray(array, "L").convert("RGB")
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(array[:, :, :3]), "RGB")
    raise ImageError(f"{label}: array shape must be HxW or HxWx3, got {array.shape}")
