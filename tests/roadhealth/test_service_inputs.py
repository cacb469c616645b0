"""Every bad input gets its specific 4xx; ingestion is idempotent; auth and roles are enforced."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from chain.auth import mint_token
from chain.crypto import SigningKey
from iot_gateway.simulator import PassFleet, Vehicle, anchor_batch, build_batch, ingest_body
from services.roadhealth.wire import batch_root, message_hash, sign_payload
from smartcity.roadhealth_harness import Harness, running

T0 = 1_770_000_000.0


def _error(answer: Any, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()["error"]
    assert body["code"] == code, body
    return str(body["message"])


def _payloads(h: Harness, vehicle: Vehicle, n: int = 6) -> list[dict[str, Any]]:
    fleet = PassFleet(h.runtime.index)
    fleet.plan("harbour-rd-2", base_iri=2.0, seed=1)
    return fleet.drive(vehicle, "harbour-rd-2", speed_mps=12.0, t0=T0)[:n]


def _post(h: Harness, body: dict[str, Any], org: str = "bsn-operator") -> Any:
    return h.client.post("/roadhealth/v1/ingest", json=body, headers=h.auth(org))


def test_ingest_is_idempotent_and_checks_every_message(tmp_path: Path, db_url: str) -> None:
    with running(tmp_path, db_url) as h:
        car = h.register("car-1", "car", 1)
        payloads = _payloads(h, car)
        body, first = h.ingest(payloads)
        assert first.status_code == 200 and first.json()["stored"] == 6
        # The same batch again: nothing stored twice, the same answer
        again = _post(h, body)
        assert again.status_code == 200 and again.json() == first.json()
        # The same windows in a new batch: duplicates, and one (device, seq) with new content
        changed = sign_payload(
            car.key, {**{k: v for k, v in payloads[0].items() if k != "sig"}, "speed_mps": 13.0}
        )
        _, second = h.ingest([*payloads[1:3], changed])
        results = second.json()["results"]
        assert [r["status"] for r in results] == ["duplicate", "duplicate", "rejected"]
        assert results[2]["code"] == "seq_conflict"

        # Per-message refusals: the batch is accepted, the bad messages are not stored
        stranger = SigningKey.from_seed(b"\x55" * 32)
        base = {k: v for k, v in payloads[0].items() if k != "sig"}
        bad = [
            sign_payload(stranger, {**base, "seq": 100}),  # bad signature
            sign_payload(car.key, {**base, "seq": 101, "lat": 91.0}),  # out of range
            sign_payload(car.key, {**base, "seq": 102, "acc_z": [9.8] * 3}),  # too short
            sign_payload(stranger, {**base, "device": "ghost", "seq": 1}),  # unknown device
            {**sign_payload(car.key, {**base, "seq": 103}), "extra": 1},  # unknown member
        ]
        _, answer = h.ingest(bad)
        codes = [r["code"] for r in answer.json()["results"]]
        assert codes == [
            "bad_signature",
            "payload_invalid",
            "payload_invalid",
            "unknown_device",
            "payload_invalid",
        ]
        assert answer.json()["stored"] == 0
        # A topic naming another device is refused
        root, messages = build_batch([sign_payload(car.key, {**base, "seq": 104})])
        messages[0]["topic"] = "city/smartcity/road/x/sensor/other/telemetry"
        tx = anchor_batch(h.ledger, h.key("bsn-operator"), root, 1)
        answer = _post(
            h, {"batch": {"root": root, "anchor_tx": tx, "count": 1}, "messages": messages}
        )
        assert answer.json()["results"][0]["code"] == "topic_mismatch"

        # A suspended device's windows are refused; reinstated, accepted again
        assert h.device_tx("suspend_device", {"device": "car-1"}).status_code == 200
        assert h.ledger.read("roadhealth", "device:car-1")["status"] == "suspended"
        _, answer = h.ingest([sign_payload(car.key, {**base, "seq": 200})])
        assert answer.json()["results"][0]["code"] == "device_suspended"
        assert h.device_tx("reinstate_device", {"device": "car-1"}).status_code == 200
        _, answer = h.ingest([sign_payload(car.key, {**base, "seq": 201})])
        assert answer.json()["results"][0]["status"] == "stored"


def test_batch_level_refusals(tmp_path: Path, db_url: str) -> None:
    with running(tmp_path, db_url) as h:
        car = h.register("car-1", "car", 1)
        payloads = _payloads(h, car, 3)
        good = ingest_body(h.ledger, h.key("bsn-operator"), payloads)

        body = copy.deepcopy(good)
        body["batch"]["count"] = 2
        _error(_post(h, body), 422, "bad_batch")
        body = copy.deepcopy(good)
        body["messages"][0]["leaf_index"], body["messages"][1]["leaf_index"] = 1, 0
        _error(_post(h, body), 422, "bad_batch")
        body = copy.deepcopy(good)
        body["messages"][1]["payload"]["speed_mps"] = 99.0
        _error(_post(h, body), 422, "hash_mismatch")
        body = copy.deepcopy(good)
        body["batch"]["root"] = "00" * 32
        _error(_post(h, body), 422, "root_mismatch")
        body = copy.deepcopy(good)
        body["batch"]["anchor_tx"] = "ab" * 32
        _error(_post(h, body), 409, "anchor_not_committed")
        # An anchor of another root, and a root anchored by another organisation
        other = ingest_body(h.ledger, h.key("bsn-operator"), payloads[:2])
        body = copy.deepcopy(good)
        body["batch"]["anchor_tx"] = other["batch"]["anchor_tx"]
        _error(_post(h, body), 422, "anchor_mismatch")
        root = batch_root([message_hash(p) for p in payloads])
        assert root == good["batch"]["root"]
        by_bank = anchor_batch(h.ledger, h.key("bank-a"), root, 3)
        body = copy.deepcopy(good)
        body["batch"]["anchor_tx"] = by_bank
        _error(_post(h, body), 422, "anchor_mismatch")
        # Shape errors: FastAPI's validation in the service's envelope
        _error(_post(h, {"batch": good["batch"]}), 422, "invalid_request")
        body = copy.deepcopy(good)
        body["batch"]["root"] = good["batch"]["root"].upper()
        _error(_post(h, body), 422, "invalid_request")
        # Nothing of the refused requests was stored
        assert _post(h, good).json()["stored"] == 3


def test_auth_and_roles(tmp_path: Path, db_url: str) -> None:
    with running(tmp_path, db_url) as h:
        url = "/roadhealth/v1/segments"
        _error(h.client.get(url), 401, "unauthorized")
        _error(h.client.get(url, headers={"authorization": "Bearer nonsense"}), 401, "unauthorized")
        _error(
            h.client.get(url, headers=h.auth("regulator", audience="credit")), 401, "unauthorized"
        )
        expired = mint_token(
            h.key("regulator"), org="regulator", audience="roadhealth", now=1_000_000
        )
        _error(
            h.client.get(url, headers={"authorization": f"Bearer {expired}"}), 401, "unauthorized"
        )
        forged = mint_token(
            SigningKey.from_seed(b"\x77" * 32), org="regulator", audience="roadhealth"
        )
        _error(
            h.client.get(url, headers={"authorization": f"Bearer {forged}"}), 401, "unauthorized"
        )
        # A bank reads nothing; the gateway ingests but reads nothing; readers do not ingest
        _error(h.client.get(url, headers=h.auth("bank-a")), 403, "forbidden")
        _error(h.client.get(url, headers=h.auth("bsn-operator")), 403, "forbidden")
        _error(
            h.client.post("/roadhealth/v1/ingest", json={}, headers=h.auth("regulator")),
            403,
            "forbidden",
        )
        # Only the road authority imports segments, registers devices and webhooks
        _error(h.client.post(url, content=b"{}", headers=h.auth("city-agency")), 403, "forbidden")
        _error(
            h.client.post(
                "/roadhealth/v1/webhooks", json={"url": "http://x"}, headers=h.auth("regulator")
            ),
            403,
            "forbidden",
        )
        for org in ("city-agency", "regulator", "road-authority"):
            assert h.client.get(url, headers=h.auth(org)).status_code == 200


def test_device_registration_refusals(tmp_path: Path, db_url: str) -> None:
    with running(tmp_path, db_url) as h:
        key = SigningKey.from_seed(b"\x01" * 32).public_hex
        args = {"device": "car-1", "pub_key": key, "vehicle_class": "car"}
        assert h.device_tx("register_device", args).status_code == 200
        assert (
            h.client.get("/roadhealth/v1/devices/car-1", headers=h.auth("regulator")).json()[
                "status"
            ]
            == "active"
        )
        _error(h.device_tx("register_device", args), 409, "device_exists")
        _error(h.device_tx("register_device", {**args, "device": "car-2"}), 409, "key_in_use")
        _error(
            h.device_tx("register_device", {**args, "device": "car-3", "vehicle_class": "tank"}),
            400,
            "bad_args",
        )
        _error(h.device_tx("suspend_device", {"device": "nope"}), 409, "unknown_device")
        _error(h.device_tx("reinstate_device", {"device": "car-1"}), 409, "device_active")
        _error(
            h.client.get("/roadhealth/v1/devices/nope", headers=h.auth("regulator")),
            404,
            "unknown_device",
        )
        # The service relays only the caller's own device transactions
        from chain.tx import sign_tx

        foreign = sign_tx(
            h.key("bsn-operator"),
            chain_id=h.ledger.genesis.chain_id,
            contract="roadhealth",
            method="register_device",
            args={**args, "device": "car-9"},
            expiry_height=h.ledger.height() + 50,
        )
        answer = h.client.post(
            "/roadhealth/v1/devices/tx",
            json={"tx": foreign.to_json()},
            headers=h.auth("road-authority"),
        )
        _error(answer, 422, "bad_device_tx")
        own = sign_tx(
            h.key("road-authority"),
            chain_id=h.ledger.genesis.chain_id,
            contract="anchors",
            method="anchor",
            args={"root": "00" * 32, "count": 1, "label": "x"},
            expiry_height=h.ledger.height() + 50,
        )
        answer = h.client.post(
            "/roadhealth/v1/devices/tx",
            json={"tx": own.to_json()},
            headers=h.auth("road-authority"),
        )
        _error(answer, 422, "bad_device_tx")
        tampered = {**own.to_json(), "contract": "roadhealth", "method": "register_device"}
        answer = h.client.post(
            "/roadhealth/v1/devices/tx", json={"tx": tampered}, headers=h.auth("road-authority")
        )
        _error(answer, 422, "bad_device_tx")


def test_segments_geojson_refusals(tmp_path: Path, db_url: str) -> None:
    with running(tmp_path, db_url) as h:
        auth = h.auth("road-authority")
        url = "/roadhealth/v1/segments"
        line = {"type": "LineString", "coordinates": [[114.06, 22.55], [114.061, 22.55]]}
        feature = {
            "type": "Feature",
            "id": "new-rd-1",
            "properties": {"name": "New Road"},
            "geometry": line,
        }
        bad_docs = [
            b"{not json",
            b'{"type": "Feature"}',
            b'{"type": "FeatureCollection", "features": []}',
            _doc({**feature, "geometry": {"type": "Point", "coordinates": [114.0, 22.0]}}),
            _doc({**feature, "geometry": {**line, "coordinates": [[114.06, 22.55]]}}),
            _doc({**feature, "geometry": {**line, "coordinates": [[214.06, 22.55], [1, 1]]}}),
            _doc({**feature, "id": "Bad Id"}),
            _doc(feature, feature),
        ]
        for raw in bad_docs:
            _error(h.client.post(url, content=raw, headers=auth), 422, "malformed_geojson")
        answer = h.client.post(url, content=_doc(feature), headers=auth)
        assert answer.status_code == 200 and answer.json()["ids"] == ["new-rd-1"]
        record = h.ledger.read("roadhealth", "segment:new-rd-1")
        assert record["requested_by"] == "road-authority" and record["length_m"] == 103
        assert len(h.client.get(url, headers=auth).json()["features"]) == 18
        # Unknown segment and out-of-range queries
        _error(h.client.get(f"{url}/nowhere", headers=auth), 404, "unknown_segment")
        _error(h.client.get(f"{url}/nowhere/series", headers=auth), 404, "unknown_segment")
        _error(h.client.get(f"{url}/new-rd-1/series?bucket_s=1", headers=auth), 422, "out_of_range")
        _error(h.client.get("/roadhealth/v1/priorities?limit=0", headers=auth), 422, "out_of_range")
        _error(
            h.client.get("/roadhealth/v1/alerts?segment=nowhere", headers=auth),
            404,
            "unknown_segment",
        )


def _doc(*features: dict[str, Any]) -> bytes:
    import json

    return json.dumps({"type": "FeatureCollection", "features": list(features)}).encode()
