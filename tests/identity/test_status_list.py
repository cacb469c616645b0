"""Bitstring Status List: encoding per the spec, revocation/suspension reads, bad lists refused."""

from __future__ import annotations

import base64
import gzip

import pytest

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
