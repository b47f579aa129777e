#!/usr/bin/env bash
# Install what the RTSP test server (services/siamstream_services/testing/rtsp_server.py) needs: Debian's
# GStreamer RTSP server and its Python bindings, run with /usr/bin/python3 (the Debian bindings do not
# import from a venv), and the elements of its pipeline: appsrc/videoconvert (-base), rtph264pay (-good),
# x264enc (-ugly), h264parse (-bad). Idempotent: does nothing when every element and binding is already
# importable.
set -euo pipefail

check='
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import Gst, GstApp, GstRtspServer
Gst.init(None)
missing = [n for n in ("appsrc", "videoconvert", "x264enc", "h264parse", "rtph264pay")
           if Gst.ElementFactory.find(n) is None]
raise SystemExit(1 if missing else 0)
'

if /usr/bin/python3 -c "$check" >/dev/null 2>&1; then
    echo "GStreamer RTSP server and elements already installed"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
else
    sudo=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends \
    python3-gi gir1.2-gst-rtsp-server-1.0 gir1.2-gst-plugins-base-1.0 \
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
/usr/bin/python3 -c "$check"
echo "installed: GStreamer RTSP server $(dpkg-query -W -f='${Version}' gir1.2-gst-rtsp-server-1.0)"
