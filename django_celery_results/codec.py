"""Celery result meta <-> table values, with no Django import.

The stored formats are those of the installed base: ``result``, ``meta``,
``task_args`` and ``task_kwargs`` hold the serializer's text, base64 when the
serializer's encoding is ``binary`` (pickle). Rows are decoded with the content
type they were written with, so changing ``result_serializer`` does not make
older rows unreadable.
"""

from __future__ import annotations

import binascii
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast, overload

from celery import states
from celery.utils.serialization import b64decode, b64encode
from kombu.exceptions import DecodeError, EncodeError
from kombu.serialization import dumps, loads, prepare_accept_content, registry
from kombu.utils import json as kombu_json
from kombu.utils.encoding import safe_repr

BINARY = "binary"
JSON = "application/json"

#: The ``meta`` texts almost every row holds (no user metadata), decoded without parsing.
_PLAIN_JSON_META: dict[str, Any] = {'{"children": []}': list, '{"children": null}': lambda: None}

#: The keys of a stored meta without user metadata or lineage, as most rows hold.
_CHILDREN_ONLY = frozenset({"children"})

#: Keys of the meta Celery reads back. User data from ``request.meta`` is
#: stored beside them but can never replace them.
PROTOCOL_KEYS = frozenset(
    {
        "task_id",
        "status",
        "result",
        "traceback",
        "children",
        "date_done",
        "name",
        "args",
        "kwargs",
        "worker",
        "retries",
        "queue",
        "periodic_task_name",
        "date_started",
        "date_created",
        "task_name",
        "task_args",
        "task_kwargs",
        "group_id",
        "parent_id",
    }
)


#: Prefix of a text stored escaped. No engine stores lone UTF-16 surrogates
#: (common in exception messages holding file names: ``os.fsdecode``), and
#: PostgreSQL rejects NUL characters in text columns; a text holding either is
#: stored as this prefix plus its ASCII ``unicode_escape`` form, which (unlike
#: JSON) tells a surrogate pair from the astral character it would encode. A
#: text that happens to start with the prefix is escaped too, so every value
#: reads back exactly.
ESCAPED_TEXT_PREFIX = "\u2063dcr-esc:"

#: Characters that make a text unstorable as is.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def needs_escape(value: str) -> bool:
    """Whether ``value`` holds a character some engine cannot store (NUL, a lone surrogate)."""
    return _UNSTORABLE.search(value) is not None


@overload
def escape_text(value: str) -> str: ...
@overload
def escape_text(value: None) -> None: ...
def escape_text(value: str | None) -> str | None:
    """``value`` as storable text on every engine (see :data:`ESCAPED_TEXT_PREFIX`)."""
    if value is None or (not needs_escape(value) and not value.startswith(ESCAPED_TEXT_PREFIX)):
        return value
    return ESCAPED_TEXT_PREFIX + value.encode("unicode_escape").decode("ascii")


def unescape_text(value: str | None) -> str | None:
    """The exact text :func:`escape_text` was given."""
    if value is None or not value.startswith(ESCAPED_TEXT_PREFIX):
        return value
    return value[len(ESCAPED_TEXT_PREFIX) :].encode("ascii").decode("unicode_escape")


def printable(value: str) -> str:
    """``value`` with each NUL and lone surrogate written as its backslash escape, for pages."""
    return _UNSTORABLE.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), value)


def _json_decoder() -> Callable[[str], Any] | None:
    """kombu's registered JSON decoder; when it is kombu's own, one reusable decoder doing the same.

    ``json.loads`` with an ``object_hook`` builds a new decoder on every call,
    which costs as much as decoding a small result.
    """
    registered = registry._decoders.get(JSON)
    parameters = inspect.signature(kombu_json.loads).parameters if registered is kombu_json.loads else {}
    hook, parse = parameters.get("object_hook"), parameters.get("_loads")
    if hook is None or parse is None or parse.default is not json.loads or not callable(hook.default):
        return registered
    return json.JSONDecoder(object_hook=hook.default).decode


def _json_encoder(serializer: str) -> Callable[[Any], str] | None:
    """For kombu's own JSON serializer, one reusable encoder doing what its ``dumps`` does; else ``None``.

    ``json.dumps`` with a ``cls`` builds a new encoder on every call, which
    costs as much as encoding a small result.
    """
    registered = registry._encoders.get(serializer)
    if registered is None or registered.encoder is not kombu_json.dumps:
        return None
    if (registered.content_type, registered.content_encoding) != (JSON, "utf-8"):
        return None
    parameters = inspect.signature(kombu_json.dumps).parameters
    encoder, encode, extra = parameters.get("cls"), parameters.get("_dumps"), parameters.get("default_kwargs")
    if encoder is None or encode is None or extra is None or extra.default is not None:
        return None
    if encode.default is not json.dumps or not isinstance(encoder.default, type):
        return None
    return cast("Callable[[Any], str]", encoder.default().encode)


def _plain_json_string(text: str) -> bool:
    """Whether ``text`` is a JSON string literal with no escape: its value is the text inside the quotes."""
    inner = text[1:-1]
    return len(text) >= 2 and text[0] == text[-1] == '"' and "\\" not in inner and '"' not in inner


class Codec:
    """Serialize values as the backend's serializer does; read any accepted content type."""

    def __init__(self, serializer: str, accept: Iterable[str]) -> None:
        self.serializer = serializer
        # Names ("json") or content types ("application/json") alike.
        self.accept = prepare_accept_content(list(accept))
        self._constant_meta: dict[str, str] = {}
        # JSON is read on every poll: its decoder is called directly, as kombu's loads would.
        self._json_decoder = _json_decoder() if JSON in self.accept else None
        # ... and written on every store, three times (result, args, kwargs).
        self._json_encoder = _json_encoder(serializer)

    def encode(self, data: Any) -> tuple[str, str, str]:
        """Return ``(content_type, content_encoding, text)`` for ``data``."""
        if self._json_encoder is not None:
            try:
                return JSON, "utf-8", self._json_encoder(data)
            except Exception as error:  # what kombu's dumps raises for it
                raise EncodeError(error) from error
        content_type, content_encoding, payload = dumps(data, serializer=self.serializer)
        if content_encoding == BINARY:
            payload = b64encode(payload)
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8")
        return content_type, content_encoding, payload

    def encode_leniently(self, data: Any) -> str:
        """The text of ``data``, or of its ``repr`` when the serializer cannot encode it.

        For what only describes a task (its arguments, user metadata): that
        must never cost the task its result.
        """
        try:
            return self.encode(data)[2]
        except (EncodeError, TypeError, ValueError):
            return self.encode(safe_repr(data))[2]

    def encode_meta(self, user: dict[str, Any], children: list[Any] | None) -> str:
        """The ``meta`` column: user metadata (and :func:`lineage`) and the task's children.

        Most tasks have none, and the text for that is the same every time.
        User values the serializer cannot encode are stored as their ``repr``.
        """
        if user or children:
            try:
                return self.encode({**user, "children": children})[2]
            except (EncodeError, TypeError, ValueError):
                shown = {str(key): safe_repr(value) for key, value in user.items()}
                return self.encode({**shown, "children": children})[2]
        key = "children-none" if children is None else "children-empty"
        cached = self._constant_meta.get(key)
        if cached is None:
            cached = self._constant_meta[key] = self.encode({"children": children})[2]
        return cached

    def decode(self, content_type: str, content_encoding: str, text: str | None) -> Any:
        """Decode one stored column; empty columns decode to ``None``."""
        text = unescape_text(text)
        if not text:
            return None
        if content_type == JSON and self._json_decoder is not None and content_encoding == "utf-8":
            if _plain_json_string(text):
                # Arguments are stored as their repr's JSON string: no parser needed.
                return text[1:-1]
            try:
                return self._json_decoder(text)
            except Exception as error:  # what kombu's loads raises for it
                raise DecodeError(error) from error
        payload: str | bytes = b64decode(text) if content_encoding == BINARY else text
        return loads(payload, content_type, content_encoding, accept=self.accept)

    def decode_meta(self, content_type: str, content_encoding: str, text: str | None) -> dict[str, Any]:
        """The ``meta`` column as a dict (empty when there is none)."""
        if content_type == JSON and text in _PLAIN_JSON_META and self._json_decoder is not None:
            return {"children": _PLAIN_JSON_META[text]()}
        return self.decode(content_type, content_encoding, text) or {}

    def decode_lenient(self, content_type: str, content_encoding: str, text: str | None) -> Any:
        """Decode ``task_args``/``task_kwargs``; text that does not decode is returned as is.

        Rows written by very old versions hold plain ``repr`` text there.
        """
        try:
            return self.decode(content_type, content_encoding, text)
        except (DecodeError, binascii.Error, ValueError):
            return text


#: The columns Celery's meta is built from (:func:`task_meta`), in the order it reads them.
META_COLUMNS = (
    "task_id",
    "status",
    "content_type",
    "content_encoding",
    "result",
    "traceback",
    "meta",
    "date_done",
    "date_started",
    "task_name",
    "task_args",
    "task_kwargs",
    "worker",
    "periodic_task_name",
    "retries",
    "queue",
)

#: What a join needs of a finished task (:func:`ready_meta`): nothing that only describes it.
READY_COLUMNS = ("task_id", "status", "content_type", "content_encoding", "result", "traceback", "meta")


#: The largest ``retries`` the column holds (a 32-bit positive integer on every engine).
MAX_RETRIES_STORED = 2**31 - 1


def _text(value: Any) -> str | None:
    """``value`` if it is text, else ``None``: a name that is not a string names nothing."""
    return value if isinstance(value, str) else None


def _retries(value: Any) -> int | None:
    """``value`` if it is a count the column holds, else ``None``."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_RETRIES_STORED:
        return value
    return None


def _arguments(request: Any, shown: str, given: str) -> Any:
    """``argsrepr`` (as text) when the request has one, else the arguments themselves."""
    value = getattr(request, shown, None)
    if value is None:
        return getattr(request, given, None)
    return value if isinstance(value, str) else safe_repr(value)


def request_fields(request: Any, extended: bool) -> dict[str, Any]:
    """The columns that describe what ran: name, arguments, worker, periodic task, retries, queue.

    ``argsrepr``/``kwargsrepr`` are stored rather than the arguments themselves,
    as the installed base does: Celery lets tasks mask secrets there. Any
    object may come as the request (a test's mock, a ``SimpleNamespace``):
    a field of the wrong type is stored as NULL (docs/values.rst).
    """
    if request is None or not extended:
        return {}
    delivery_info = getattr(request, "delivery_info", None)
    routing_key = delivery_info.get("routing_key") if isinstance(delivery_info, Mapping) else None
    return {
        "task_name": _text(getattr(request, "task", None)),
        "task_args": _arguments(request, "argsrepr", "args"),
        "task_kwargs": _arguments(request, "kwargsrepr", "kwargs"),
        "worker": _text(getattr(request, "hostname", None)),
        "periodic_task_name": _text(getattr(request, "periodic_task_name", None)),
        "retries": _retries(getattr(request, "retries", None)),
        "queue": _text(routing_key),
    }


def user_meta(request: Any) -> dict[str, Any]:
    """User data a task put in ``request.meta`` (upstream's "injecting metadata"), Celery's keys left out."""
    meta = getattr(request, "meta", None) if request is not None else None
    if not isinstance(meta, Mapping):
        return {}
    return {key: value for key, value in meta.items() if key not in PROTOCOL_KEYS}


#: Where a task comes from, kept in ``meta`` as Celery's own backends keep it:
#: the group it is a member of (a chord's header included) and the task that sent it.
LINEAGE_KEYS = {"group_id": "group", "parent_id": "parent_id"}


def lineage(request: Any) -> dict[str, str]:
    """``group_id`` and ``parent_id`` of ``request`` that are set (the admin follows them)."""
    if request is None:
        return {}
    found = {key: _text(getattr(request, attribute, None)) for key, attribute in LINEAGE_KEYS.items()}
    return {key: value for key, value in found.items() if value}


def task_values(
    codec: Codec,
    *,
    task_id: str,
    status: str,
    result: Any,
    traceback: str | None,
    request: Any,
    children: list[Any] | None,
    extended: bool,
) -> dict[str, Any]:
    """Column values for one ``store_result`` call (``result`` already prepared by Celery)."""
    content_type, content_encoding, result_text = codec.encode(result)
    values: dict[str, Any] = {
        "task_id": task_id,
        "status": status,
        "content_type": content_type,
        "content_encoding": content_encoding,
        "result": result_text,
        "traceback": traceback,
        "meta": codec.encode_meta({**user_meta(request), **lineage(request)}, children),
    }
    for name, value in request_fields(request, extended).items():
        if name in ("task_args", "task_kwargs") and value is not None:
            value = codec.encode_leniently(value)
        values[name] = value
    return values


def task_meta(codec: Codec, record: Sequence[Any]) -> dict[str, Any]:
    """Celery's meta dict for a stored row (exceptions are still in their stored form).

    ``record`` holds the :data:`META_COLUMNS`, in order. Protocol keys always
    come from the columns; user meta only adds keys.
    """
    (
        task_id,
        status,
        ctype,
        cenc,
        result,
        traceback,
        stored,
        date_done,
        date_started,
        task_name,
        task_args,
        task_kwargs,
        worker,
        periodic_task_name,
        retries,
        queue,
    ) = record
    stored_meta = codec.decode_meta(ctype, cenc, stored)
    args = codec.decode_lenient(ctype, cenc, task_args)
    kwargs = codec.decode_lenient(ctype, cenc, task_kwargs)
    task_name = unescape_text(task_name)
    meta = {
        "task_id": task_id,
        "status": status,
        "result": codec.decode(ctype, cenc, result),
        "traceback": unescape_text(traceback),
        "children": stored_meta.get("children"),
        "date_done": date_done if status in states.READY_STATES else None,
        "name": task_name,
        "args": args,
        "kwargs": kwargs,
        "worker": unescape_text(worker),
        "periodic_task_name": unescape_text(periodic_task_name),
        "retries": retries,
        "queue": unescape_text(queue),
        "date_started": date_started,
        # The names upstream returned as well; kept for code that reads them.
        "task_name": task_name,
        "task_args": args,
        "task_kwargs": kwargs,
    }
    if stored_meta.keys() <= _CHILDREN_ONLY:  # no user meta or lineage: most rows
        return meta
    kept = {k: v for k, v in stored_meta.items() if k not in PROTOCOL_KEYS or k in LINEAGE_KEYS}
    return {**kept, **meta}


def ready_meta(codec: Codec, record: Sequence[Any]) -> dict[str, Any]:
    """The meta a join reads of a finished task: state, result, traceback and children.

    ``record`` holds the :data:`READY_COLUMNS`, in order. A join
    polls many rows, so nothing that only describes the task (name,
    arguments, worker, dates) is decoded; :func:`task_meta` has all of it.
    """
    task_id, status, ctype, cenc, result, traceback, meta = record
    return {
        "task_id": task_id,
        "status": status,
        "result": codec.decode(ctype, cenc, result),
        "traceback": unescape_text(traceback),
        "children": codec.decode_meta(ctype, cenc, meta).get("children"),
    }
