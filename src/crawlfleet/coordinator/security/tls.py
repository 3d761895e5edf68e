"""Server-side TLS: the coordinator's certificate and, for mTLS, the CA its clients must present."""

from __future__ import annotations

from pathlib import Path

import grpc

from crawlfleet.coordinator.security.auth import SecurityConfigError


def read_pem(path: Path, what: str) -> bytes:
    """The PEM file at ``path``; a clear error if it is unreadable or not PEM at all."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SecurityConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise SecurityConfigError(f"{what} {path} is not a PEM file")
    return data


def server_credentials(*, cert: Path, key: Path, client_ca: Path | None) -> grpc.ServerCredentials:
    """TLS with ``cert``/``key``; with ``client_ca``, every client must present a certificate it signed."""
    root = read_pem(client_ca, "client CA") if client_ca is not None else None
    return grpc.ssl_server_credentials(
        [(read_pem(key, "TLS key"), read_pem(cert, "TLS certificate"))],
        root_certificates=root,
        require_client_auth=root is not None,
    )
