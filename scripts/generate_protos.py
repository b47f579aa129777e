"""Generate the Python gRPC stubs of `protos/` into `services/` (package `siamstream_services.v1`).

Run from anywhere: `python scripts/generate_protos.py [--out DIR]`. protoc compiles with `protos/` as the
import root, so every descriptor keeps its file name (`siamstream/v1/tracking.proto`, what reflection serves
and what any client generated the usual way registers: the two load side by side in one process) and its
proto package (`siamstream.v1`, so every RPC's name on the wire). The stubs then move beside the service
that serves the API: `siamstream/v1/tracking_pb2.py` becomes `<out>/siamstream_services/v1/tracking_pb2.py`
(with `tracking_pb2.pyi` and `tracking_pb2_grpc.py`), and the two places that name the Python module, the
`_pb2_grpc` import and the module name the messages are built under, are rewritten to the new path. The
generated files are committed; `tests/services/test_protos.py` fails when they are not what this script
produces.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"
DEFAULT_OUT = REPO_ROOT / "services"
# The proto tree's top folder, and the Python package its stubs move into.
PROTO_PACKAGE = "siamstream"
STUB_PACKAGE = "siamstream_services"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files(proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Every `.proto` under `proto_root / PROTO_PACKAGE`, sorted, relative to that folder."""
    package_root = proto_root / PROTO_PACKAGE
    return sorted(path.relative_to(package_root) for path in package_root.rglob("*.proto"))


def relocate(text: str, proto: Path) -> str:
    """`text` of a stub generated from `proto` (relative to `PROTO_PACKAGE`), naming the moved module."""
    old = ".".join((PROTO_PACKAGE, *proto.parent.parts))
    new = ".".join((STUB_PACKAGE, *proto.parent.parts))
    module = f"{proto.stem}_pb2"
    return text.replace(f"from {old} import {module} ", f"from {new} import {module} ").replace(
        f"'{old}.{module}'", f"'{new}.{module}'"
    )


def generate(out_dir: Path, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Compile every proto under `proto_root` into `out_dir`; return the generated files, sorted.

    Raises RuntimeError with protoc's exit status when compilation fails (protoc prints the reason).
    """
    protos = proto_files(proto_root)
    if not protos:
        raise RuntimeError(f"no .proto files under {proto_root}")
    # The well-known types (google/protobuf/timestamp.proto) ship inside grpc_tools.
    well_known = resources.files("grpc_tools") / "_proto"
    written = []
    with tempfile.TemporaryDirectory() as compiled:
        args = [
            "grpc_tools.protoc",
            f"-I{proto_root}",
            f"-I{well_known}",
            f"--python_out={compiled}",
            f"--pyi_out={compiled}",
            f"--grpc_python_out={compiled}",
            *(str(proto_root / PROTO_PACKAGE / path) for path in protos),
        ]
        status = protoc.main(args)
        if status != 0:
            raise RuntimeError(f"protoc failed with status {status}")
        for proto in protos:
            source_dir = Path(compiled) / PROTO_PACKAGE / proto.parent
            target_dir = out_dir / STUB_PACKAGE / proto.parent
            target_dir.mkdir(parents=True, exist_ok=True)
            for suffix in GENERATED_SUFFIXES:
                name = proto.stem + suffix
                (target_dir / name).write_text(relocate((source_dir / name).read_text(), proto))
                written.append(target_dir / name)
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output root (default: services/)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
