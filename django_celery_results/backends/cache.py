"""``result_backend = "django-cache"``: task results in a Django cache."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery.backends.base import KeyValueStoreBackend
from kombu.utils.encoding import bytes_to_str

from .chords import GroupBodyFailures


class CacheBackend(GroupBodyFailures, KeyValueStoreBackend):  # type: ignore[misc]  # Celery is untyped
    """Celery result backend storing results in the Django cache named by ``cache_backend``.

    Values are serialized with ``result_serializer`` (JSON by default) and read
    back only if ``accept_content`` allows their content type: ``encode`` and
    ``decode`` (public API) are Celery's own.
    """

    supports_native_join = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Celery's own cache backend reads this setting as a URL; here it is a
        # Django cache alias.
        self._cache_alias = self.app.conf.get("cache_backend") or "default"

    @property
    def cache_backend(self) -> Any:
        """The Django cache in use (``caches[alias]``)."""
        from django.core.cache import caches

        return caches[self._cache_alias]

    @property
    def _timeout(self) -> float | None:
        # result_expires None/0 means "keep". Django's timeout 0 means "do
        # not store at all", so it must become None (keep forever) here.
        return self.expires or None

    def get(self, key: bytes | str) -> Any:
        return self.cache_backend.get(bytes_to_str(key))

    def mget(self, keys: Iterable[bytes | str]) -> list[Any]:
        names = [bytes_to_str(k) for k in keys]
        found = self.cache_backend.get_many(names)
        return [found.get(name) for name in names]

    def set(self, key: bytes | str, value: Any) -> None:
        self.cache_backend.set(bytes_to_str(key), value, self._timeout)

    def delete(self, key: bytes | str) -> None:
        self.cache_backend.delete(bytes_to_str(key))
