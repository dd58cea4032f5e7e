"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from hypothesis import strategies as st

#: Text any engine stores: PostgreSQL rejects NUL in text columns, and
#: surrogates cannot be encoded as UTF-8.
safe_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)

#: Any text Python can hold: NUL, lone surrogates and astral characters included,
#: with a bias towards the characters some engine cannot store.
any_text = st.lists(
    st.characters(codec=None, exclude_categories=())
    | st.sampled_from(["\x00", "\ud800", "\udce9", "\udfff"]),
    max_size=40,
).map("".join)

json_scalars = (
    st.none() | st.booleans() | st.integers() | safe_text | st.floats(allow_nan=False, allow_infinity=False)
)

#: Values a JSON result can carry and read back equal.
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(safe_text, children, max_size=4),
    max_leaves=12,
)

#: Values only pickle carries: bytes, tuples, sets, big ints.
pickle_values = st.recursive(
    json_scalars | st.binary(max_size=40) | st.integers(min_value=2**70, max_value=2**90),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.frozensets(st.integers(), max_size=4)
        | st.dictionaries(safe_text, children, max_size=4)
    ),
    max_leaves=12,
)
