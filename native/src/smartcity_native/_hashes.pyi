from collections.abc import Sequence

StateKey = tuple[str, str]
Hashed = list[tuple[bytes, bytes | None]]
Stored = dict[StateKey, tuple[str, str] | None]

def merkle_root(leaves: Sequence[bytes], /) -> bytes | None: ...
def state_hashes(
    keys: list[StateKey], texts: list[bytes | None], /
) -> tuple[Hashed, Stored] | None: ...
