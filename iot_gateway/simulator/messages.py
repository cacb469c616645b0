"""The MQTT fleet: every device's windows signed and interleaved, with planted faults if asked.

A share of the messages can be made faulty on purpose (`BAD_KINDS`), each of which the gateway
must dead-letter with that reason; the fleet counts what it sent of each.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np

from chain.crypto import SigningKey
from chain.suites import DEFAULT_SUITE, suite_for
from iot_gateway.simulator.network import Network, device_key
from iot_gateway.simulator.streams import DeviceStream
from iot_gateway.wire import ENCODINGS, Encoding, canonical_json, encode_cbor, sign_payload

BAD_KINDS = ("bad_signature", "unknown_device", "replayed_seq", "malformed")


def with_suite_keys(network: Network, crypto: str) -> Network:
    """The network with each device's key of the chain's suite, from the same seed as
    network.device_key (an sm2-sm3 chain registers only SM2 device keys); unchanged for the
    default suite."""
    if crypto == DEFAULT_SUITE:
        return network
    suite = suite_for(crypto)
    devices = [
        # SimDevice.key is typed SigningKey; an SM2 key has the same public_hex and sign
        replace(d, key=cast(SigningKey, suite.key_from_seed(_seed(network.seed, d.id))))
        for d in network.devices
    ]
    return replace(network, devices=devices)


def _seed(seed: int, device: str) -> bytes:
    return hashlib.sha256(f"sim:{seed}:{device}".encode()).digest()


@dataclass(frozen=True)
class Outgoing:
    """A message ready to publish; `bad` names the fault planted in it, if any."""

    topic: str
    payload: bytes
    device: str
    seq: int | None
    bad: str | None = None


def encode_payload(payload: dict[str, Any], encoding: Encoding) -> bytes:
    """A signed payload's bytes on the wire: canonical JSON, or CBOR."""
    return encode_cbor(payload) if encoding == "cbor" else canonical_json(payload)


def _on_topic(topic: str, encoding: Encoding) -> str:
    return topic if encoding == "json" else f"{topic}/{encoding}"


def make_bad(
    kind: str,
    good: Outgoing,
    signed: dict[str, Any],
    network: Network,
    rng: np.random.Generator,
    encoding: Encoding = "json",
) -> Outgoing:
    """A faulty variant of a good message: the gateway must dead-letter it with this reason."""
    if kind == "bad_signature":
        tampered = {**signed, "speed_mps": round(signed["speed_mps"] + 1.0, 3)}
        return Outgoing(good.topic, encode_payload(tampered, encoding), good.device, None, kind)
    if kind == "unknown_device":
        stranger = f"ghost-{network.seed}-{int(rng.integers(1000))}"
        key = device_key(network.seed + 1, stranger)
        body = sign_payload(key, {**signed, "device": stranger})
        topic = good.topic.replace(f"/sensor/{good.device}/", f"/sensor/{stranger}/")
        return Outgoing(topic, encode_payload(body, encoding), stranger, None, kind)
    if kind == "malformed":
        # Cut short: neither JSON nor CBOR parses it
        cut = encode_payload(signed, encoding)[:24]
        return Outgoing(good.topic, cut, good.device, None, kind)
    raise ValueError(f"unknown bad kind {kind!r}; use one of {', '.join(BAD_KINDS)}")


class Fleet:
    """Every device's stream, interleaved, with a share of bad messages when asked."""

    def __init__(
        self,
        network: Network,
        *,
        bad_share: float = 0.0,
        bad_kinds: tuple[str, ...] = BAD_KINDS,
        seed: int = 0,
        window_s: float = 1.0,
        gps_jitter_m: float = 3.0,
        noise_std_mps2: float = 0.05,
        encoding: Encoding = "json",
    ) -> None:
        if not 0.0 <= bad_share <= 1.0:
            raise ValueError("bad_share must lie in 0..1")
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")
        self.encoding = encoding
        for kind in bad_kinds:
            if kind not in BAD_KINDS:
                raise ValueError(f"unknown bad kind {kind!r}; use one of {', '.join(BAD_KINDS)}")
        self.network = network
        self.streams = [
            DeviceStream(
                network,
                d,
                window_s=window_s,
                noise_std_mps2=noise_std_mps2,
                gps_jitter_m=gps_jitter_m,
            )
            for d in network.devices
        ]
        self.keys = {d.id: d.key for d in network.devices}
        self.bad_share = bad_share
        self.bad_kinds = bad_kinds
        self.rng = np.random.default_rng(seed)
        self.turn = 0
        self.sent_good: list[tuple[str, int]] = []
        self.sent_bad: dict[str, int] = {}

    def next_message(self, now_s: float) -> Outgoing:
        stream = self.streams[self.turn % len(self.streams)]
        self.turn += 1
        window = stream.next_window(now_s)
        signed = sign_payload(self.keys[stream.device.id], window.payload)
        good = Outgoing(
            _on_topic(window.topic, self.encoding),
            encode_payload(signed, self.encoding),
            stream.device.id,
            stream.seq,
        )
        if self.bad_share and self.rng.random() < self.bad_share:
            kind = str(self.rng.choice(self.bad_kinds))
            bad = self._bad(kind, good, signed, stream)
            if bad is not None:
                stream.seq -= 1  # a bad message does not use up a sequence number
                self.sent_bad[kind] = self.sent_bad.get(kind, 0) + 1
                return bad
        self.sent_good.append((good.device, stream.seq))
        return good

    def _bad(
        self, kind: str, good: Outgoing, signed: dict[str, Any], stream: DeviceStream
    ) -> Outgoing | None:
        if kind != "replayed_seq":
            return make_bad(kind, good, signed, self.network, self.rng, self.encoding)
        if stream.seq < 2:
            return None  # nothing accepted yet to replay
        # A fresh window signed under a sequence number the device already used
        old_seq = int(self.rng.integers(1, stream.seq))
        body = sign_payload(
            self.keys[stream.device.id],
            {**signed, "seq": old_seq, "speed_mps": round(signed["speed_mps"] + 0.5, 3)},
        )
        payload = encode_payload(body, self.encoding)
        return Outgoing(good.topic, payload, good.device, old_seq, "replayed_seq")
