"""Where FFmpeg connects once a camera URL passed the check: the address the check saw, and where an RTSP
redirect sends it, told apart by fake RTSP servers on loopback addresses that record every request.

No GStreamer needed: the fake servers answer the first request of each connection and hang up, so every
open fails fast, after FFmpeg has shown where it connects.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from ipaddress import ip_address, ip_network

import pytest

from siamstream_services.cameras.urls import CameraNetworks
from siamstream_services.ingest.capture import open_rtsp_capture

TIMEOUT_MS = 2000
JOIN_TIMEOUT_S = 5.0


class RtspProbe:
    """A TCP server on `host` that records the request line of each connection and answers `status` with
    the request's CSeq and `headers`, then closes the connection."""

    def __init__(self, host: str, status: str, headers: str = "") -> None:
        self.requests: list[str] = []
        self._status, self._headers = status, headers
        self._socket = socket.create_server((host, 0))
        self._socket.settimeout(0.05)
        self.host, self.port = host, self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"rtsp-probe-{host}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(JOIN_TIMEOUT_S)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(1.0)
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                lines = request.decode(errors="replace").split("\r\n")
                self.requests.append(lines[0])
                cseq = next((line for line in lines if line.lower().startswith("cseq:")), "CSeq: 1")
                connection.sendall(f"RTSP/1.0 {self._status}\r\n{cseq}\r\n{self._headers}\r\n".encode())


@pytest.fixture
def probes() -> Iterator[list[RtspProbe]]:
    """The probes a test starts, closed after it."""
    started: list[RtspProbe] = []
    yield started
    for probe in started:
        probe.close()


def test_ffmpeg_connects_to_the_address_checked_not_where_the_name_points_later(
    probes: list[RtspProbe], resolve_as: Callable[[str, str], None]
) -> None:
    """DNS rebinding: the check resolves the name to an allowed address, FFmpeg's own lookup would get
    another one. Here the check's resolver says 127.0.0.3 while the system's says 127.0.0.1 for
    `localhost`: FFmpeg reaching the server on 127.0.0.3 shows it connected where the check looked."""
    camera = RtspProbe("127.0.0.3", "404 Not Found")
    probes.append(camera)
    resolve_as("localhost", camera.host)

    capture = open_rtsp_capture(
        f"rtsp://viewer:secret@localhost:{camera.port}/live?channel=1",
        TIMEOUT_MS,
        TIMEOUT_MS,
        networks=CameraNetworks((ip_network("127.0.0.3/32"),), ()),
    )
    capture.release()

    assert camera.requests == [f"OPTIONS rtsp://127.0.0.3:{camera.port}/live?channel=1 RTSP/1.0"]


def test_ffmpeg_follows_an_rtsp_redirect_past_the_check(probes: list[RtspProbe]) -> None:
    """What remains for the egress policy of the ingest pods (docs/deploy.md): FFmpeg follows a 3xx answer
    to its Location without any check of ours, and no FFmpeg option refuses it. The camera on 127.0.0.1
    passes; the address it redirects to is one the networks deny, and FFmpeg connects there all the same.
    Should a later FFmpeg stop following redirects, this fails: then docs/deploy.md can say so."""
    denied = RtspProbe("127.0.0.2", "404 Not Found")
    camera = RtspProbe(
        "127.0.0.1", "302 Found", f"Location: rtsp://{denied.host}:{denied.port}/latest/meta-data\r\n"
    )
    probes.extend((denied, camera))
    networks = CameraNetworks((), (ip_network("127.0.0.2/32"),))
    assert networks.refusal(ip_address(denied.host)) is not None

    capture = open_rtsp_capture(
        f"rtsp://127.0.0.1:{camera.port}/cam", TIMEOUT_MS, TIMEOUT_MS, networks=networks
    )
    capture.release()

    assert camera.requests == [f"OPTIONS rtsp://127.0.0.1:{camera.port}/cam RTSP/1.0"]
    assert denied.requests == [f"OPTIONS rtsp://{denied.host}:{denied.port}/latest/meta-data RTSP/1.0"]
