"""The services on an sm2-sm3 chain (issue 16), in process: the credit contract takes SM2 keys,
devices sign telemetry with SM2, and identity seals personal fields with SM4.

The README tour runs on the default suite (tests/e2e/test_readme_tour.py); these check, in a
few hundred milliseconds, the paths where the SM suite differs from it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chain.contracts.framework import Context, code_hash
from chain.crypto import SigningKey
from chain.encoding import canonical, from_b64url
from chain.errors import ContractError
from chain.genesis import Genesis, initial_state, parse_genesis
from chain.ledger import Ledger
from chain.node import Node
from chain.state import CommittedState, Overlay, StateView
from chain.suites import suite_for
from chain.tx import sign_tx
from iot_gateway.errors import Rejected
from iot_gateway.simulator import build_network
from iot_gateway.simulator.messages import with_suite_keys
from iot_gateway.validate import Device, Limits, check_message
from iot_gateway.wire import sign_payload, telemetry_topic
from services.credit.contract import CreditContract
from services.identity.vault import Vault, VaultError, sm4_key
from services.roadhealth import wire as road_wire
from services.roadhealth.contract import RoadHealthContract

SM = suite_for("sm2-sm3")
SM_KEYS = [SM.key_from_seed(bytes([i + 1]) * 32) for i in range(4)]
ED_KEYS = [SigningKey.from_seed(bytes([i + 1]) * 32) for i in range(4)]
USCC = "91350100M000100Y43"
KEY_SHAPES = {
    "ed25519-sha256": "Ed25519 public key (ed25519-sha256 suite: 64 hex digits)",
    "sm2-sm3": "SM2 public key (sm2-sm3 suite: 130 hex digits, 04 || X || Y on the curve)",
}


def city_genesis(keys: list[Any], crypto: str) -> Genesis:
    """A one-validator city chain of `crypto` with an agency, an SME, a bank and credit."""
    validator, agency, sme, bank = keys
    return parse_genesis(
        {
            "chain_id": "sm-services",
            "genesis_time_ms": 0,
            "crypto": crypto,
            "validators": [{"name": "v0", "pub_key": validator.public_hex}],
            "organisations": [
                {"id": "agency", "name": "A", "roles": ["operator"], "keys": [agency.public_hex]},
                {"id": "sme-a", "name": "S", "roles": ["sme"], "keys": [sme.public_hex]},
                {"id": "bank-a", "name": "B", "roles": ["bank"], "keys": [bank.public_hex]},
            ],
            "contracts": [
                {
                    "name": "credit",
                    "path": "services.credit.contract:CreditContract",
                    "code_hash": code_hash(CreditContract),
                }
            ],
        }
    )


GENESES = {
    "sm2-sm3": city_genesis(SM_KEYS, "sm2-sm3"),
    "ed25519-sha256": city_genesis(ED_KEYS, "ed25519-sha256"),
}


def genesis_view(crypto: str, namespace: str = "credit") -> StateView:
    """A contract's namespace on a chain of `crypto` just after its genesis."""
    base = Overlay(CommittedState.empty())
    base.writes.update(initial_state(GENESES[crypto]))
    return StateView(Overlay(base), namespace)


def operator_call(crypto: str, method: str, args: dict[str, Any]) -> None:
    ctx = Context(
        sender="00" * 32,
        sender_org="agency",
        sender_roles=frozenset({"operator"}),
        height=1,
        time_ms=0,
        tx_hash="11" * 32,
        contract="credit",
    )
    CreditContract().execute(ctx, genesis_view(crypto), method, args)


def register_device(crypto: str, pub_key: str) -> StateView:
    """The road authority registers device veh-1 with `pub_key` on a chain of `crypto`."""
    ctx = Context(
        sender="00" * 32,
        sender_org="roads",
        sender_roles=frozenset({"road_authority"}),
        height=1,
        time_ms=0,
        tx_hash="11" * 32,
        contract="roadhealth",
    )
    view = genesis_view(crypto, "roadhealth")
    args = {"device": "veh-1", "pub_key": pub_key, "vehicle_class": "car"}
    RoadHealthContract().execute(ctx, view, "register_device", args)
    return view


# -- credit ----------------------------------------------------------------------------------


def test_an_sm_chain_registers_an_sme_bound_to_its_sm2_key(
    make_ledger: Callable[..., Ledger],
) -> None:
    ledger = make_ledger(GENESES["sm2-sm3"])
    node = Node(ledger, key=SM_KEYS[0])
    entry = {"uscc": USCC, "org": "sme-a", "key": SM_KEYS[2].public_hex}
    tx = sign_tx(
        SM_KEYS[1],
        chain_id="sm-services",
        contract="credit",
        method="register_smes",
        args={"smes": [entry]},
        expiry_height=10,
    )
    node.submit([tx])
    result = node.produce_block()
    assert result is not None and result.receipts[0].ok, result and result.receipts[0]
    assert ledger.state.get("credit", f"sme:{USCC}")["key"] == SM_KEYS[2].public_hex


@settings(max_examples=10, deadline=None)
@given(
    crypto=st.sampled_from(sorted(GENESES)),
    key=st.sampled_from([64, 130]).flatmap(
        lambda n: st.text("0123456789abcdef", min_size=n, max_size=n)
    ),
    method=st.sampled_from(["register_smes", "record_inquiry"]),
)
def test_a_key_of_the_other_suites_shape_is_refused_saying_which_key_the_chain_takes(
    crypto: str, key: str, method: str
) -> None:
    # The chain's own shape is refused only later, as not the organisation's key
    assume(len(key) != (130 if crypto == "sm2-sm3" else 64))
    args: dict[str, Any] = (
        {"smes": [{"uscc": USCC, "org": "sme-a", "key": key}]}
        if method == "register_smes"
        else {
            "uscc": USCC,
            "bank": "bank-a",
            "bank_key": key,
            "purpose": "monitoring",
            "rating_seq": 1,
        }
    )
    with pytest.raises(ContractError) as caught:
        operator_call(crypto, method, args)
    assert (caught.value.code, caught.value.message) == (
        "bad_key",
        f"{key[:16]}… is not an {KEY_SHAPES[crypto]}",
    )


# -- device telemetry ------------------------------------------------------------------------

T0 = 1_767_225_600.0
WINDOW = {
    "device": "veh-1",
    "seq": 7,
    "t0": T0,
    "rate_hz": 50,
    "lat": 52.52,
    "lon": 13.4,
    "speed_mps": 12.5,
    "acc_z": [9.81 + 0.01 * i for i in range(32)],
}


def check(payload: dict[str, Any], registered: str) -> Any:
    return check_message(
        telemetry_topic("c", "s", "veh-1"),
        canonical(payload),
        now_s=T0,
        lookup=lambda device: Device(device, registered, True),
        limits=Limits(),
    )


def test_an_sm_chain_registers_sm2_devices_whose_sm2_signed_telemetry_passes() -> None:
    network = build_network(n_segments=1, n_devices=2, seed=3)
    assert with_suite_keys(network, "ed25519-sha256") is network
    device = with_suite_keys(network, "sm2-sm3").devices[0].key
    assert len(device.public_hex) == 130 and SM.is_usable_public_key(device.public_hex)
    view = register_device("sm2-sm3", device.public_hex)
    assert view.get("device:veh-1")["pub_key"] == device.public_hex
    payload = sign_payload(device, WINDOW)
    checked = check(payload, device.public_hex)
    assert SM.verify(device.public_hex, road_wire.signing_bytes(payload), _sig(payload))
    assert checked.payload == payload and road_wire.has_valid_signature(payload, device.public_hex)


@pytest.mark.parametrize(
    ("crypto", "key"),
    [("sm2-sm3", ED_KEYS[3].public_hex), ("ed25519-sha256", SM_KEYS[3].public_hex)],
    ids=["ed25519-key-on-sm", "sm2-key-on-ed25519"],
)
def test_a_device_key_of_the_other_suite_is_refused_naming_the_chains(
    crypto: str, key: str
) -> None:
    with pytest.raises(ContractError) as caught:
        register_device(crypto, key)
    assert (caught.value.code, caught.value.message) == (
        "bad_key",
        f"pub_key is not a usable {KEY_SHAPES[crypto]}",
    )


def _sig(payload: dict[str, Any]) -> bytes:
    return from_b64url(payload["sig"], field="sig")


@settings(max_examples=12, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), sm_device=st.booleans())
def test_telemetry_signed_in_the_other_suite_is_dead_lettered_naming_the_devices(
    seed: bytes, sm_device: bool
) -> None:
    sm_key, ed_key = SM.key_from_seed(seed), SigningKey.from_seed(seed)
    registered, signer = (sm_key, ed_key) if sm_device else (ed_key, sm_key)
    payload = sign_payload(signer, WINDOW)
    with pytest.raises(Rejected) as caught:
        check(payload, registered.public_hex)
    suite = "SM2" if sm_device else "Ed25519"
    assert (caught.value.code, caught.value.detail) == (
        "bad_signature",
        f"signature does not verify with the registered key ({suite})",
    )
    assert not road_wire.has_valid_signature(payload, registered.public_hex)


# -- identity's personal fields at rest ------------------------------------------------------

VAULT_KEY = bytes(range(32))
SM_VAULT = Vault(VAULT_KEY, "sm2-sm3")
ED_VAULT = Vault(VAULT_KEY)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@settings(max_examples=25, deadline=None)
@given(value=JSON, label=st.text(min_size=1, max_size=30), flip=st.integers(0, 10_000))
def test_an_sm_chains_vault_seals_with_sm4_gcm_under_the_derived_key_and_refuses_changes(
    value: Any, label: str, flip: int
) -> None:
    sealed = SM_VAULT.seal(value, label)
    # Verify it is SM4-GCM under HKDF-SM3 of the key file, opened by the suite itself
    assert sealed[:1] == b"\x02" and len(sm4_key(VAULT_KEY)) == 16
    assert (
        SM.open(sm4_key(VAULT_KEY), sealed, label.encode())
        == json.dumps(value, separators=(",", ":")).encode()
    )
    assert SM_VAULT.open(sealed, label) == value
    # Verify a changed byte, another label or the other suite's vault does not open it
    at = flip % len(sealed)
    changed = sealed[:at] + bytes([sealed[at] ^ 1]) + sealed[at + 1 :]
    for vault, blob, where in ((SM_VAULT, changed, label), (SM_VAULT, sealed, label + "x")):
        with pytest.raises(VaultError, match=f"^sealed value for {re.escape(where)} does not open"):
            vault.open(blob, where)
    with pytest.raises(VaultError) as refused:
        ED_VAULT.open(sealed, label)
    assert str(refused.value) == "unknown sealed value version"
    with pytest.raises(VaultError) as caught:
        SM_VAULT.open(ED_VAULT.seal(value, label), label)
    assert str(caught.value) == (
        f"sealed value for {label} does not open:"
        " sealed value is AES-256-GCM, this suite opens SM4-GCM"
    )


def test_the_services_tables_keep_an_sm2_key_on_every_backend(db_url: str) -> None:
    # The story on an SM chain and PostgreSQL answered 500: credit_smes.key was VARCHAR(64),
    # which SQLite never enforces and an SM2 key (130 hex digits) overflows
    from sqlalchemy.orm import Session

    from chain.db import make_engine
    from services.common.db import Base
    from services.credit.models import InquiryRow, SmeRow
    from services.roadhealth.models import RhDevice

    key = suite_for("sm2-sm3").generate().public_hex
    assert len(key) == 130
    engine = make_engine(db_url)
    try:
        Base.metadata.create_all(engine)
        tx = "ab" * 32
        with Session(engine) as session:
            session.add(
                SmeRow(
                    uscc="91110108000000027Y",
                    org="sme",
                    key=key,
                    registered_by="op",
                    tx=tx,
                    height=1,
                )
            )
            session.add(
                InquiryRow(
                    seq=1,
                    uscc="91110108000000027Y",
                    n=1,
                    bank="bank-a",
                    bank_key=key,
                    purpose="loan",
                    rating_seq=1,
                    rating_tx=tx,
                    model=tx,
                    consent_tx=tx,
                    tx=tx,
                    height=1,
                    time_ms=1,
                )
            )
            session.add(
                RhDevice(id="bus-1", pub_key=key, vehicle_class="bus", status="active", last_tx=tx)
            )
            session.commit()
        with Session(engine) as session:
            assert session.get(SmeRow, "91110108000000027Y").key == key  # type: ignore[union-attr]
            assert session.get(InquiryRow, 1).bank_key == key  # type: ignore[union-attr]
            assert session.get(RhDevice, "bus-1").pub_key == key  # type: ignore[union-attr]
    finally:
        engine.dispose()
