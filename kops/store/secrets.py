"""A cluster's secrets, made and kept by kops on the control machine: its certificate
authority, each node's certificate, and the SCRAM users' passwords.

Everything lives under ``<state>/clusters/<name>/secrets/`` with mode 0600 (folder 0700):
the CA's key never leaves this machine; nodes get their own key and certificate (signed
by the cluster CA, with every address clients and peers use as SANs), re-issued when an
address changes, kept otherwise. Passwords are generated when the inventory gives none,
and shown only by `kops client-config`. Nothing here is ever printed or logged.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets as _random
from dataclasses import dataclass
from pathlib import Path

from kops.core import paths
from kops.core.errors import KopsError
from kops.model.spec import PASSWORD_RE

ADMIN = "kops-admin"      # the user kops itself (and the brokers, between them) authenticate as
CA_DAYS = 3650
CERT_DAYS = 825


def folder(cluster: str) -> Path:
    path = paths.state_dir() / "clusters" / cluster / "secrets"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def _write(path: Path, data: bytes | str) -> None:
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
    os.chmod(path, 0o600)


# -- passwords ----------------------------------------------------------------------------------

def passwords(cluster: str, users: dict[str, str | None], *, persist: bool = True) -> dict[str, str]:
    """name -> password for kops's admin and every user asked for (the inventory's, kops's
    services' own: kops-connect, kops-registry); a given password wins, a kept one is reused,
    a missing one is generated (32 url-safe characters). Users not asked for this time keep
    their kept passwords on disk (their SCRAM users still exist in the cluster)."""
    path = folder(cluster) / "users.json"
    kept = paths.read_json(path, "record of the cluster's passwords", {},
                           hint="restore it from a backup: the cluster's users were made with these passwords")
    for name, pw in kept.items():   # read back from disk: checked as an inventory's passwords are
        if not isinstance(name, str) or not isinstance(pw, str) or not PASSWORD_RE.fullmatch(pw):
            raise KopsError(f"{path}: the kept password of {str(name)[:40]!r} is not a usable password (not shown)",
                            hint="kops writes 12-128 letters, digits and ._~+/=- there: restore the file from a "
                                 "backup (the cluster's users were made with these passwords)")
    out = {}
    for name, given in {ADMIN: None, **users}.items():
        out[name] = given or kept.get(name) or _random.token_urlsafe(24)
    if persist and {**kept, **out} != kept:
        _write(path, json.dumps({**kept, **out}, indent=1, sort_keys=True))
    return out


def known(cluster: str) -> list[str]:
    """Every secret value kept for ``cluster`` (its passwords, its private keys and their
    base64 lines), for redaction: a debug bundle or a log never carries one. Reads only."""
    d = paths.state_dir() / "clusters" / cluster / "secrets"
    if not d.is_dir():
        return []
    out: list[str] = []
    try:
        kept = json.loads((d / "users.json").read_text()) if (d / "users.json").is_file() else {}
    except ValueError:
        kept = {}
    out += [pw for pw in kept.values() if isinstance(pw, str)]
    for f in sorted(d.glob("*.key")):
        text = f.read_text(errors="replace")
        out.append(text.strip())
        out += [ln for ln in text.splitlines() if len(ln) >= 16 and not ln.startswith("-----")]
    return out


# -- certificates ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeCert:
    key_pem: str
    cert_pem: str
    not_after: datetime.datetime


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_cert(cert) -> str:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode()


def ca(cluster: str, *, persist: bool = True):
    """(key, certificate) of the cluster CA, made once."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    d = folder(cluster)
    if (d / "ca.key").is_file() and (d / "ca.pem").is_file():
        key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), None)
        return key, x509.load_pem_x509_certificate((d / "ca.pem").read_bytes())
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"kops {cluster} CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    if persist:
        _write(d / "ca.key", _pem_key(key))
        _write(d / "ca.pem", _pem_cert(cert))
    return key, cert


def ca_pem(cluster: str) -> str:
    return _pem_cert(ca(cluster)[1])


def _sans(cert) -> set[str]:
    from cryptography import x509

    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in ext.get_values_for_type(x509.DNSName)} | \
        {str(v) for v in ext.get_values_for_type(x509.IPAddress)}


def node_cert(cluster: str, node: str, names: list[str], *, persist: bool = True) -> NodeCert:
    """The node's key and certificate for ``names`` (host names and addresses): the kept
    one while it covers the same names and has 30 days left, else a new one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d = folder(cluster)
    key_file, cert_file = d / f"{node}.key", d / f"{node}.pem"
    now = datetime.datetime.now(datetime.timezone.utc)
    want = set(names)
    if key_file.is_file() and cert_file.is_file():
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        if _sans(cert) == want and cert.not_valid_after_utc - now > datetime.timedelta(days=30):
            return NodeCert(key_file.read_text(), cert_file.read_text(), cert.not_valid_after_utc)
    ca_key, ca_cert = ca(cluster, persist=persist)
    key = _key()
    alt = []
    for n in sorted(want):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    out = NodeCert(_pem_key(key), _pem_cert(cert), cert.not_valid_after_utc)
    if persist:
        _write(key_file, out.key_pem)
        _write(cert_file, out.cert_pem)
    return out


def expiry(cluster: str) -> list[tuple[str, datetime.datetime, list[str]]]:
    """(what, not after, names) of the CA and every kept node certificate."""
    from cryptography import x509

    d = paths.state_dir() / "clusters" / cluster / "secrets"
    out = []
    for f in sorted(d.glob("*.pem")) if d.is_dir() else []:
        cert = x509.load_pem_x509_certificate(f.read_bytes())
        out.append(("CA" if f.stem == "ca" else f.stem, cert.not_valid_after_utc, sorted(_sans(cert))))
    return out
