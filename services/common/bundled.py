"""Model files shipped inside pinned registry packages, located without importing the package
and checked against a pinned sha256 before use (they come from small publishers)."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ValueError unless ``path`` hashes to ``expected``."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise ValueError(f"{path} has sha256 {digest.hexdigest()}, expected {expected}: refusing to load it")


@dataclass(frozen=True)
class BundledFile:
    """A file inside an installed distribution: ``package`` (distribution name) and ``path``
    relative to site-packages, with the sha256 it must have."""

    package: str
    path: str
    sha256: str

    def locate(self) -> Path:
        try:
            distribution = importlib.metadata.distribution(self.package)
        except importlib.metadata.PackageNotFoundError:
            message = f"the bundled model needs the `{self.package}` package: run `make install`"
            raise FileNotFoundError(message) from None
        return Path(str(distribution.locate_file(self.path)))

    def verified(self) -> Path:
        """The file's path, once its hash has been checked (once per process)."""
        return _verified(self)


@functools.cache
def _verified(bundled: BundledFile) -> Path:
    path = bundled.locate()
    verify_sha256(path, bundled.sha256)
    return path
