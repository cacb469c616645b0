"""Bitstring Status List: encoding per the spec, revocation/suspension reads, bad lists refused;
the service's lists always the chain's bits, kept current whoever changes them."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jwcrypto import jwk

from services.identity import contract as c
from services.identity import errors
from services.identity.credentials.status_list import (
    MIN_ENTRIES,
    StatusList,
    check_status,
    status_entry,
    status_list_credential,
)

LIST_URL = "https://identity.city.example/status/1"


def _published(status_list: StatusList, purpose: str = "revocation") -> dict:
    return status_list_credential(
        list_id=LIST_URL,
        issuer="https://identity.city.example",
        purpose=purpose,
        status_list=status_list,
        valid_from="2025-01-01T00:00:00Z",
    )


def test_encoded_list_is_multibase_gzip_of_msb_first_bits():
    status_list = StatusList()
    status_list.set(0)
    status_list.set(9)
    encoded = status_list.encode()
    assert encoded.startswith("u")
    assert "=" not in encoded
    raw = gzip.decompress(base64.urlsafe_b64decode(encoded[1:] + "=" * (-len(encoded[1:]) % 4)))
    assert len(raw) * 8 == MIN_ENTRIES
    assert raw[:2] == bytes([0b1000_0000, 0b0100_0000])
    assert encoded == StatusList.decode(encoded).encode()  # deterministic across nodes


def test_revoke_and_suspend_are_read_back_by_verifiers():
    revocations, suspensions = StatusList(), StatusList()
    revocations.set(94567)
    suspensions.set(12)
    suspensions.set(12, 0)  # suspension lifted
    revoked = check_status(
        status_entry(list_credential=LIST_URL, index=94567, purpose="revocation"),
        _published(revocations),
    )
    assert revoked.is_set
    assert revoked.purpose == "revocation"
    entry = status_entry(list_credential=LIST_URL, index=12, purpose="suspension")
    assert entry["statusListIndex"] == "12"
    assert entry["type"] == "BitstringStatusListEntry"
    assert not check_status(entry, _published(suspensions, "suspension")).is_set


def test_multi_bit_status_messages():
    status_list = StatusList(status_size=2)
    status_list.set(5, 0b10)
    entry = status_entry(list_credential=LIST_URL, index=5, purpose="message", status_size=2)
    assert check_status(entry, _published(status_list, "message")).value == 0b10
    with pytest.raises(errors.StatusListError, match="fit"):
        status_list.set(5, 4)


@pytest.mark.parametrize("index", [-1, MIN_ENTRIES])
def test_index_outside_the_list_is_refused(index):
    with pytest.raises(errors.StatusListError, match="outside"):
        StatusList().get(index)


def test_purpose_mismatch_and_wrong_list_are_refused():
    published = _published(StatusList(), "revocation")
    entry = status_entry(list_credential=LIST_URL, index=1, purpose="suspension")
    with pytest.raises(errors.StatusListError, match="statusPurpose"):
        check_status(entry, published)
    other = status_entry(
        list_credential="https://elsewhere.example/1", index=1, purpose="revocation"
    )
    with pytest.raises(errors.StatusListError, match="not the one"):
        check_status(other, published)
    with pytest.raises(errors.StatusListError, match="digits"):
        check_status(
            {
                **status_entry(list_credential=LIST_URL, index=1, purpose="revocation"),
                "statusListIndex": 1,
            },
            published,
        )


@pytest.mark.parametrize(
    "encoded",
    [
        "H4sI",  # no multibase prefix
        "u!!!",  # not base64url
        "u" + base64.urlsafe_b64encode(b"plain, not gzip").decode().rstrip("="),
        # too short
        "u" + base64.urlsafe_b64encode(gzip.compress(bytes(1024), mtime=0)).decode().rstrip("="),
    ],
)
def test_malformed_or_short_lists_are_refused(encoded):
    with pytest.raises(errors.StatusListError):
        StatusList.decode(encoded)


def test_small_lists_and_unknown_purposes_are_refused():
    with pytest.raises(errors.StatusListError):
        StatusList(1024)
    with pytest.raises(errors.StatusListError, match="purpose"):
        status_entry(list_credential=LIST_URL, index=0, purpose="deleted")


def test_digest_changes_with_state():
    status_list = StatusList()
    before = status_list.digest()
    status_list.set(3)
    assert status_list.digest() != before


# -- the service's status lists: current with the chain, whatever the list holds ----------------
# GET /status-lists/{org}/{list}/{purpose} keeps each list's bits in memory, current with the
# chain's blocks (services/identity/status_mirror.py): its answer must always be the chain's
# status keys as of the request, whoever changed them and whichever process serves it.

CLAIMS = {"givenName": "Mei", "familyName": "Chen", "birthDate": "1990-04-02"}
AGENCY = "city-agency"


def issue_many(idn: Any, subject: str, count: int) -> list[dict[str, Any]]:
    item = {"type": "ResidenceCredential", "subject": subject, "claims": CLAIMS}
    made = idn.call(AGENCY, "POST", "/credentials/batch", json={"items": [item] * count})
    assert made.status_code == 201, made.text
    return [{**cred, "entry": cred["status"][0]} for cred in made.json()["credentials"]]


def served(get: Callable[..., Any], entry: dict[str, Any], purpose: str) -> StatusList:
    """The bits a status list GET answers, after checking its signature's shape."""
    answer = get("bank-a", "GET", f"/status-lists/{AGENCY}/{entry['list']}/{purpose}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["credential"].count(".") == 2  # signed with the agency's EdDSA key
    return StatusList.decode(body["document"]["credentialSubject"]["encodedList"])


def on_chain(idn: Any, entry: dict[str, Any], purpose: str) -> int:
    """The credential's status bit as the chain holds it (its status key)."""
    key = c.status_key(AGENCY, entry["list"], purpose, entry["index"])
    record = idn.ledger.read(c.NAMESPACE, key)
    return 0 if record is None else int(record["value"])


def assert_lists_are_the_chains(get: Callable[..., Any], idn: Any, creds: list[dict]) -> None:
    """Both lists served are, bit for bit, the chain's status of every credential issued."""
    for purpose in ("revocation", "suspension"):
        expected = StatusList()
        for cred in creds:
            expected.set(cred["entry"]["index"], on_chain(idn, cred["entry"], purpose))
        assert served(get, creds[0]["entry"], purpose).encode() == expected.encode(), purpose


def change(get: Callable[..., Any], cred: dict[str, Any], action: str) -> Any:
    return get(AGENCY, "POST", f"/credentials/{cred['id']}/{action}", json={})


def set_on_chain(idn: Any, cred: dict[str, Any], purpose: str, value: int) -> dict[str, Any]:
    """A change the agency submits itself (the SDK): this service's database never hears of it."""
    entry = cred["entry"]
    args = {"list": entry["list"], "index": entry["index"], "purpose": purpose, "value": value}
    receipt: dict[str, Any] = idn.chain_call(AGENCY, "identity", "set_status", args)
    return receipt


def change_on_chain(idn: Any, cred: dict[str, Any], purpose: str, value: int) -> None:
    receipt = set_on_chain(idn, cred, purpose, value)
    assert receipt["status"] == "ok", receipt


@contextmanager
def status_key_reads(idn: Any) -> Iterator[list[str]]:
    """The status keys read from the chain while inside, one by one or many at once."""
    ledger, seen = idn.ledger, []
    read, read_many = ledger.read, ledger.read_many

    def counted(namespace: str, key: str) -> Any:
        if key.startswith("status:"):
            seen.append(key)
        return read(namespace, key)

    def counted_many(namespace: str, keys: list[str]) -> Any:
        seen.extend(key for key in keys if key.startswith("status:"))
        return read_many(namespace, keys)

    ledger.read, ledger.read_many = counted, counted_many
    try:
        yield seen
    finally:
        del ledger.read, ledger.read_many


def test_revocation_suspension_and_reinstatement_are_in_the_list_at_once(issuer, holder):
    idn = issuer
    creds = issue_many(idn, holder.did, 3)
    first, second, third = creds
    assert_lists_are_the_chains(idn.call, idn, creds)
    assert served(idn.call, first["entry"], "revocation").get(first["entry"]["index"]) == 0

    assert change(idn.call, first, "revoke").status_code == 200
    assert served(idn.call, first["entry"], "revocation").get(first["entry"]["index"]) == 1
    assert change(idn.call, second, "suspend").status_code == 200
    assert served(idn.call, second["entry"], "suspension").get(second["entry"]["index"]) == 1
    assert change(idn.call, second, "reinstate").status_code == 200
    assert served(idn.call, second["entry"], "suspension").get(second["entry"]["index"]) == 0
    # Straight on the chain, as an agency without custody does: in the list at once too
    change_on_chain(idn, third, "suspension", 1)
    assert served(idn.call, third["entry"], "suspension").get(third["entry"]["index"]) == 1
    assert_lists_are_the_chains(idn.call, idn, creds)


def test_an_unchanged_list_is_served_without_reading_the_chain_again(issuer, holder):
    idn = issuer
    creds = issue_many(idn, holder.did, 40)
    path = f"/status-lists/{AGENCY}/{creds[0]['entry']['list']}/revocation"
    with status_key_reads(idn) as reads:
        first = idn.call("bank-a", "GET", path).json()
    assert len(reads) == 40  # built once: the status key of each credential in the list
    with status_key_reads(idn) as reads:
        again = [idn.call("bank-a", "GET", path).json() for _ in range(3)]
    assert reads == []  # whatever the list holds: no status key read per request
    assert again == [first] * 3  # the same signed document, until the list changes
    assert change(idn.call, creds[5], "revoke").status_code == 200
    with status_key_reads(idn) as reads:
        changed = idn.call("bank-a", "GET", path).json()
    assert reads == []
    assert changed["credential"] != first["credential"]
    assert_lists_are_the_chains(idn.call, idn, creds)


def test_a_second_instance_of_the_service_on_the_same_database_and_chain_sees_each_change(
    issuer, holder
):
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from services.identity.app import create_app

    idn = issuer
    creds = issue_many(idn, holder.did, 4)
    ctx = idn.suite.services["identity"].state.env.ctx
    with TestClient(create_app(replace(ctx))) as client:

        def other(org: str, method: str, path: str, **kw: Any) -> Any:
            return client.request(method, path, headers=idn.headers(org), **kw)

        # Both serve (and keep) the lists before anything changes
        assert_lists_are_the_chains(idn.call, idn, creds)
        assert_lists_are_the_chains(other, idn, creds)
        assert change(other, creds[0], "revoke").status_code == 200
        assert served(idn.call, creds[0]["entry"], "revocation").get(creds[0]["entry"]["index"])
        assert change(idn.call, creds[1], "suspend").status_code == 200
        assert served(other, creds[1]["entry"], "suspension").get(creds[1]["entry"]["index"])
        change_on_chain(idn, creds[2], "revocation", 1)
        for get in (idn.call, other):
            assert_lists_are_the_chains(get, idn, creds)


def test_after_a_restart_the_lists_are_the_same(tmp_path, db_url):
    from fastapi.testclient import TestClient

    from smartcity.registry import IDENTITY
    from smartcity.suite import open_suite

    from .conftest import RESIDENCE_SCHEMA, IdentityHarness

    @contextmanager
    def running() -> Iterator[IdentityHarness]:
        suite = open_suite(tmp_path / "data", database_url=db_url, services=[IDENTITY])
        with TestClient(suite.app) as client:
            yield IdentityHarness(suite, client)

    def lists(idn: IdentityHarness, entry: dict[str, Any]) -> list[Any]:
        return [
            idn.call("bank-a", "GET", f"/status-lists/{AGENCY}/{entry['list']}/{p}").json()
            for p in ("revocation", "suspension")
        ]

    with running() as idn:
        made = idn.call(
            AGENCY,
            "POST",
            "/types",
            json={"name": "ResidenceCredential", "schema": RESIDENCE_SCHEMA},
        )
        assert made.status_code == 201, made.text
        assert idn.call(AGENCY, "POST", "/issuers/me/keys", json={}).status_code == 201
        idn.govern("admit_issuer", {"org": AGENCY, "types": ["ResidenceCredential"]})
        key = {
            "publicKeyJwk": jwk.JWK.generate(kty="OKP", crv="Ed25519").export_public(as_dict=True)
        }
        did = idn.call(AGENCY, "POST", "/dids", json={"keys": [key]}).json()["did"]
        creds = issue_many(idn, did, 5)
        assert change(idn.call, creds[0], "revoke").status_code == 200
        assert change(idn.call, creds[1], "suspend").status_code == 200
        change_on_chain(idn, creds[2], "revocation", 1)
        before = lists(idn, creds[0]["entry"])
    with running() as idn:
        after = lists(idn, creds[0]["entry"])
        for old, new in zip(before, after, strict=True):
            assert new["document"]["credentialSubject"] == old["document"]["credentialSubject"]
        assert_lists_are_the_chains(idn.call, idn, creds)
        # And the restarted service keeps up with the next change
        assert change(idn.call, creds[3], "revoke").status_code == 200
        assert_lists_are_the_chains(idn.call, idn, creds)


ACTIONS = {  # what each step does: through the service, or straight on the chain
    "revoke": ("revoke", None),
    "suspend": ("suspend", None),
    "reinstate": ("reinstate", None),
    "revoke on chain": ("revocation", 1),
    "suspend on chain": ("suspension", 1),
    "reinstate on chain": ("suspension", 0),
}
steps = st.lists(
    st.one_of(
        st.just(("issue", 0)),
        st.tuples(st.sampled_from(sorted(ACTIONS)), st.integers(0, 1_000)),
    ),
    min_size=1,
    max_size=10,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=steps)
def test_any_sequence_of_changes_leaves_the_lists_equal_to_the_chain(issuer, holder, steps):
    idn = issuer
    # Credentials of earlier examples stay (one suite for all): every list is compared whole
    creds: list[dict[str, Any]] = idn.__dict__.setdefault("issued", [])
    if not creds:
        creds += issue_many(idn, holder.did, 2)
    for step, pick in steps:
        if step == "issue":
            creds += issue_many(idn, holder.did, 1)
        else:
            cred, (action, value) = creds[pick % len(creds)], ACTIONS[step]
            if value is None:
                answer = change(idn.call, cred, action)
                # Refused when it changes nothing (or undoes a revocation): the chain is unchanged
                assert answer.status_code in (200, 409), answer.text
            else:
                receipt = set_on_chain(idn, cred, action, value)
                assert receipt["status"] == "ok" or receipt["code"] in (
                    "unchanged",
                    "already_revoked",
                ), receipt
        assert_lists_are_the_chains(idn.call, idn, creds)


# -- the kept lists against a chain the test drives, block by block --------------------------------


class DrivenChain:
    """One status list on a chain whose blocks reach the mirror when the test delivers them, as
    the feed's thread would (late, lost, or during a build)."""

    INDEXES = range(8)

    def __init__(self) -> None:
        from services.identity.status_mirror import StatusMirror

        self.values = dict.fromkeys(self.INDEXES, 0)
        self.height = 0
        self.undelivered: list[dict[str, Any]] = []
        self.mirror = StatusMirror(None, barrier_s=0.0)

    def commit(self, index: int | None = None, value: int = 0) -> None:
        self.height += 1
        events = []
        if index is not None:
            self.values[index] = value
            data = {"org": AGENCY, "list": 0, "purpose": "revocation", "index": index}
            events.append(
                {"contract": "identity", "name": "status_changed", "data": {**data, "value": value}}
            )
        block = {"type": "block", "height": self.height, "tx_count": len(events), "events": events}
        self.undelivered.append(block)

    def deliver(self, count: int) -> None:
        for block in self.undelivered[:count]:
            self.mirror.on_block(block)
        del self.undelivered[:count]

    def do(self, step: tuple[Any, ...]) -> None:
        kind, *args = step
        if kind == "change":
            self.commit(*args)
        elif kind == "empty":
            self.commit()
        elif kind == "deliver":
            self.deliver(*args)
        elif kind == "lose":
            del self.undelivered[:1]
        elif kind == "break":
            self.mirror.on_break()
        elif kind == "resubscribe":  # the embedded feed's new stream: a marker at the height
            self.mirror.on_break()  # reached, then messages of older blocks may still come
            marker = {"type": "block", "height": self.height, "events": [], "marker": True}
            self.mirror.on_block(marker)

    def get(self, during: Sequence[tuple[Any, ...]] = ()) -> StatusList:
        """A status list request; `during` happens halfway through reading the chain."""
        from services.identity.status_mirror import Built, ListKey

        def build() -> Built:
            bits = StatusList()
            for index in self.INDEXES:
                if index == len(self.INDEXES) // 2:
                    for step in during:
                        self.do(step)
                bits.set(index, self.values[index])
            return Built(bits, keep=True)

        document, _ = self.mirror.document(
            ListKey(AGENCY, 0, "revocation"),
            height=self.height,
            kid=None,
            build=build,
            publish=lambda bits: ({"bits": bits.to_bytes()}, None),
        )
        return StatusList(raw=document["bits"])

    def chain_bits(self) -> bytes:
        bits = StatusList()
        for index, value in self.values.items():
            bits.set(index, value)
        return bits.to_bytes()


chain_steps = st.one_of(
    st.tuples(st.just("change"), st.sampled_from(DrivenChain.INDEXES), st.integers(0, 1)),
    st.tuples(st.just("empty")),
    st.tuples(st.just("deliver"), st.integers(1, 4)),
    st.tuples(st.just("lose")),
    st.tuples(st.just("break")),
    st.tuples(st.just("resubscribe")),
)
requests = st.tuples(st.just("get"), st.lists(chain_steps, max_size=4))


@settings(max_examples=500, deadline=None)
@given(steps=st.lists(st.one_of(chain_steps, requests), max_size=30))
# A block lost on its way: what was kept before it is dropped, not served without its change
@example(
    steps=[
        ("empty",),
        ("deliver", 1),
        ("get", []),
        ("change", 0, 1),
        ("lose",),
        ("empty",),
        ("deliver", 1),
        ("get", []),
    ]
)
# A new embedded stream: messages of blocks up to its marker come late, and change nothing
@example(
    steps=[
        ("change", 0, 1),
        ("change", 0, 0),
        ("resubscribe",),
        ("get", []),
        ("deliver", 1),
        ("get", []),
    ]
)
def test_a_kept_list_is_never_behind_the_chain_height_it_is_asked_at(steps):
    chain = DrivenChain()
    for step in steps:
        if step[0] != "get":
            chain.do(step)
            continue
        before, during = dict(chain.values), step[1]
        served_bits = chain.get(during)
        held = {index: {value} for index, value in before.items()}
        for kind, *args in during:
            if kind == "change":
                held[args[0]].add(args[1])
        # Every change committed before the request is in it; one committed during it may be
        for index in DrivenChain.INDEXES:
            assert served_bits.get(index) in held[index], (index, before, during)
    # Once every block is delivered, what is kept (or built) is the chain's
    chain.deliver(len(chain.undelivered))
    assert chain.get().to_bytes() == chain.chain_bits()
    chain.commit(0, 1 - chain.values[0])
    chain.deliver(1)
    assert chain.get().to_bytes() == chain.chain_bits()


def test_a_feed_left_unused_ends_its_thread_and_starts_again_when_asked():
    """An embedded chain's feed follows its node only while status lists are asked for: a
    mounted app's shutdown hooks never run, so a test's suite would keep its thread for good."""
    import threading
    import time

    from services.identity.block_feed import BlockFeed

    heard: list[str] = []

    def open_stream() -> Iterator[dict[str, Any]]:
        yield {"type": "block", "height": 1, "events": []}
        while True:
            time.sleep(0.01)
            yield {"type": "tick"}

    class Listener:
        def on_block(self, block: dict[str, Any]) -> None:
            heard.append(f"block {block['height']}")

        def on_break(self) -> None:
            heard.append("break")

    def feed_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "block-feed"}

    feed = BlockFeed(open_stream, idle_s=0.2)
    feed.listen(Listener())
    before = feed_threads()
    assert feed.start() is True and feed.start() is False  # one thread, started once
    (thread,) = feed_threads() - before
    thread.join(30)
    assert not thread.is_alive()
    assert heard[0] == "block 1" and heard[-1] == "break"
    assert feed.start() is True  # asked again: it follows the chain again
    feed.stop()
