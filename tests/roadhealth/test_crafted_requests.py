"""Crafted GeoJSON imports and ingest batches get a 422 naming what is wrong, never a 5xx, and
nothing is stored.

A segment's properties are stored and answered as they are: a lone surrogate escape
("\\ud800") in its name answered the import 500, and in any other property it was stored, so
every later read of the segments answered 500. A coordinate written as an integer past any
float answered 500 (OverflowError). An ingested payload no canonical JSON can write (a lone
surrogate, an integer past 2^53) answered 503 chain_unavailable, which the gateway retries for
ever. Hypothesis draws each.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iot_gateway.simulator import ingest_body
from smartcity.roadhealth_harness import Harness, running
from tests._crafted import holding_lone
from tests.roadhealth.test_service_inputs import _payloads

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
LINE = [[114.0, 22.0], [114.001, 22.001], [114.002, 22.001]]
beyond_float = st.integers(min_value=2**1024, max_value=10**400).flatmap(
    lambda n: st.sampled_from([n, -n])
)
beyond_2_53 = st.integers(min_value=2**53, max_value=10**30) | st.integers(
    min_value=-(10**30), max_value=-(2**53)
)


def collection(properties: dict[str, Any], coordinates: list[list[Any]]) -> dict[str, Any]:
    feature = {
        "type": "Feature",
        "id": "crafted-1",
        "properties": properties,
        "geometry": {"type": "LineString", "coordinates": coordinates},
    }
    return {"type": "FeatureCollection", "features": [feature]}


def import_raw(h: Harness, doc: dict[str, Any]) -> Any:
    """POST `doc` with \\u escapes (httpx's own encoder refuses a lone surrogate)."""
    headers = {**h.auth("road-authority"), "content-type": "application/geo+json"}
    return h.client.post(
        "/roadhealth/v1/segments", headers=headers, content=json.dumps(doc).encode()
    )


def refused(answer: Any, code: str, *reasons: str) -> None:
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == code, error
    assert all(reason in error["message"] for reason in reasons), error


def segment_ids(h: Harness) -> set[str]:
    answer = h.client.get("/roadhealth/v1/segments", headers=h.auth("road-authority"))
    assert answer.status_code == 200, answer.text
    return {feature["id"] for feature in answer.json()["features"]}


def test_an_import_with_a_lone_surrogate_or_a_coordinate_past_any_float_stores_nothing(
    tmp_path: Path, db_url: str
) -> None:
    with running(tmp_path, db_url) as h:
        before = segment_ids(h)

        @SETTINGS
        @given(data=st.data())
        def check(data: Any) -> None:
            properties = data.draw(holding_lone({"name": "Crafted Rd"}))
            refused(
                import_raw(h, collection(properties, LINE)),
                "malformed_geojson",
                "features[0]",
                "not Unicode text",
            )
            coordinates = copy.deepcopy(LINE)
            vertex = data.draw(st.integers(0, len(LINE) - 1))
            coordinates[vertex][data.draw(st.integers(0, 1))] = data.draw(beyond_float)
            refused(
                import_raw(h, collection({"name": "Crafted Rd"}, coordinates)),
                "malformed_geojson",
                f"coordinates[{vertex}] must be [lon, lat] numbers",
            )
            assert segment_ids(h) == before  # and the segments still read

        check()


def test_a_payload_no_canonical_json_writes_is_refused_and_its_batch_kept(
    tmp_path: Path, db_url: str
) -> None:
    with running(tmp_path, db_url) as h:
        car = h.register("car-1", "car", 1)
        payloads = _payloads(h, car, n=3)
        body = ingest_body(h.ledger, h.key("bsn-operator"), payloads)
        headers = {**h.auth("bsn-operator"), "content-type": "application/json"}

        @SETTINGS
        @given(data=st.data())
        def check(data: Any) -> None:
            crafted = copy.deepcopy(body)
            leaf = data.draw(st.integers(0, len(payloads) - 1))
            payload = crafted["messages"][leaf]["payload"]
            if data.draw(st.booleans()):
                crafted["messages"][leaf]["payload"] = data.draw(holding_lone(payload))
            else:
                payload[data.draw(st.sampled_from(["seq", "t0", "lat", "lon", "acc_z"]))] = (
                    data.draw(beyond_2_53)
                )
            answer = h.client.post(
                "/roadhealth/v1/ingest", headers=headers, content=json.dumps(crafted).encode()
            )
            refused(answer, "bad_batch", f"leaf {leaf}: payload cannot be canonicalised")

        check()
        # Nothing of the batch was claimed: as sent, it is stored whole
        answer = h.client.post("/roadhealth/v1/ingest", json=body, headers=h.auth("bsn-operator"))
        assert answer.status_code == 200 and answer.json()["stored"] == len(payloads), answer.text
