"""Real servers for the tests and the benchmarks, each a process of its own that this package starts.

- `ports.free_port`: a TCP port on 127.0.0.1 that was free a moment ago;
- `processes.terminate`: stop a process by its pid, SIGTERM then SIGKILL, each wait bounded;
- `redis_server.RedisServer`: a redis-server with its own temporary data directory;
- `rtsp_camera.RtspCamera`: the RTSP test camera, the script `rtsp_server.py` run by the system Python;
- `triton.loopback_triton`: a tritonserver (`siamstream_services.inference.triton_server`) on free ports.

What every launcher here guarantees: it binds 127.0.0.1 only, on a port from `free_port` (the RTSP
camera on the port it is given); starting waits until the server answers and gives up after a bounded
time, stopping what it started; stopping signals the pid it started, never a process found by name, and
waits a bounded time; what it wrote outside the caller's folders is deleted (Redis's temporary data
directory on `remove`, Triton's /dev/shm regions on `stop`). Each module says which script installs its
server (`scripts/install_*.sh`); the tests skip, or under CI fail, where one is missing.

The pytest fixtures over these launchers live in tests/services/conftest.py.
"""
