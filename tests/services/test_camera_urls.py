"""The camera URL grammar and the camera network policy, on their own (no server).

The URLs refused here are the ones an attacker sent (issue 8): FFmpeg writes a camera URL verbatim into its
RTSP request line, while `urlsplit` silently drops CR, LF and TAB and so used to pass them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from ipaddress import ip_address, ip_network

import pytest

from siamstream_services.cameras.config import IngestSettings
from siamstream_services.cameras.urls import (
    MAX_URL_LENGTH,
    CameraNetworks,
    CameraUrl,
    CameraUrlError,
    check_camera_address,
    ffmpeg_url,
    parse_camera_url,
    public_url,
)

DEFAULTS = IngestSettings().camera_networks
LOOPBACK = [ip_network("127.0.0.0/8"), ip_network("::1/128")]

BAD_URLS = {
    "injection": "rtsp://127.0.0.1:6379/x\r\nSET k v\r\nHSET siamstream:v1:camera:b owner a\r\nX: y",
    "lone LF": "rtsp://127.0.0.1:8554/x\ny",
    "upper-case scheme": "RTSP://127.0.0.1:8554/x",
    "leading space": " rtsp://127.0.0.1:8554/x",
    "trailing space": "rtsp://127.0.0.1:8554/x ",
    "tab in the scheme": "rt\tsp://127.0.0.1:8554/x",
    "NUL": "rtsp://127.0.0.1:8554/x\x00y",
    "DEL": "rtsp://127.0.0.1:8554/x\x7fy",
    "space in the path": "rtsp://127.0.0.1:8554/a b",
    "percent-encoded CR LF": "rtsp://127.0.0.1:8554/x%0D%0ASET%20k%20v",
    "percent-encoded NUL in the password": "rtsp://user:p%00w@127.0.0.1:8554/x",
    "non-ASCII host": "rtsp://câmera.example/x",
    "http": "http://127.0.0.1:8554/x",
    "no scheme": "127.0.0.1:8554/x",
    "port 0": "rtsp://127.0.0.1:0/x",
    "port 65536": "rtsp://127.0.0.1:65536/x",
    "empty port": "rtsp://127.0.0.1:/x",
    "empty host": "rtsp:///x",
    "short IPv4": "rtsp://127.1/x",
    "hex IPv4": "rtsp://0x7f.1/x",
    "octal-looking IPv4": "rtsp://0177.0.0.1/x",
    "IPv4 in brackets": "rtsp://[127.0.0.1]/x",
    "IPv6 without brackets": "rtsp://::1/x",
    "IPv6 zone": "rtsp://[fe80::1%25eth0]/x",
    "underscore in the host": "rtsp://cam_1.example/x",
    "label over 63": f"rtsp://{'a' * 64}.example/x",
    "two @": "rtsp://a@b@127.0.0.1/x",
    "fragment": "rtsp://127.0.0.1:8554/x#y",
    "backslash": "rtsp://127.0.0.1:8554/x\\y",
    "braces in the query": "rtsp://127.0.0.1:8554/x?a={b}",
    "too long": "rtsp://127.0.0.1:8554/" + "a" * MAX_URL_LENGTH,
}


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
def test_malformed_urls_are_refused_without_being_repeated(url: str) -> None:
    with pytest.raises(CameraUrlError) as refused:
        parse_camera_url(url)
    assert "127.0.0.1" not in str(refused.value) and "SET" not in str(refused.value)


def test_valid_urls_parse_into_their_parts() -> None:
    url = parse_camera_url("rtsps://us%40er:p;w!@cam-1.Site.example:8322/live/ch~1;a=b/@x?token=A%2Fb&t=1?z")
    assert url == CameraUrl(
        "rtsps", "cam-1.Site.example", 8322, "/live/ch~1;a=b/@x", "token=A%2Fb&t=1?z", "us%40er:p;w!"
    )
    assert url.connect_port == 8322 and url.literal is None and "p;w!" not in repr(url)
    assert parse_camera_url("rtsp://10.0.0.7") == CameraUrl("rtsp", "10.0.0.7", None, "", None)
    assert parse_camera_url("rtsp://10.0.0.7").connect_port == 554
    assert parse_camera_url("rtsps://10.0.0.7").connect_port == 322
    assert parse_camera_url("rtsp://[2001:db8::7]:8554/s").literal == ip_address("2001:db8::7")


def test_public_url_drops_credentials_and_query() -> None:
    assert public_url("rtsp://admin:secret@10.0.0.7:8554/live?token=hunter2") == "rtsp://10.0.0.7:8554/live"
    assert public_url("rtsp://[2001:db8::7]/s?a=1") == "rtsp://[2001:db8::7]/s"
    # A URL stored before URLs were checked shows nothing of itself.
    assert public_url(BAD_URLS["injection"]) == ""


METADATA_AND_LINK_LOCAL = {
    "AWS, GCP, Azure metadata": "rtsp://169.254.169.254/latest/meta-data",
    "AWS metadata over IPv6": "rtsp://[fd00:ec2::254]/",
    "Alibaba metadata": "rtsp://100.100.100.200/",
    "IPv4 link-local": "rtsp://169.254.10.20:554/cam",
    "IPv6 link-local": "rtsp://[fe80::1]/cam",
    "IPv4-mapped metadata": "rtsp://[::ffff:169.254.169.254]/",
    "NAT64 metadata": "rtsp://[64:ff9b::a9fe:a9fe]/",
    "this host": "rtsp://0.0.0.0:6379/",
    "IPv6 unspecified": "rtsp://[::]:6379/",
}


@pytest.mark.parametrize("url", METADATA_AND_LINK_LOCAL.values(), ids=METADATA_AND_LINK_LOCAL.keys())
def test_metadata_and_link_local_addresses_are_denied_by_default(url: str) -> None:
    with pytest.raises(CameraUrlError, match="denied camera network"):
        check_camera_address(parse_camera_url(url), DEFAULTS)


def test_loopback_and_private_cameras_are_allowed_by_default() -> None:
    for url in ("rtsp://127.0.0.1:8554/x", "rtsp://[::1]:8554/x", "rtsp://10.1.2.3/x", "rtsp://localhost/x"):
        check_camera_address(parse_camera_url(url), DEFAULTS)


NAME_REFUSAL = "host resolves outside the allowed camera networks"


def test_every_address_a_name_resolves_to_is_checked() -> None:
    no_loopback = CameraNetworks((), LOOPBACK)
    with pytest.raises(CameraUrlError, match=NAME_REFUSAL):
        check_camera_address(parse_camera_url("rtsp://localhost:8554/x"), no_loopback)
    only_cameras = CameraNetworks((ip_network("10.20.0.0/16"),), ())
    with pytest.raises(CameraUrlError, match=NAME_REFUSAL):
        check_camera_address(parse_camera_url("rtsp://localhost:8554/x"), only_cameras)
    assert check_camera_address(parse_camera_url("rtsp://10.20.3.4/x"), only_cameras) == [
        ip_address("10.20.3.4")
    ]


def test_a_refused_name_shows_the_caller_nothing_of_its_addresses(
    resolve_as: Callable[[str, str], None], caplog: pytest.LogCaptureFixture
) -> None:
    """A name's addresses may be the deployment's own (a cluster service): only the log has them."""
    resolve_as("redis.internal.example", "10.96.3.4")
    services = CameraNetworks((), (ip_network("10.96.0.0/12"),))
    caplog.set_level(logging.WARNING, logger="siamstream_services.cameras.urls")
    with pytest.raises(CameraUrlError) as refused:
        check_camera_address(parse_camera_url("rtsp://redis.internal.example:6379/x"), services)
    assert str(refused.value) == NAME_REFUSAL
    assert (
        "camera host redis.internal.example refused: address 10.96.3.4 is in the denied camera network "
        "10.96.0.0/12" in caplog.text
    )
    # A literal is the caller's own: its refusal names it.
    with pytest.raises(CameraUrlError, match=r"address 10\.96\.3\.4 is in the denied camera network"):
        check_camera_address(parse_camera_url("rtsp://10.96.3.4:6379/x"), services)


def test_a_deny_wins_over_an_allow() -> None:
    networks = CameraNetworks((ip_network("169.254.0.0/16"),), ())
    with pytest.raises(CameraUrlError, match="denied"):
        check_camera_address(parse_camera_url("rtsp://169.254.7.7/x"), networks)


def test_the_networks_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIAMSTREAM_INGEST_ALLOWED_CAMERA_NETWORKS", '["10.20.0.0/16", "169.254.0.0/16"]')
    monkeypatch.setenv("SIAMSTREAM_INGEST_DENIED_CAMERA_NETWORKS", '["10.20.9.0/24"]')
    networks = IngestSettings().camera_networks
    assert networks.refusal(ip_address("10.20.1.1")) is None
    assert "denied" in (networks.refusal(ip_address("10.20.9.1")) or "")
    assert "outside" in (networks.refusal(ip_address("192.168.1.1")) or "")
    # Denying one network more keeps every network denied by default denied: neither an allow nor the
    # deny setting takes them out.
    for address in ("169.254.169.254", "100.100.100.200", "0.0.0.0", "::", "fd00:ec2::254"):
        assert "denied" in (networks.refusal(ip_address(address)) or ""), address


def test_ffmpeg_gets_the_checked_address_in_place_of_a_name() -> None:
    """FFmpeg would resolve a name again, and may get another answer than the check did (DNS rebinding)."""
    v4, v6 = [ip_address("10.1.2.3"), ip_address("10.1.2.4")], [ip_address("2001:db8::7")]
    named = parse_camera_url("rtsp://us%40er:p;w@cam.example:8554/live/ch1?token=A%2Fb&t=1")
    assert ffmpeg_url(named, v4) == "rtsp://us%40er:p;w@10.1.2.3:8554/live/ch1?token=A%2Fb&t=1"
    assert ffmpeg_url(parse_camera_url("rtsp://cam.example/s?"), v6) == "rtsp://[2001:db8::7]/s?"
    # Literals need no lookup; rtsps keeps its name for TLS (FFmpeg resolves it again: docs/deploy.md).
    for url in ("rtsp://u:p@10.1.2.3:8554/x?q", "rtsp://[2001:db8::7]/s", "rtsps://u:p@cam.example:8322/x?q"):
        assert ffmpeg_url(parse_camera_url(url), v4) == url
