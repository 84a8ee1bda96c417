"""A self-signed certificate for the local cluster's loopback endpoint.

kubectl (client-go) sends bearer tokens over TLS only, and clients should verify the server they
give a token to, so the local cluster serves HTTPS with a certificate for ``127.0.0.1`` /
``localhost`` that the generated kubeconfig pins as ``certificate-authority-data``.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from airflow_argo_eci.local.kubeconfig import write_private

#: a certificate closer than this to its expiry is replaced on start
RENEW_BEFORE = datetime.timedelta(days=7)
VALIDITY = datetime.timedelta(days=365)


def _still_valid(cert_path: Path, key_path: Path) -> bool:
    from cryptography import x509

    if not (cert_path.is_file() and key_path.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError:
        return False
    expires = cert.not_valid_after_utc
    return expires - datetime.datetime.now(datetime.timezone.utc) > RENEW_BEFORE


def ensure_certificate(cert_path: Path, key_path: Path) -> tuple[Path, Path]:
    """Create (or keep, while valid) a self-signed certificate for 127.0.0.1 and localhost.

    The key is written with mode 0600. Returns ``(cert_path, key_path)``.
    """
    if _still_valid(cert_path, key_path):
        return cert_path, key_path
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airflow-argo-eci local cluster")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )
    write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM).decode())
    return cert_path, key_path
