"""The two Celery result backends: ``django-db`` and ``django-cache``."""

from .cache import CacheBackend
from .database import DatabaseBackend

__all__ = ["CacheBackend", "DatabaseBackend"]
