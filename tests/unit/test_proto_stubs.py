"""The committed lift.v1 stubs must match what `make proto` generates from protos/."""

from pathlib import Path

from lift.protogen import REPO_ROOT, generate, proto_files


def test_committed_stubs_match_protos(tmp_path: Path) -> None:
    generate(tmp_path)
    generated = sorted(p.relative_to(tmp_path) for p in (tmp_path / "lift" / "v1").glob("*_pb2*"))
    assert len(generated) == 3 * len(proto_files())
    for rel in generated:
        committed = REPO_ROOT / rel
        assert committed.exists(), f"{rel} missing: run `make proto` and commit"
        assert committed.read_text() == (tmp_path / rel).read_text(), (
            f"{rel} drifted: run `make proto`"
        )
