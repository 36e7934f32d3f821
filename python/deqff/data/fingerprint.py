"""A dataset file's fingerprint: the SHA-256 of its bytes (recipe manifests, model cards, checkpoints).

The same generation command on the same machine writes the same bytes (xTB MD is deterministic);
another machine or library build may not, so a regenerated dataset can differ from the one a
checkpoint was trained on."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file at `path`, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
