"""Deterministic ids: pinned values (a change would re-key every command), no accidental collisions."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.rules.ids import REVSTREAM_ID_NAMESPACE, derive_id

# Ids are Avro strings (valid UTF-8: no lone surrogates) and never contain the unit separator.
texts = st.text(st.characters(exclude_characters="\x1f", exclude_categories=["Cs"]), max_size=8)
parts = st.lists(st.one_of(texts, st.integers(-5, 5)), max_size=4)


def test_ids_are_pinned_uuid5_strings() -> None:
    # Pinned: a new namespace or joining rule would silently re-key every command in the ledger.
    assert derive_id("command", "E1", "JOURNAL_ENTRY", 1) == "e353e578-ee5f-5373-a002-cc8989a7b822"
    assert uuid.UUID(derive_id("exception", "E1")).version == 5


def test_parts_do_not_run_together_and_kinds_do_not_share_ids() -> None:
    assert derive_id("command", "E1", 12) != derive_id("command", "E11", 2)
    assert derive_id("command", "E1", 0) != derive_id("entry", "E1", 0)


@given(texts, parts, parts)
def test_same_inputs_same_id_and_different_parts_different_ids(kind: str, a: list, b: list) -> None:
    assert derive_id(kind, *a) == derive_id(kind, *a)
    if [str(p) for p in a] != [str(p) for p in b]:
        assert derive_id(kind, *a) != derive_id(kind, *b)


@settings(max_examples=300)
@given(kind=texts, parts=parts)
def test_derived_ids_equal_the_standard_library_uuid5(kind: str, parts: list[str | int]) -> None:
    name = "\x1f".join([kind, *(str(part) for part in parts)])
    assert derive_id(kind, *parts) == str(uuid.uuid5(REVSTREAM_ID_NAMESPACE, name))
