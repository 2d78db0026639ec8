"""The committed stubs (lift.common.v1, lift.critic.v1, ...) must match what `make proto` generates."""

from pathlib import Path

from tools.protogen import REPO_ROOT, generate, package_dirs, proto_files


def test_committed_stubs_match_protos(tmp_path: Path) -> None:
    generate(tmp_path)
    generated = sorted(
        p.relative_to(tmp_path) for d in package_dirs(tmp_path) for p in d.glob("*_pb2*")
    )
    assert len(proto_files()) == 4
    assert len(generated) == 3 * len(proto_files())
    for rel in generated:
        committed = REPO_ROOT / rel
        assert committed.exists(), f"{rel} missing: run `make proto` and commit"
        assert committed.read_text() == (tmp_path / rel).read_text(), (
            f"{rel} drifted: run `make proto`"
        )


def test_each_service_has_its_own_package() -> None:
    """One proto package per service plus a common one; imports are package-qualified."""
    from lift.common.v1 import common_pb2
    from lift.critic.v1 import critic_pb2
    from lift.generator.v1 import generator_pb2
    from lift.trainer.v1 import trainer_pb2

    assert common_pb2.DESCRIPTOR.package == "lift.common.v1"
    services = {
        m.DESCRIPTOR.package: list(m.DESCRIPTOR.services_by_name)
        for m in (critic_pb2, generator_pb2, trainer_pb2)
    }
    assert services == {
        "lift.critic.v1": ["CriticService"],
        "lift.generator.v1": ["GeneratorService"],
        "lift.trainer.v1": ["TrainerService"],
    }
    # No name workarounds: each service's GetInfo takes a plain GetInfoRequest.
    assert "GetInfoRequest" in critic_pb2.DESCRIPTOR.message_types_by_name
    assert "GetInfoRequest" in generator_pb2.DESCRIPTOR.message_types_by_name
