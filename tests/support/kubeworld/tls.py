"""TLS for the emulated API server: a throwaway CA and a serving certificate for 127.0.0.1.

kubectl (client-go) does not send a bearer token to a plain-http server, so the API server speaks
HTTPS like a real one, with a certificate for IP 127.0.0.1 signed by a CA that the written
kubeconfig carries as `certificate-authority-data`. One CA and certificate (ECDSA P-256, quick to
make) are generated per process and reused by every world; the key never leaves memory except as
a private temporary file the ssl module loads.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import os
import ssl
import tempfile
import threading
from typing import Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


_MADE_ONCE = threading.Lock()  # lru_cache does not stop two threads computing at once (each its own CA)


def _material() -> Tuple[bytes, bytes, bytes]:
    """(CA cert PEM, server cert PEM, server key PEM), the same for every world of the process, even
    when worlds start at once in several threads."""
    with _MADE_ONCE:
        return _make()


@functools.lru_cache(maxsize=None)
def _make() -> Tuple[bytes, bytes, bytes]:
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubeworld-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem


def ca_pem() -> bytes:
    return _material()[0]


def server_context() -> ssl.SSLContext:
    with _MADE_ONCE:
        return _server_context()


@functools.lru_cache(maxsize=None)
def _server_context() -> ssl.SSLContext:
    _, cert, key = _make()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_alpn_protocols(["http/1.1"])  # no HTTP/2: clients fall back to HTTP/1.1 as with any such server
    fd, path = tempfile.mkstemp(prefix="kubeworld-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(cert + key)
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)
    return ctx


def client_context() -> ssl.SSLContext:
    """For in-process clients (tests) that talk to the API server directly."""
    return ssl.create_default_context(cadata=ca_pem().decode())
