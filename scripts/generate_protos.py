"""Generate the Python gRPC stubs of `protos/` into `services/` (package `siamstream_services.v1`).

Run from anywhere: `python scripts/generate_protos.py [--out DIR]`. The stubs live beside the service that
serves the API, so protoc sees `protos/siamstream/` under the import name `siamstream_services/`:
`protos/siamstream/v1/tracking.proto` becomes `<out>/siamstream_services/v1/tracking_pb2.py`,
`tracking_pb2.pyi` and `tracking_pb2_grpc.py`, importable as `siamstream_services.v1.*`. Only the Python
module path changes: the proto package, and so every RPC's name on the wire, stays `siamstream.v1`. The
generated files are committed; `tests/services/test_protos.py` fails when they are not what this script
produces.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"
DEFAULT_OUT = REPO_ROOT / "services"
# The proto tree's top folder, and the Python package its stubs are generated into.
PROTO_PACKAGE = "siamstream"
STUB_PACKAGE = "siamstream_services"


def proto_files(proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Every `.proto` under `proto_root / PROTO_PACKAGE`, sorted, relative to that folder."""
    package_root = proto_root / PROTO_PACKAGE
    return sorted(path.relative_to(package_root) for path in package_root.rglob("*.proto"))


def generate(out_dir: Path, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Compile every proto under `proto_root` into `out_dir`; return the generated files, sorted.

    Raises RuntimeError with protoc's exit status when compilation fails (protoc prints the reason).
    """
    protos = proto_files(proto_root)
    if not protos:
        raise RuntimeError(f"no .proto files under {proto_root}")
    # The well-known types (google/protobuf/timestamp.proto) ship inside grpc_tools.
    well_known = resources.files("grpc_tools") / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{STUB_PACKAGE}={proto_root / PROTO_PACKAGE}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(proto_root / PROTO_PACKAGE / path) for path in protos),
    ]
    status = protoc.main(args)
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status}")
    packages = {Path(STUB_PACKAGE) / path.parent for path in protos}
    return sorted(
        generated
        for package in packages
        for generated in (out_dir / package).iterdir()
        if generated.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output root (default: services/)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
