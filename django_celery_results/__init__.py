"""Celery result backends that store task results through Django.

``result_backend = "django-db"`` keeps results in the database through the ORM;
``result_backend = "django-cache"`` keeps them in a Django cache.
"""

from typing import NamedTuple

__version__ = "3.0.0.dev0"


class VersionInfo(NamedTuple):
    """The parts of :data:`__version__`, as ``django-celery-results`` exposes them."""

    major: int
    minor: int
    micro: int
    releaselevel: str
    serial: str


def _parse_version(text: str) -> VersionInfo:
    parts = text.split(".")
    major, minor, micro = (int(p) for p in parts[:3])
    return VersionInfo(major, minor, micro, parts[3] if len(parts) > 3 else "", "")


version_info = VERSION = _parse_version(__version__)

__all__ = ["VERSION", "__version__", "version_info"]
