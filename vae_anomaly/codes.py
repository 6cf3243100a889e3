"""The code-file format written by ``vae-anomaly encode`` and read by ``decode``.

A code file is an ``.npz`` with a JSON header (format version, the model's weights hash, the codes'
shape and kind) and a payload: float16 posterior means, or VQ-VAE code indices bit-packed to
ceil(log2(codebook size)) bits each. Decoding with another model is refused instead of returning
noise, and every header field is checked against the payload before anything is decoded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_path
from .errors import DataError, ModelError

if TYPE_CHECKING:
    from .generative import GenerativeModel

CODES_FORMAT = 1


def bits_for(codebook_size: int) -> int:
    return max(1, math.ceil(math.log2(codebook_size)))


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    flat = codes.astype(np.uint64).ravel()
    bitmat = ((flat[:, None] >> np.arange(bits, dtype=np.uint64)) & 1).astype(np.uint8)
    return np.packbits(bitmat.ravel())


def unpack_codes(packed: np.ndarray, bits: int, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape)) * bits
    bitmat = np.unpackbits(packed, count=count).reshape(-1, bits).astype(np.int64)
    return (bitmat << np.arange(bits)).sum(1).reshape(shape)


def save_codes(path: str | Path, gm: GenerativeModel, codes: np.ndarray) -> dict[str, Any]:
    """Write a code file atomically; returns its header (sizes included)."""
    header: dict[str, Any] = {"format": CODES_FORMAT, "model_sha256": gm.fingerprint, "n": int(len(codes)),
                              "shape": list(codes.shape)}
    if gm.is_vq:
        bits = bits_for(gm.model.config.codebook_size)
        payload = pack_codes(codes, bits)
        header.update(kind="vq", bits=bits)
    else:
        payload = codes.astype(np.float16)
        header.update(kind="gaussian", dtype="float16")
    with atomic_path(path, suffix=".tmp.npz") as tmp:
        np.savez(tmp, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), payload=payload)
    header["payload_bytes"] = int(payload.nbytes)
    return header


def load_codes(path: str | Path, gm: GenerativeModel) -> np.ndarray:
    """Read a code file, checking every header field against the payload before decoding anything."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as npz:
            header = json.loads(bytes(npz["header"]).decode())
            payload = npz["payload"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise DataError(f"not a readable vae-anomaly code file (truncated or another format): {exc}", file=path) from exc
    if not isinstance(header, dict):
        raise DataError("code file header is not an object", file=path)
    if header.get("format") != CODES_FORMAT:
        raise DataError(f"code file format {header.get('format')} is not supported (expected {CODES_FORMAT})", file=path)
    if header.get("model_sha256") != gm.fingerprint:
        raise ModelError(f"{path} was encoded by model {str(header.get('model_sha256'))[:12]}..., not by this model "
                         f"({gm.fingerprint[:12]}...): decode with the model that encoded it")
    shape = header.get("shape")
    if not (isinstance(shape, list) and shape and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                       for s in shape)):
        raise DataError(f"code file header: shape {shape!r} is not a list of sizes", file=path)
    if header.get("n") != shape[0]:
        raise DataError(f"code file header: n={header.get('n')!r} but the codes hold {shape[0]} rows", file=path)
    count = math.prod(shape)
    if header.get("kind") == "vq":
        bits = header.get("bits")
        if bits != bits_for(gm.model.config.codebook_size):
            raise DataError(f"code file header: {bits!r} bits per code, but this model's codebook needs "
                            f"{bits_for(gm.model.config.codebook_size)}", file=path)
        if payload.dtype != np.uint8 or payload.ndim != 1 or len(payload) != math.ceil(count * bits / 8):
            raise DataError(f"code file payload holds {payload.size} bytes; the header's shape {shape} needs "
                            f"{math.ceil(count * bits / 8)}", file=path)
        codes = unpack_codes(payload, bits, tuple(shape))
        if codes.max(initial=0) >= gm.model.config.codebook_size:
            raise DataError("code file holds code indices beyond this model's codebook", file=path)
        return codes
    if header.get("kind") != "gaussian":
        raise DataError(f"code file header: unknown kind {header.get('kind')!r}", file=path)
    if tuple(shape[1:]) != (gm.model.latent_dim,) or payload.shape != tuple(shape):
        raise DataError(f"code file: payload shaped {payload.shape}, header says {shape}, this model's latent "
                        f"has {gm.model.latent_dim} dimensions", file=path)
    return payload.astype(np.float32)
