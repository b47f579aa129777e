"""The camera URLs the service accepts, and the networks a camera may be on.

FFmpeg writes a camera URL verbatim into its RTSP request line, so a URL is checked before anything
stores it, against a grammar with no room for a second reading: printable ASCII only (no space, tab, CR,
LF, NUL or DEL anywhere, none percent-encoded either), the scheme exactly `rtsp` or `rtsps` in lower case,
a host that is an RFC 1123 name or an IPv4 / bracketed IPv6 literal, a port in 1..65535, and a path and
query of RFC 3986 characters. `urllib.parse.urlsplit` is no check: it silently drops CR, LF and TAB while
the original string goes on to FFmpeg.

The address is checked too (`CameraNetworks`): a literal host directly, a name by resolving it and checking
every address it resolves to, so that cameras cannot be pointed at the cloud metadata service or at
networks the deployment denies. The worker checks again before each connection it opens and hands FFmpeg
an rtsp:// URL with the checked address in place of the name (`ffmpeg_url`), so that a name re-pointed
after the check (DNS rebinding) cannot move the connection. Two ways around the check remain, which only
the network can close (docs/deploy.md: egress policy of the ingest pods): FFmpeg follows an RTSP 3xx
redirect to wherever its Location points, with no option to refuse it (libavformat's `ff_rtsp_connect`),
and an rtsps:// URL keeps its name, which TLS needs, so FFmpeg resolves it again.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from siamstream.urls import without_credentials

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

log = logging.getLogger(__name__)

# Far above any real camera URL; bounds what is stored and logged.
MAX_URL_LENGTH = 2048
# RFC 2326 and RFC 7826 default ports.
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}
# Denied whatever the settings say (they can only add networks): link-local holds the metadata service of
# AWS, GCP and Azure (169.254.169.254), AWS's IPv6 and Alibaba's metadata addresses are outside it, and
# "this host" (0.0.0.0/8, ::) connects to the local host on Linux, so it is denied to keep a deny of
# loopback from being bypassed through it. A camera that fell back to a link-local address (no DHCP) is
# reached through a relay.
ALWAYS_DENIED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ip_network(network)
    for network in (
        "0.0.0.0/8",
        "169.254.0.0/16",
        "100.100.100.200/32",
        "::/128",
        "fe80::/10",
        "fd00:ec2::254/128",
    )
)
# RFC 6052's NAT64 prefix: on an IPv6-only network these addresses reach the IPv4 address in their low bits.
_NAT64 = IPv6Network("64:ff9b::/96")

_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT_ENCODED = r"%[0-9A-Fa-f]{2}"
_USERINFO = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT_ENCODED})*"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT_ENCODED})"
_URL = re.compile(
    r"(?P<scheme>rtsps?)://"
    rf"(?:(?P<userinfo>{_USERINFO})@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    rf"(?P<path>(?:/{_PCHAR}*)*)"
    rf"(?:\?(?P<query>(?:{_PCHAR}|[/?])*))?"
)
_PERCENT_OCTET = re.compile(r"%([0-9A-Fa-f]{2})")
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?")


class CameraUrlError(ValueError):
    """A camera URL the service refuses; the message never repeats the URL (it may hold a password)."""


@dataclass(frozen=True)
class CameraUrl:
    """A checked camera URL, in parts, each as written: `host` keeps an IPv6 literal's brackets, `query` is
    None without a '?', `userinfo` (user name and password, None without an '@') is left out of the repr."""

    scheme: str
    host: str
    port: int | None
    path: str
    query: str | None
    userinfo: str | None = field(default=None, repr=False)

    @property
    def connect_port(self) -> int:
        """The port FFmpeg connects to: the written one, or the scheme's default."""
        return self.port or DEFAULT_PORTS[self.scheme]

    @property
    def literal(self) -> IPAddress | None:
        """The host as an address when it is an IP literal, else None (a name)."""
        try:
            return ip_address(self.host.strip("[]"))
        except ValueError:
            return None

    def public(self) -> str:
        """The URL without its user name, password and query, which may hold credentials (the library's
        rule for what is shown of a stream URL)."""
        return without_credentials(self.with_host(self.host))

    def with_host(self, host: str) -> str:
        """The whole URL, credentials and query included, with `host` in place of its host."""
        userinfo = f"{self.userinfo}@" if self.userinfo is not None else ""
        port = f":{self.port}" if self.port is not None else ""
        query = f"?{self.query}" if self.query is not None else ""
        return f"{self.scheme}://{userinfo}{host}{port}{self.path}{query}"


def parse_camera_url(url: str) -> CameraUrl:
    """The parts of `url`, or `CameraUrlError` saying which rule it breaks (see the module docstring)."""
    if len(url) > MAX_URL_LENGTH:
        raise CameraUrlError(f"is longer than {MAX_URL_LENGTH} characters")
    for position, char in enumerate(url):
        if not "!" <= char <= "~":  # printable ASCII other than space
            raise CameraUrlError(f"has the character U+{ord(char):04X} at position {position}")
    for octet in _PERCENT_OCTET.findall(url):
        if int(octet, 16) < 0x20 or int(octet, 16) == 0x7F:
            raise CameraUrlError(f"has the control character %{octet} percent-encoded")
    match = _URL.fullmatch(url)
    if match is None:
        raise CameraUrlError(
            "must be rtsp://[USER[:PASSWORD]@]HOST[:PORT][/PATH][?QUERY] (or rtsps://) with a lower-case "
            "scheme and RFC 3986 characters (no fragment)"
        )
    host = match["host"]
    _check_host(host)
    port = int(match["port"]) if match["port"] is not None else None
    if port is not None and not 1 <= port <= 65535:
        raise CameraUrlError(f"port must be in 1..65535, got {port}")
    return CameraUrl(match["scheme"], host, port, match["path"], match["query"], match["userinfo"])


def public_url(url: str) -> str:
    """`url` without user name, password and query, for listings and logs; '' when it is not a valid
    camera URL (a camera stored before URLs were checked), so that nothing of it is shown."""
    try:
        return parse_camera_url(url).public()
    except CameraUrlError:
        return ""


def _check_host(host: str) -> None:
    if host.startswith("["):
        try:
            IPv6Address(host[1:-1])
        except ValueError:
            raise CameraUrlError("host is not a valid IPv6 literal") from None
        return
    # RFC 1123: a top-level label is never all digits, so a numeric last label must make an IPv4 address
    # in dotted-quad form (not "127.1" or "0x7f.1", which resolvers would also read as addresses).
    if host.rsplit(".", 1)[-1].isdigit():
        try:
            IPv4Address(host)
        except ValueError:
            raise CameraUrlError("host is neither a host name nor a dotted-quad IPv4 address") from None
        return
    labels = host.split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise CameraUrlError("host is not a valid host name (RFC 1123)")


@dataclass(frozen=True)
class CameraNetworks:
    """Where cameras may be: in one of `allowed` (every address when it is empty) and in none of
    `ALWAYS_DENIED_NETWORKS` and `denied` (the deployment's additions).

    A deny wins over an allow. An IPv4-mapped (`::ffff:a.b.c.d`) or NAT64 (`64:ff9b::a.b.c.d`) IPv6
    address is checked as its IPv4 address as well.
    """

    allowed: Sequence[IPNetwork]
    denied: Sequence[IPNetwork]

    def refusal(self, address: IPAddress) -> str | None:
        """Why a camera may not be at `address`; None when it may."""
        forms: list[IPAddress] = [address]
        if isinstance(address, IPv6Address):
            if address.ipv4_mapped is not None:
                forms.append(address.ipv4_mapped)
            elif address in _NAT64:
                forms.append(IPv4Address(int(address) & 0xFFFFFFFF))
        for form in forms:
            for network in (*ALWAYS_DENIED_NETWORKS, *self.denied):
                if form in network:
                    return f"address {address} is in the denied camera network {network}"
        if self.allowed and not any(form in network for form in forms for network in self.allowed):
            return f"address {address} is outside the allowed camera networks"
        return None


def check_camera_address(url: CameraUrl, networks: CameraNetworks) -> list[IPAddress]:
    """The addresses of the URL's host, in the resolver's order, once every one is allowed; else
    `CameraUrlError`. A name is resolved, blocking on the resolver (call it from a thread); resolver
    failures other than an unknown name are raised as they are (`socket.gaierror`, an `OSError`: retryable).

    The refusal of a literal names the address and the network it is in: the caller wrote it. That of a
    name says only that it resolves outside the camera networks, because what it resolves to may be the
    deployment's own (a cluster service a caller probes for by name); the details are logged.
    """
    literal = url.literal
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            infos = socket.getaddrinfo(url.host, url.connect_port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            if error.errno == socket.EAI_AGAIN:  # the resolver cannot answer now: not the caller's mistake
                raise
            raise CameraUrlError(f"host does not resolve ({error.strerror})") from None
        addresses = [ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise CameraUrlError("host resolves to no address")
    for address in addresses:
        refusal = networks.refusal(address)
        if refusal is None:
            continue
        if literal is not None:
            raise CameraUrlError(refusal)
        log.warning("camera host %s refused: %s", url.host, refusal)
        raise CameraUrlError("host resolves outside the allowed camera networks")
    return addresses


def ffmpeg_url(url: CameraUrl, checked: Sequence[IPAddress]) -> str:
    """The URL to open `url` with, once `check_camera_address` returned `checked` for it.

    An rtsp:// URL naming its host by name gets the first checked address in the name's place, so that
    FFmpeg connects where the check looked rather than resolving the name again. RTSP requests carry no
    Host header, so the camera sees the same requests but for the host in their URL. Every other URL is
    returned as written: a literal needs no lookup, and rtsps:// needs its name for TLS.
    """
    if url.scheme != "rtsp" or url.literal is not None:
        return url.with_host(url.host)
    address = checked[0]
    return url.with_host(f"[{address}]" if address.version == 6 else str(address))
