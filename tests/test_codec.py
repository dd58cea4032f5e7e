"""The codec turns Celery meta into column values and back, without a database."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from celery import states
from hypothesis import given
from hypothesis import strategies as st
from kombu.exceptions import ContentDisallowed, EncodeError
from kombu.serialization import dumps, register_json, registry
from kombu.utils import json as kombu_json

from django_celery_results import codec
from tests.support.strategies import any_text, json_values, pickle_values, safe_text

JSON = codec.Codec("json", ["json"])
PICKLE = codec.Codec("pickle", ["json", "pickle"])


@given(json_values)
def test_json_round_trip(value: object) -> None:
    content_type, encoding, text = JSON.encode(value)
    assert (content_type, encoding) == ("application/json", "utf-8")
    assert isinstance(text, str)
    assert JSON.decode(content_type, encoding, text) == value


#: Values kombu's JSON encoder writes as typed markers (its ``default``), beside plain JSON.
kombu_typed_values = (
    st.datetimes(timezones=st.none() | st.timezones())
    | st.dates()
    | st.times()
    | st.decimals(allow_nan=False)
    | st.uuids()
    | st.binary(max_size=20)
)


@given(json_values | kombu_typed_values | st.lists(kombu_typed_values, max_size=3))
def test_json_is_written_exactly_as_kombu_writes_it(value: object) -> None:
    """The reused encoder writes what kombu's ``dumps`` writes: the stored text must not depend on it."""
    assert JSON.encode(value) == dumps(value, serializer="json")


def test_what_json_cannot_write_raises_kombus_error() -> None:
    with pytest.raises(EncodeError):
        JSON.encode({"x": object()})
    with pytest.raises(EncodeError):
        dumps({"x": object()}, serializer="json")


def test_another_json_encoder_registered_is_the_one_used() -> None:
    """A site that registers its own ``json`` serializer keeps it: the codec only reuses kombu's own."""

    def upper(value: object) -> str:
        return json.dumps(value).upper()

    registry.register("json", upper, kombu_json.loads, content_type=codec.JSON, content_encoding="utf-8")
    try:
        assert codec.Codec("json", ["json"]).encode({"a": "b"})[2] == '{"A": "B"}'
    finally:
        register_json()
    assert codec.Codec("json", ["json"]).encode({"a": "b"})[2] == '{"a": "b"}'


@given(pickle_values)
def test_pickle_round_trip_is_base64_text(value: object) -> None:
    content_type, encoding, text = PICKLE.encode(value)
    assert encoding == "binary"
    assert isinstance(text, str) and text.isascii()
    assert PICKLE.decode(content_type, encoding, text) == value


def test_rows_are_decoded_with_their_own_content_type() -> None:
    """A row written with pickle stays readable after switching the serializer to json."""
    reader = codec.Codec("json", ["json", "pickle"])
    assert reader.decode(*PICKLE.encode(b"\x00bytes")) == b"\x00bytes"


def test_pickle_rows_are_refused_unless_accepted() -> None:
    with pytest.raises(ContentDisallowed):
        JSON.decode(*PICKLE.encode({"a": 1}))


def test_empty_columns_decode_to_none() -> None:
    assert JSON.decode("application/json", "utf-8", None) is None
    assert JSON.decode("application/json", "utf-8", "") is None


def test_arguments_that_are_not_serialized_come_back_as_text() -> None:
    """Very old rows hold plain repr text in task_args."""
    assert JSON.decode_lenient("application/json", "utf-8", "(1, 2)") == "(1, 2)"
    assert PICKLE.decode_lenient("application/x-python-serialize", "binary", "(1, 2)") == "(1, 2)"


def record_of(values: dict[str, object]) -> tuple[object, ...]:
    """A stored row as the read returns it: every meta column in order, NULL where ``values`` has none."""
    return tuple(values.get(name) for name in codec.META_COLUMNS)


def _request(**fields: object) -> SimpleNamespace:
    base = {
        "task": "proj.add",
        "args": [1, 2],
        "kwargs": {"k": 1},
        "argsrepr": "(1, 2)",
        "kwargsrepr": "{'k': 1}",
        "hostname": "celery@host",
        "periodic_task_name": None,
        "meta": None,
    }
    base.update(fields)
    return SimpleNamespace(**base)


@given(
    status=st.sampled_from(sorted(states.ALL_STATES)) | safe_text.filter(bool),
    result=json_values,
    traceback=st.none() | safe_text,
    extended=st.booleans(),
    children=st.none()
    | st.lists(st.tuples(safe_text, st.none()), max_size=3).map(lambda items: [list(i) for i in items]),
)
def test_row_values_round_trip_to_celery_meta(
    status: str,
    result: object,
    traceback: str | None,
    extended: bool,
    children: list | None,
) -> None:
    request = _request()
    values = codec.task_values(
        JSON,
        task_id="t-1",
        status=status,
        result=result,
        traceback=traceback,
        request=request,
        children=children,
        extended=extended,
    )
    meta = codec.task_meta(JSON, record_of({**values, "date_done": "when"}))
    assert meta["task_id"] == "t-1"
    assert meta["status"] == status
    assert meta["result"] == result
    # The traceback is stored whether or not result_extended is on.
    assert meta["traceback"] == traceback
    assert meta["children"] == children
    assert meta["date_done"] == ("when" if status in states.READY_STATES else None)
    if extended:
        assert (meta["name"], meta["args"], meta["kwargs"], meta["worker"]) == (
            "proj.add",
            "(1, 2)",
            "{'k': 1}",
            "celery@host",
        )
    else:
        assert meta["name"] is meta["args"] is meta["kwargs"] is meta["worker"] is None


@given(st.dictionaries(st.sampled_from(sorted(codec.PROTOCOL_KEYS)) | safe_text, json_values, max_size=6))
def test_user_meta_never_replaces_protocol_keys(user_meta: dict) -> None:
    values = codec.task_values(
        JSON,
        task_id="t-2",
        status=states.SUCCESS,
        result=42,
        traceback=None,
        request=_request(meta=user_meta),
        children=None,
        extended=True,
    )
    meta = codec.task_meta(JSON, record_of({**values, "date_done": "when"}))
    assert (meta["status"], meta["result"], meta["task_id"], meta["name"]) == (
        states.SUCCESS,
        42,
        "t-2",
        "proj.add",
    )
    for key, value in user_meta.items():
        if key not in codec.PROTOCOL_KEYS:
            assert meta[key] == value


def test_protocol_1_requests_store_args_themselves() -> None:
    request = _request(argsrepr=None, kwargsrepr=None)
    values = codec.task_values(
        JSON,
        task_id="t",
        status=states.SUCCESS,
        result=None,
        traceback=None,
        request=request,
        children=None,
        extended=True,
    )
    meta = codec.task_meta(JSON, record_of({**values, "date_done": None}))
    assert meta["args"] == [1, 2]
    assert meta["kwargs"] == {"k": 1}


@given(st.text(max_size=30) | any_text | any_text.map(lambda text: codec.ESCAPED_TEXT_PREFIX + text))
def test_escaped_text_round_trips_exactly(text: str) -> None:
    stored = codec.escape_text(text)
    assert not codec.needs_escape(stored)
    stored.encode("utf-8")  # storable by every engine's driver
    assert codec.unescape_text(stored) == text
    # Text that needs no escaping is stored as it is.
    plain = not codec.needs_escape(text) and not text.startswith(codec.ESCAPED_TEXT_PREFIX)
    assert (stored == text) is plain


def test_plain_tracebacks_are_stored_as_they_are() -> None:
    assert codec.escape_text("Traceback (most recent call last): ...") == (
        "Traceback (most recent call last): ..."
    )
    assert codec.escape_text(None) is None
    assert codec.escape_text(codec.ESCAPED_TEXT_PREFIX + "x") != codec.ESCAPED_TEXT_PREFIX + "x"


@given(st.text() | st.text(alphabet='"\\\x00\x1f\u00e9 ab', max_size=12))
def test_json_strings_decode_as_the_parser_would(text: str) -> None:
    """The no-parser path for plain string literals agrees with the JSON parser on any text."""
    json_codec = codec.Codec("json", ["json"])
    for stored in (json.dumps(text), json.dumps(text, ensure_ascii=False)):
        assert json_codec.decode(codec.JSON, "utf-8", stored) == json.loads(stored) == text
