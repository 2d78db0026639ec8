"""Generate the Python stubs of protos/ (`make proto`): lift.common.v1, lift.critic.v1, ...

protoc runs with ``-I protos`` into the repository root, so ``lift/critic/v1/critic.proto``
becomes the module ``lift.critic.v1.critic_pb2`` and its import of the common package
reads ``from lift.common.v1 import common_pb2``. The stubs are committed so that an
install works without grpcio-tools; ``tests/unit/test_proto_stubs.py`` fails when they
drift. A development tool: it lives outside the runtime package and is not installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"
INIT = '"""Generated protobuf stubs (tools/protogen.py from protos/); do not edit."""\n'


def proto_files() -> list[Path]:
    """All .proto files of the contract, sorted for a stable order."""
    return sorted(PROTO_ROOT.glob("lift/*/v1/*.proto"))


def package_dirs(root: Path) -> list[Path]:
    """The stub packages under ``root`` (lift/common/v1, lift/critic/v1, ...)."""
    return sorted({root / p.relative_to(PROTO_ROOT).parent for p in proto_files()})


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
    for pkg in package_dirs(out_dir):
        # protoc writes modules only; lift/<name>/ and lift/<name>/v1/ are regular packages.
        for d in (pkg.parent, pkg):
            (d / "__init__.py").write_text(INIT)


if __name__ == "__main__":
    generate(REPO_ROOT)
    dirs = ", ".join(str(d.relative_to(REPO_ROOT)) for d in package_dirs(REPO_ROOT))
    print(f"generated stubs for {len(proto_files())} protos into {dirs}", file=sys.stderr)
