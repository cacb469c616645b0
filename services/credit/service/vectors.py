"""Features packed as float64 vectors, so a batch reads 10,000 SMEs without decoding JSON.

Each stored period's features (Attr1..Attr64, `features.POLISH_FEATURES` order, NaN for
missing) are also kept as 512 packed bytes in their own table; the JSON document stays the
record of what was hashed. A batch reads the vectors and falls back to the JSON for periods
stored before vectors existed. Decoding 10,000 JSON documents of 64 ratios was the largest part
of rating a batch once the chain's part became two transactions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.credit.models import FeatureRow, FeatureVectorRow
from services.credit.scoring.features import POLISH_FEATURES

FloatArray = npt.NDArray[np.float64]
_DTYPE = np.dtype("<f8")
_CHUNK = 1000


class Latest(NamedTuple):
    """An SME's latest period: its features as a vector in model order, and their hash."""

    period: str
    features_hash: str
    values: FloatArray


def pack(features: Mapping[str, float | None]) -> bytes:
    """The features in `POLISH_FEATURES` order as little-endian float64 (NaN for missing)."""
    values = [features.get(name) for name in POLISH_FEATURES]
    return np.array([np.nan if v is None else v for v in values], dtype=_DTYPE).tobytes()


def latest_features(
    session: Session, codes: Sequence[str], names: Sequence[str]
) -> dict[str, Latest]:
    """Each SME's latest stored period, its features in the order of `names`."""
    chosen: dict[str, tuple[int, str, str, bytes | None]] = {}
    columns = (
        FeatureRow.uscc,
        FeatureRow.sort_key,
        FeatureRow.period,
        FeatureRow.features_hash,
        FeatureVectorRow.values,
    )
    joined = FeatureVectorRow.uscc == FeatureRow.uscc, FeatureVectorRow.period == FeatureRow.period
    for start in range(0, len(codes), _CHUNK):
        part = list(codes[start : start + _CHUNK])
        query = (
            select(*columns)
            .outerjoin(FeatureVectorRow, joined[0] & joined[1])
            .where(FeatureRow.uscc.in_(part))
        )
        for uscc, sort_key, period, digest, vector in session.execute(query):
            if uscc not in chosen or sort_key > chosen[uscc][0]:
                chosen[uscc] = (sort_key, period, digest, vector)
    order = _order(names)
    out = {}
    missing = []
    for uscc, (_, period, digest, stored) in chosen.items():
        if stored is None or order is None:
            missing.append((uscc, period))
            continue
        out[uscc] = Latest(period, digest, np.frombuffer(stored, dtype=_DTYPE)[order])
    out.update(_from_json(session, missing, names))
    return out


def _order(names: Sequence[str]) -> npt.NDArray[np.intp] | None:
    """Positions of `names` in the packed order (None if a name is not a packed feature)."""
    index = {name: i for i, name in enumerate(POLISH_FEATURES)}
    if any(name not in index for name in names):
        return None
    return np.array([index[name] for name in names], dtype=np.intp)


def _from_json(
    session: Session, keys: list[tuple[str, str]], names: Sequence[str]
) -> dict[str, Latest]:
    """Periods without a packed vector: their JSON document, in the order of `names`."""
    out: dict[str, Latest] = {}
    wanted = dict(keys)
    for start in range(0, len(keys), _CHUNK):
        part = [uscc for uscc, _ in keys[start : start + _CHUNK]]
        rows = session.execute(
            select(
                FeatureRow.uscc, FeatureRow.period, FeatureRow.features, FeatureRow.features_hash
            ).where(FeatureRow.uscc.in_(part))
        )
        for uscc, period, features, digest in rows:
            if wanted.get(uscc) == period:
                values = [features.get(name) for name in names]
                vector = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
                out[uscc] = Latest(period, digest, vector)
    return out
