"""Image readers: folders of PNG/JPEG, NPZ arrays and IDX files (plain or gzipped).

All return ``uint8`` (``uint16`` for 16-bit images) or float arrays shaped ``(n, C, H, W)`` with one size per
data set; a file that breaks that rule is named in the error.
"""

from __future__ import annotations

import gzip
import math
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# IDX type codes (LeCun's format, used by MNIST and Fashion-MNIST).
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
NPZ_IMAGE_KEYS = ("X", "x", "images", "x_train", "data")
NPZ_LABEL_KEYS = ("y", "labels", "y_train", "targets")


@dataclass
class ImageSet:
    """Images ``(n, C, H, W)``, optional integer labels and their class names."""

    images: np.ndarray
    labels: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def to_nchw(images: np.ndarray, *, source: str | Path | None = None) -> np.ndarray:
    """Accept (n, H, W), (n, H, W, C) with C in {1, 3, 4} or (n, C, H, W); return (n, C, H, W)."""
    if images.ndim == 3:
        return images[:, None, :, :]
    if images.ndim == 4:
        if images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
            return images
        if images.shape[-1] in (1, 3, 4):
            return np.ascontiguousarray(np.moveaxis(images[..., :3] if images.shape[-1] == 4 else images, -1, 1))
        if images.shape[1] in (1, 3):
            return images
    raise DataError(f"expected images shaped (n, H, W), (n, H, W, C) or (n, C, H, W), got {images.shape}",
                    file=source)


def read_image_folder(
    path: str | Path, *, size: tuple[int, int] | None = None, mode: str | None = None
) -> ImageSet:
    """Read a folder of images; each sub-folder is a class. A flat folder gives no labels.

    ``size`` (H, W) resizes every image; without it all images must share the first one's size.
    ``mode`` is ``"L"`` (grayscale) or ``"RGB"``; without it the first image decides.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise DataError("not a folder", file=root)
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    groups = [(d.name, sorted(f for f in d.iterdir() if f.is_file() and not f.name.startswith("."))) for d in subdirs]
    loose = sorted(f for f in root.iterdir() if f.is_file() and not f.name.startswith("."))
    if subdirs and loose:
        raise DataError("folder mixes class sub-folders and loose files", file=loose[0])
    if not subdirs:
        groups = [("", loose)]
    arrays, labels, files = [], [], []
    ref_shape: tuple[int, ...] | None = None
    for label, (_name, group) in enumerate(groups):
        for file in group:
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"not an image file (suffix {file.suffix!r}); expected one of {IMAGE_SUFFIXES}",
                                file=file)
            try:
                with warnings.catch_warnings():
                    # Pillow only warns between its two pixel limits and decodes the image anyway.
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    with Image.open(file) as im:
                        im.load()
                        if mode is None:
                            mode = "RGB" if im.mode not in ("L", "1", "F", "LA") and not im.mode.startswith("I") else "L"
                        arr = _pixels(im, mode, size, file)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise DataError(f"image too large to read safely ({exc}); a decompression bomb or an image far "
                                f"larger than a data set's: Pillow's limit is {Image.MAX_IMAGE_PIXELS:,} pixels",
                                file=file) from None
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                raise DataError(f"corrupt or unreadable image: {exc}", file=file) from exc
            arr = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
            if ref_shape is None:
                ref_shape = arr.shape
            elif arr.shape != ref_shape:
                raise DataError(f"image size {arr.shape[1:]} differs from the data set's {ref_shape[1:]} "
                                "(pass a target size to resize)", file=file)
            arrays.append(arr)
            labels.append(label)
            files.append(str(file))
    if not arrays:
        raise DataError("folder holds no images", file=root)
    if any(a.dtype == np.uint16 for a in arrays):
        # One 16-bit image makes the set 16-bit: 8-bit images join on the same scale (255 -> 65535).
        arrays = [a.astype(np.uint16) * np.uint16(257) if a.dtype == np.uint8 else a for a in arrays]
    names = [g[0] for g in groups] if subdirs else []
    return ImageSet(np.stack(arrays), np.asarray(labels, dtype=np.int64) if subdirs else None, names, files)


def _pixels(im: Any, mode: str, size: tuple[int, int] | None, file: Path) -> np.ndarray:
    """An opened image as (H, W) or (H, W, 3) pixels: uint8, or uint16 for 16-bit grayscale.

    Converting a 16-bit image ("I;16*", or "I" as some Pillow versions open 16-bit PNGs) to "L" clips
    every value above 255, leaving 0 and 255: those images are read at their depth instead.
    """
    if im.mode.startswith("I"):
        im = im.convert("I")  # 32-bit integers: lossless for 16-bit data, and resizable
        if size is not None:
            im = im.resize((size[1], size[0]))
        wide = np.asarray(im, dtype=np.int64)
        if wide.size and (wide.min() < 0 or wide.max() > 65535):
            raise DataError(f"integer pixels outside 0..65535 (from {int(wide.min())} to {int(wide.max())}); "
                            "only 8- and 16-bit images are supported", file=file)
        arr = wide.astype(np.uint16)
        return np.repeat(arr[..., None], 3, axis=-1) if mode == "RGB" else arr
    im = im.convert(mode)
    if size is not None:
        im = im.resize((size[1], size[0]))
    return np.asarray(im, dtype=np.uint8)


def read_npz(path: str | Path, *, x_key: str | None = None, y_key: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read arrays from an ``.npz``; never unpickles (object arrays are refused)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", file=path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
            xk = x_key or next((k for k in NPZ_IMAGE_KEYS if k in keys), None)
            if xk is None or xk not in keys:
                raise DataError(f"no data array found (keys: {keys}; pass the key of the data array)", file=path)
            X = npz[xk]
            yk = y_key or next((k for k in NPZ_LABEL_KEYS if k in keys), None)
            if y_key is not None and y_key not in keys:
                raise DataError(f"no array named {y_key!r} (keys: {keys})", file=path)
            y = npz[yk] if yk is not None else None
    except DataError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise DataError(f"unreadable or truncated NPZ archive: {exc}", file=path) from exc
    if X.size == 0 or X.shape[0] == 0:
        raise DataError("data array is empty", file=path)
    if y is not None and len(y) != len(X):
        raise DataError(f"{len(X)} samples but {len(y)} labels", file=path)
    if X.dtype.kind == "f":
        bad = ~np.isfinite(X.reshape(len(X), -1))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise DataError("NaN or infinite value", file=path, index=(int(r), int(c)))
    elif X.dtype.kind not in "uib":
        raise DataError(f"data array has non-numeric dtype {X.dtype}", file=path)
    return X, y


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain) as Fashion-MNIST ships: magic, dims, big-endian body."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", file=path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"unreadable or truncated gzip archive: {exc}", file=path) from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(f"bad IDX magic number {raw[:4].hex() or '(empty file)'} (expected 0000 <type> <ndim>)",
                        file=path)
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    ndim = raw[3]
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise DataError(f"IDX header truncated ({ndim} dimensions declared)", file=path)
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if 0 in dims:
        raise DataError(f"IDX header declares dimensions {dims}: the file holds 0 images", file=path)
    # Python integers: np.prod of large header dimensions wrapped around in int64 (negative sizes).
    expected = math.prod(dims) * dtype.itemsize
    body = len(raw) - 4 - 4 * ndim
    if body != expected:
        raise DataError(f"IDX body is {body:,} bytes, header {dims} needs {expected:,} bytes "
                        f"({'truncated' if body < expected else 'trailing bytes'})", file=path)
    return np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an IDX file (gzipped when the name ends in .gz); used for examples and tests."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    arr = np.ascontiguousarray(array)
    code = codes.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"dtype {arr.dtype} has no IDX code", file=path)
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    body = arr.astype(IDX_DTYPES[code]).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as fh:
        fh.write(header + body)
