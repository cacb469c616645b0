"""Tx, Receipt and Event build themselves in one step (a hand-written __init__, 32949e4 and
7803829) instead of the frozen dataclass's own; a field added to the class but not to that
__init__ would silently never be set (review R1), so each __init__ must take exactly the
class's fields, in order, and set every one of them."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from chain.block import Event, Receipt
from chain.tx import Tx


@pytest.mark.parametrize("cls", [Tx, Receipt, Event])
def test_the_hand_written_init_takes_and_sets_exactly_the_fields(cls: type) -> None:
    fields = [f.name for f in dataclasses.fields(cls)]
    params = list(inspect.signature(cls).parameters)
    assert params == fields
    made = cls(**{name: object() for name in fields})
    assert all(name in vars(made) for name in fields)
