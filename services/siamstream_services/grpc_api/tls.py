"""The service port's TLS credentials, with its files checked before anything binds.

grpc refuses a certificate that is not its key's, a swapped pair of files or a CA bundle without a
certificate only when it binds the port, and then with an error that reads like a taken port. The same
files are loaded here with Python's `ssl` first, so the refusal says which file is wrong. A certificate
outside its validity period is served (a renewal may be on its way) but logged: clients will refuse it.
"""

from __future__ import annotations

import logging
import re
import ssl
from datetime import UTC, datetime
from pathlib import Path

import grpc

log = logging.getLogger(__name__)

_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
# DER tags of the X.509 fields read here (RFC 5280 section 4.1).
_EXPLICIT_VERSION = 0xA0
_UTC_TIME = 0x17


class TlsFilesError(ValueError):
    """A TLS file that cannot serve: missing its PEM block, not matching its pair, or unreadable."""


def server_credentials(
    cert_file: Path, key_file: Path, client_ca_file: Path | None
) -> grpc.ServerCredentials:
    """The credentials of a port serving `cert_file` (PEM chain) with `key_file` (its PEM private key);
    with `client_ca_file` (PEM bundle), clients must present a certificate it signed.

    Raises `TlsFilesError` naming the file at fault.
    """
    certificate, key = cert_file.read_bytes(), key_file.read_bytes()
    first_certificate = _first_certificate(
        certificate.decode(errors="replace"), key.decode(errors="replace"), cert_file, key_file
    )
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_file, key_file, password=b"")
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            raise TlsFilesError(
                f"tls_key_file {key_file} is not the private key of the certificate in "
                f"tls_cert_file {cert_file}"
            ) from None
        raise TlsFilesError(
            f"tls_cert_file {cert_file} and tls_key_file {key_file} cannot be loaded: {error}"
        ) from None
    client_ca = None
    if client_ca_file is not None:
        client_ca = client_ca_file.read_bytes()
        try:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_verify_locations(cadata=client_ca.decode(errors="replace"))
        except ssl.SSLError:
            raise TlsFilesError(
                f"tls_client_ca_file {client_ca_file} holds no PEM certificate to check clients against"
            ) from None
    _warn_unless_valid(first_certificate, cert_file)
    return grpc.ssl_server_credentials(
        [(key, certificate)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def _first_certificate(certificate: str, key: str, cert_file: Path, key_file: Path) -> str:
    """The first PEM certificate of the chain in `certificate`, once both files hold what they should."""
    swapped = _CERTIFICATE.search(key) is not None and _PRIVATE_KEY.search(certificate) is not None
    if swapped:
        raise TlsFilesError(
            f"tls_cert_file {cert_file} holds a private key and tls_key_file {key_file} a certificate: "
            "the two settings are swapped"
        )
    first = _CERTIFICATE.search(certificate)
    if first is None:
        raise TlsFilesError(f"tls_cert_file {cert_file} holds no PEM certificate")
    if _PRIVATE_KEY.search(key) is None:
        raise TlsFilesError(f"tls_key_file {key_file} holds no PEM private key")
    return first.group()


def _warn_unless_valid(certificate: str, cert_file: Path) -> None:
    """Log a warning when the PEM `certificate` is expired or not yet valid; nothing (but a debug line)
    when its validity cannot be read, which only holds the warning back: OpenSSL has loaded the file."""
    try:
        not_before, not_after = _validity(ssl.PEM_cert_to_DER_cert(certificate))
    except (ValueError, IndexError) as error:
        log.debug("tls_cert_file %s: validity not read, no expiry check (%s)", cert_file, error)
        return
    moment = datetime.now(UTC)
    if not not_before <= moment <= not_after:
        state = "expired" if moment > not_after else "not valid yet"
        log.warning(
            "tls_cert_file %s is %s: valid from %s to %s; clients will refuse it",
            cert_file,
            state,
            not_before.isoformat(),
            not_after.isoformat(),
        )


def _validity(certificate_der: bytes) -> tuple[datetime, datetime]:
    """The notBefore and notAfter times (UTC) of a DER X.509 certificate; ValueError or IndexError when
    `certificate_der` is not one."""
    (_, start, end), *_ = _der_elements(certificate_der, 0, len(certificate_der))
    (_, start, end), *_ = _der_elements(certificate_der, start, end)  # tbsCertificate
    fields = _der_elements(certificate_der, start, end)
    if fields[0][0] == _EXPLICIT_VERSION:
        fields = fields[1:]
    _, start, end = fields[3]  # after serialNumber, signature, issuer
    times = [_der_time(tag, certificate_der[a:b]) for tag, a, b in _der_elements(certificate_der, start, end)]
    return times[0], times[1]


def _der_elements(der: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(tag, content start, content end) of each DER element in `der[start:end]`; ValueError when one
    runs past `end`."""
    elements = []
    while start < end:
        if start + 2 > end:
            raise ValueError(f"DER element header at byte {start} runs past byte {end}")
        tag, length = der[start], der[start + 1]
        start += 2
        if length & 0x80:  # long form: the length's own length in bytes
            size = length & 0x7F
            length = int.from_bytes(der[start : start + size], "big")
            start += size
        if start + length > end:
            raise ValueError(f"DER element at byte {start} runs past byte {end}")
        elements.append((tag, start, start + length))
        start += length
    return elements


def _der_time(tag: int, content: bytes) -> datetime:
    """A UTCTime (YYMMDDHHMMSSZ, years 1950-2049) or GeneralizedTime (YYYYMMDDHHMMSSZ) value."""
    text = content.decode("ascii")
    if tag == _UTC_TIME:
        century = "19" if int(text[:2]) >= 50 else "20"
        text = century + text
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
