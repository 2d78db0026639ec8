"""The Python clients (sync over gRPC and HTTP, async over gRPC) and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lift.client import AsyncCriticClient, CriticClient, CriticError
from tests.service.conftest import RunningCritic

PROMPT = "shapes move"


@pytest.mark.parametrize("kind", ["grpc", "http"])
def test_sync_client(critic: RunningCritic, mp4s, kind: str) -> None:
    server = critic.grpc_target if kind == "grpc" else critic.http_url
    with CriticClient(server, upload_chunk_bytes=64 * 1024) as client:
        c = client.critique(mp4s["flicker"], PROMPT)  # larger than a chunk: streamed on gRPC
        assert any(i.tag == "flicker" for i in c.issues())
        results = client.score([(mp4s["clean"], PROMPT), (b"junk", PROMPT)])
        assert results[0].reward > 0.5 and isinstance(results[1], CriticError)
        with pytest.raises(CriticError) as info:
            client.critique(mp4s["clean"], "")
        assert info.value.code == "INVALID_ARGUMENT"
        assert client.info()["model"]["backend"] == "signal"


def test_info_is_the_same_over_grpc_and_http(critic: RunningCritic) -> None:
    with CriticClient(critic.grpc_target) as g, CriticClient(critic.http_url) as h:
        assert g.info() == h.info()


def test_async_client(critic: RunningCritic, mp4s) -> None:
    async def main():
        async with AsyncCriticClient(critic.grpc_target) as client:
            return await asyncio.gather(
                client.critique(mp4s["clean"], PROMPT), client.score([(mp4s["cut"], PROMPT)])
            )

    clean, [cut] = asyncio.run(main())
    assert clean.reward > cut.reward


def test_cli_critique_in_process_and_against_server(
    tmp_path: Path, critic: RunningCritic, mp4s
) -> None:
    video = tmp_path / "judder.mp4"
    video.write_bytes(mp4s["judder"])
    lift = [sys.executable, "-m", "lift.cli.main"]
    local = subprocess.run(
        [*lift, "critique", str(video), "--prompt", PROMPT, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    remote = subprocess.run(
        [
            *lift,
            "critique",
            str(video),
            "--prompt",
            PROMPT,
            "--json",
            "--server",
            critic.grpc_target,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    assert a["dimensions"] == b["dimensions"]
    wide = {**os.environ, "COLUMNS": "200"}
    table = subprocess.run(
        [*lift, "critique", str(video), "--prompt", PROMPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=wide,
    )
    assert "judder" in table.stdout and "motion smoothness" in table.stdout
    bad = subprocess.run(
        [*lift, "critique", str(tmp_path / "missing.mp4"), "--prompt", PROMPT],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "missing.mp4" in bad.stderr
