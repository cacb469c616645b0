"""How a node link is opened: TLS 1.3 authenticated by the node keys, or plaintext for a demo.

Each node presents a certificate of its own Ed25519 node key, signed by that key and made at
start-up (deterministic: the same key gives the same bytes). Python's `ssl` has no verify
callback, so each side's context trusts one **anchor** per node key of the chain: a CA
certificate carrying that public key under the name the node's certificate names as its issuer.
OpenSSL then accepts exactly the certificates signed by a node key of the chain and fails any
other handshake with `unknown_ca`. The anchors' own signatures (by a fixed throwaway key, as
anyone can make them from the public keys alone) confer nothing: OpenSSL never checks a trust
anchor's signature, only the peer's certificate against the anchor's key, and TLS 1.3's
CertificateVerify proves the peer holds that key. After the handshake, before any protocol
byte, the channel's key is checked again against the live set (`allowed`: a validator that
governance removed keeps its anchor until restart, not its admission), by both sides, and by
a dialer against the peer it meant to reach.

A `Channel` hands the transport the socket, the authenticated key and the **binding** the
application handshake signs: SHA-256 of the dialer's then the listener's certificate (both
DER), so its signatures are valid on this pair of TLS endpoints only (docs/protocol.md §17).
Python's `ssl` (3.11 to 3.13) does not export keying material, so RFC 9266's `tls-exporter`
is out of reach here; a `Links` implementation on a TLS stack that has it (or on TLCP, for the
SM suite) can bind to it instead.

On an sm2-sm3 chain (`BoundTlsLinks`) the node keys are SM2, which neither `cryptography` nor
Python's `ssl` can put in an X.509 certificate here. Each node then makes a fresh Ed25519
**link key** at start and presents its certificate, issued by a fixed issuer whose private key
is public (`LINK_ISSUER`): TLS 1.3 still encrypts and proves that each end holds its link key,
but says nothing about which node it is. That is said by the application handshake: each side's
node key signs (SM2) the other's nonce together with the binding of both certificates, so the
signature vouches for exactly this pair of link keys, and a man in the middle (two TLS
sessions, two different pairs of certificates) cannot pass one side's signature to the other.
Admission is then the handshake's: a key not in the live set never gets past `hello`.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import secrets
import socket
import ssl
import tempfile
import threading
from collections.abc import Container, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509.oid import NameOID

from chain.crypto import SigningKey, is_usable_public_key
from chain.errors import ChainError

NOT_BEFORE = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)
# Signs the anchors; its signature is never checked (see the module docstring)
ANCHOR_SIGNER = Ed25519PrivateKey.from_private_bytes(
    hashlib.sha256(b"smartcity/p2p/anchor").digest()
)


# Issues every link certificate on an sm2-sm3 chain; public by design (module docstring)
LINK_ISSUER = Ed25519PrivateKey.from_private_bytes(
    hashlib.sha256(b"smartcity/p2p/sm2-link-issuer").digest()
)


class LinkRefused(ChainError, ConnectionError):
    """The other end's certificate is not of the key expected (or of no node of the chain); a
    ConnectionError too, so the transport drops the link as for any other failed connection."""


@dataclass(frozen=True)
class Channel:
    """An opened link: what to read and write, who is at the other end, what to sign."""

    sock: socket.socket
    peer_key: str | None  # the key the link layer authenticated; None over plaintext
    binding: bytes  # what the application handshake signs besides the nonce; b"" over plaintext


class Links(Protocol):
    """Opens node links; the transport runs its handshake and frames over the channel."""

    encrypted: bool

    def dial(self, sock: socket.socket, peer_key: str) -> Channel: ...

    def accept(self, sock: socket.socket) -> Channel: ...


class PlaintextLinks:
    """Unencrypted TCP, authenticated by the application handshake only (a laptop demo)."""

    encrypted = False

    def dial(self, sock: socket.socket, peer_key: str) -> Channel:
        return Channel(sock, None, b"")

    def accept(self, sock: socket.socket) -> Channel:
        return Channel(sock, None, b"")


def _name(role: str, public_hex: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"smartcity {role}"),
            x509.NameAttribute(NameOID.COMMON_NAME, public_hex),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, public: Ed25519PublicKey
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(1)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
    )


def node_certificate(key: SigningKey) -> x509.Certificate:
    """The certificate a node presents: its key, signed by itself, issued by its anchor's name."""
    public = key.private.public_key()
    issuer = _name("node key", key.public_hex)
    return _builder(_name("node", key.public_hex), issuer, public).sign(key.private, None)


def anchor_certificate(public_hex: str) -> x509.Certificate:
    """The trust anchor for one node key: a CA certificate of that key under its issuer name."""
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
    name = _name("node key", public_hex)
    builder = _builder(name, name, public).add_extension(
        x509.BasicConstraints(ca=True, path_length=0), critical=True
    )
    return builder.sign(ANCHOR_SIGNER, None)


def peer_certificate(tls: ssl.SSLSocket) -> tuple[bytes, str]:
    """The peer's certificate (DER) and the Ed25519 key (hex) it carries; ConnectionError
    (the socket closed) when there is none or it is of another kind of key."""
    der = tls.getpeercert(binary_form=True)
    public = x509.load_der_x509_certificate(der).public_key() if der else None
    if der is None or not isinstance(public, Ed25519PublicKey):
        tls.close()
        raise LinkRefused("the peer presented no certificate of an Ed25519 key")
    return der, public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def channel_binding(dialer_der: bytes, listener_der: bytes) -> bytes:
    return hashlib.sha256(dialer_der + listener_der).digest()


def _tls_context(
    protocol: int, certificate: x509.Certificate, private: Ed25519PrivateKey
) -> ssl.SSLContext:
    """TLS 1.3 only, a peer certificate required, presenting `certificate` with `private`."""
    context = ssl.SSLContext(protocol)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False  # a node is named by its key, not a host name
    context.verify_mode = ssl.CERT_REQUIRED
    # ssl loads a certificate and key only from files: a private folder, emptied at once, and
    # the key in it encrypted under a password that lives only in this process (a kill before
    # the folder goes, or the disk's deleted blocks, leave no usable key)
    password = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory(prefix="smartcity-tls-") as folder:
        cert_path, key_path = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_path.write_bytes(certificate.public_bytes(Encoding.PEM))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(
                private.private_bytes(
                    Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(password)
                )
            )
        context.load_cert_chain(cert_path, key_path, password=password)
    return context


class TlsLinks:
    """TLS 1.3 links between the chain's node keys (the module docstring says how)."""

    encrypted = True

    def __init__(self, key: SigningKey, allowed: Container[str], trusted: Iterable[str]) -> None:
        self.key = key
        self.allowed = allowed  # checked on every link, after the handshake
        self._trusted = trusted  # enumerated for the anchors when a link opens
        self._anchored: set[str] = set()
        self._lock = threading.Lock()
        certificate = node_certificate(key)
        self.certificate_der = certificate.public_bytes(Encoding.DER)
        self._client = _tls_context(ssl.PROTOCOL_TLS_CLIENT, certificate, key.private)
        self._server = _tls_context(ssl.PROTOCOL_TLS_SERVER, certificate, key.private)
        self._server.num_tickets = 0  # no resumption: every link is a full handshake

    def _trust_node_keys(self) -> None:
        """Anchor every node key not yet anchored (governance may have added validators)."""
        with self._lock:
            new = [k for k in set(self._trusted) - self._anchored if is_usable_public_key(k)]
            if not new:
                return
            pem = "".join(anchor_certificate(k).public_bytes(Encoding.PEM).decode() for k in new)
            for context in (self._client, self._server):
                context.load_verify_locations(cadata=pem)
            self._anchored.update(new)

    def dial(self, sock: socket.socket, peer_key: str) -> Channel:
        self._trust_node_keys()
        tls = self._client.wrap_socket(sock)
        listener_der, listener = peer_certificate(tls)
        # Verify the listener is the node we dialled
        if listener != peer_key:
            tls.close()
            raise LinkRefused("the listener's certificate is not of the peer dialled")
        # Verify it is a node of this chain now (governance may have removed it)
        if listener not in self.allowed:
            tls.close()
            raise LinkRefused(f"key {listener[:16]} is not a node of this chain")
        return Channel(tls, peer_key, channel_binding(self.certificate_der, listener_der))

    def accept(self, sock: socket.socket) -> Channel:
        self._trust_node_keys()
        tls = self._server.wrap_socket(sock, server_side=True)
        dialer_der, dialer = peer_certificate(tls)
        # Verify the dialer's key is a node of this chain now
        if dialer not in self.allowed:
            tls.close()
            raise LinkRefused(f"key {dialer[:16]} is not a node of this chain")
        return Channel(tls, dialer, channel_binding(dialer_der, self.certificate_der))


class BoundTlsLinks:
    """TLS 1.3 links by fresh Ed25519 link keys, bound to the SM2 node keys by the application
    handshake (the module docstring says how): the links of an sm2-sm3 chain."""

    encrypted = True

    def __init__(self) -> None:
        link = Ed25519PrivateKey.generate()
        issuer_hex = LINK_ISSUER.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
        link_hex = link.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
        subject, issuer = _name("link", link_hex), _name("node key", issuer_hex)
        certificate = _builder(subject, issuer, link.public_key()).sign(LINK_ISSUER, None)
        self.certificate_der = certificate.public_bytes(Encoding.DER)
        anchor = anchor_certificate(issuer_hex).public_bytes(Encoding.PEM).decode()
        self._client = _tls_context(ssl.PROTOCOL_TLS_CLIENT, certificate, link)
        self._server = _tls_context(ssl.PROTOCOL_TLS_SERVER, certificate, link)
        self._server.num_tickets = 0
        for context in (self._client, self._server):
            context.load_verify_locations(cadata=anchor)

    def dial(self, sock: socket.socket, peer_key: str) -> Channel:
        tls = self._client.wrap_socket(sock)
        listener_der, _ = peer_certificate(tls)
        return Channel(tls, None, channel_binding(self.certificate_der, listener_der))

    def accept(self, sock: socket.socket) -> Channel:
        tls = self._server.wrap_socket(sock, server_side=True)
        dialer_der, _ = peer_certificate(tls)
        return Channel(tls, None, channel_binding(dialer_der, self.certificate_der))
