"""An anchor's batch record written directly is byte for byte what the general encoder writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.contracts.anchors import batch_bytes
from chain.encoding import SAFE_INT, canonical
from chain.errors import ContractError, EncodingError
from chain.state import CommittedState, Overlay, StateView

ints = st.integers(min_value=-SAFE_INT, max_value=SAFE_INT)
batches = st.fixed_dictionaries(
    {
        "root": st.text(),
        "count": ints,
        "label": st.text(),
        "metadata": st.just({}),
        "org": st.text(),
        "height": ints,
    }
)


@settings(max_examples=300, deadline=None)
@given(batches)
def test_a_batch_written_directly_is_its_canonical_bytes(batch: dict[str, Any]) -> None:
    direct = batch_bytes(batch)
    try:
        expected = canonical(batch)
    except EncodingError:  # a lone surrogate: refused, so never written directly
        assert direct is None
        return
    assert direct == expected
    assert json.loads(direct) == batch


@given(batches, st.dictionaries(st.text(min_size=1), st.integers(0, 9), min_size=1))
def test_a_batch_with_metadata_or_an_unsafe_number_goes_to_the_general_encoder(
    batch: dict[str, Any], metadata: dict[str, int]
) -> None:
    assert batch_bytes({**batch, "metadata": metadata}) is None
    assert batch_bytes({**batch, "count": SAFE_INT + 1}) is None
    assert batch_bytes({**batch, "height": float(batch["height"])}) is None


def test_only_the_chains_own_contracts_may_give_a_values_encoding() -> None:
    """Bytes that differ from the value would have the state root commit to one value while
    memory holds another (a restarted node would read the other): an application contract's
    write with its own encoding is refused, a system contract's is kept as given."""
    state = CommittedState.empty()
    app = StateView(Overlay(state), "app")
    with pytest.raises(ContractError, match="may not give a value's encoding"):
        app.put("k", {"n": 1}, encoded=b'{"n":2}')
    overlay = Overlay(state)
    StateView(overlay, "anchors", privileged=True).put("k", {"n": 1}, encoded=b'{"n":1}')
    assert overlay.encoded[("anchors", "k")] == b'{"n":1}'
