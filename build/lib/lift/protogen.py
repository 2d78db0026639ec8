"""Generate the lift.v1 Python stubs from protos/ (`make proto`).

The stubs are committed so that a plain `pip install -e .` works without
grpcio-tools; `tests/unit/test_proto_stubs.py` fails when they drift.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"


def proto_files() -> list[Path]:
    """All .proto files of the contract, sorted for a stable order."""
    return sorted(PROTO_ROOT.glob("lift/v1/*.proto"))


def generate(out_dir: Path) -> None:
    """Write *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every proto under out_dir."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed for {files}")


if __name__ == "__main__":
    generate(REPO_ROOT)
    print(f"generated stubs for {len(proto_files())} protos into lift/v1/", file=sys.stderr)
