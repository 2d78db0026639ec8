"""The trainer touches only what the operator allows, and its runs are bounded (issue 16, 4-5).

Each test replays an attack from the issue against the run manager (or the HTTP
front) and asserts the refusal: run configs that read /etc/shadow, /proc/self/environ
or /dev/zero, escape the data roots through a symlink, probe which paths exist,
point the trainer at 169.254.169.254 or an attacker's server, or ask for unbounded
work (grad_clip .inf, 10^7 steps, 65,536 videos per step, 1000 frames at 4096²);
runs that crash the trainer on every restart, checkpoints that pile up, and cancels
that do nothing.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lift.errors import Conflict, InvalidInput
from lift.runner import start_in_thread
from lift.runs import RunState
from lift.services.trainer.access import DataRoots, Endpoints, endpoint_key
from lift.services.trainer.checkpoints import Checkpoint, CheckpointDir
from lift.services.trainer.config import RunConfig, parse_run_config
from lift.services.trainer.data import DataAccess, load_prompts
from lift.services.trainer.manager import RunManager
from lift.services.trainer.server import build_trainer
from lift.services.trainer.settings import TrainerSettings
from lift.services.trainer.store import Store

pytestmark = pytest.mark.timeout(300)

ROOTS_MESSAGE = "under the trainer's data roots (LIFT_TRAINER_DATA_ROOTS)"


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """A data root with a prompts file, a dataset file and a directory in it."""
    r = tmp_path / "root"
    r.mkdir()
    (r / "prompts.txt").write_text("a dog runs\na cat sleeps\n")
    (r / "data.json").write_text("[]")
    (r / "sub").mkdir()
    return r


def settings(tmp_path: Path, root: Path | None, **kw: Any) -> TrainerSettings:
    return TrainerSettings(
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
        data_roots=[root] if root else [],
        log_level="WARNING",
        **kw,
    )


@pytest.fixture()
def manager(tmp_path: Path, root: Path) -> Iterator[RunManager]:
    m = RunManager(settings(tmp_path, root))
    m.load()
    yield m
    m.close()


def online(**extra: Any) -> dict[str, Any]:
    return {"prompts": ["a dog"], **extra}


def refusal(manager: RunManager, config: dict[str, Any]) -> str:
    with pytest.raises(InvalidInput) as err:
        manager.start_run(json.dumps(config))
    assert manager.list_runs() == [], "a refused config must not queue a run"
    return err.value.message


# ---- 4. paths: only under the data roots, regular files, one message ----------------------


def _outside_targets(tmp_path: Path, root: Path) -> dict[str, str]:
    secret = tmp_path / "secret.txt"  # outside the root, readable by the trainer
    secret.write_text("root:$6$hash\n")
    (root / "escape.txt").symlink_to(secret)  # a symlink inside the root pointing out
    (root / "dangling.txt").symlink_to(tmp_path / "nothing-here")
    os.mkfifo(root / "fifo.txt")
    return {
        "/etc/shadow": "/etc/shadow",
        "/proc/self/environ": "/proc/self/environ",
        "/dev/zero": "/dev/zero",
        "an existing file outside": str(secret),
        "a missing file outside": str(tmp_path / "missing.txt"),
        "a missing file inside": str(root / "missing.txt"),
        "a symlink inside pointing out": str(root / "escape.txt"),
        "a dangling symlink inside": str(root / "dangling.txt"),
        "dot-dot out of the root": str(root / ".." / "secret.txt"),
        "relative dot-dot": "../secret.txt",
        "a directory where a file is expected": str(root / "sub"),
        "a FIFO inside the root": str(root / "fifo.txt"),
    }


def test_prompts_file_outside_the_roots_is_refused_with_one_message(
    manager: RunManager, tmp_path: Path, root: Path
) -> None:
    messages = {}
    for what, path in _outside_targets(tmp_path, root).items():
        messages[what] = refusal(manager, online(prompts_file=path))
    # One sentence for all: it does not tell a missing path from an existing one.
    assert len(set(messages.values())) == 1, messages
    message = next(iter(messages.values()))
    assert message == f"invalid run config: prompts_file must name a regular file {ROOTS_MESSAGE}"
    assert "exist" not in message and str(tmp_path) not in message


def test_every_path_field_is_checked(manager: RunManager, tmp_path: Path, root: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model_index.json").write_text("{}")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"real_data": {"path": "/etc"}}, "real_data.path"),
        ({"real_data": {"path": "/etc/passwd"}}, "real_data.path"),
        ({"model": str(tmp_path / "model")}, "model"),
        ({"model": str(root / "sub")}, "model"),  # inside, but no model_index.json
    ]
    for extra, field in cases:
        assert field in refusal(manager, online(**extra))
    offline = {"mode": "offline", "offline_data": {"path": "/etc/passwd"}}
    message = refusal(manager, offline)
    assert message.startswith("invalid run config: offline_data.path must name a regular file")


def test_the_trainers_own_files_stay_off_limits_under_a_root(tmp_path: Path) -> None:
    """A root above the data dir still does not expose other runs' configs and weights."""
    m = RunManager(settings(tmp_path, tmp_path))
    m.load()
    try:
        run_file = tmp_path / "data" / "runs" / "run-x" / "adapter" / "adapter_config.json"
        run_file.parent.mkdir(parents=True)
        run_file.write_text("{}")
        for path in (tmp_path / "data" / "trainer.sqlite", run_file):
            assert ROOTS_MESSAGE in refusal(m, online(prompts_file=str(path)))
    finally:
        m.close()


def test_paths_inside_the_roots_are_accepted(manager: RunManager, root: Path) -> None:
    (root / "sub" / "model_index.json").write_text("{}")
    config = RunConfig.model_validate(
        online(
            prompts_file="prompts.txt",  # relative: to the root
            real_data={"path": str(root / "sub")},
            model=str(root / "sub"),
        )
    )
    manager.check_access(config)
    assert load_prompts(config, manager.access) == ["a dog", "a dog runs", "a cat sleeps"]


def test_dataset_records_cannot_point_outside_the_roots(tmp_path: Path, root: Path) -> None:
    from lift.reward import RewardMap
    from lift.services.trainer.data import load_offline_clips

    records = [{"video": "/etc/passwd", "caption": "x", "reward": 0.5}]
    (root / "evil.json").write_text(json.dumps(records))
    access = DataAccess(DataRoots.of([root]))
    with pytest.raises(InvalidInput) as err:
        load_offline_clips(root / "evil.json", None, RewardMap(0.9, 0.2, 0.05), access)
    assert ROOTS_MESSAGE in err.value.message and "record 0" in err.value.message


def test_reads_are_capped(tmp_path: Path, root: Path) -> None:
    big = root / "big.txt"
    big.write_bytes(b"a prompt\n" * 1000)  # 9000 bytes
    access = DataAccess(DataRoots.of([root]), max_prompts_file_bytes=4096)
    config = RunConfig.model_validate(online(prompts_file=str(big)))
    with pytest.raises(InvalidInput) as err:
        load_prompts(config, access)
    assert "larger than" in err.value.message
    # Even a root that holds devices serves no device: /dev/zero is not a regular file.
    with pytest.raises(InvalidInput):
        DataRoots.of([Path("/dev")]).read(Path("/dev/zero"), "prompts_file", 4096)


def test_a_dataset_too_big_for_memory_is_refused_before_decoding(offline_dataset: Path) -> None:
    from lift.services.trainer.data import Shape, load_real_clips

    access = DataAccess(DataRoots.of([offline_dataset]), max_dataset_bytes=1024 * 1024)
    with pytest.raises(InvalidInput, match="GiB"):  # 1 clip of 257x2048x2048: 3 GiB
        load_real_clips(offline_dataset / "real", Shape(257, 2048, 2048), access)
    assert load_real_clips(offline_dataset / "real", Shape(9, 32, 32), access)


def test_a_file_swapped_for_a_fifo_after_the_check_is_refused_not_read(root: Path) -> None:
    roots = DataRoots.of([root])
    target = root / "prompts.txt"
    roots.file(target, "prompts_file")
    target.unlink()
    os.mkfifo(target)  # the reader must neither block nor read it
    with pytest.raises(InvalidInput):
        roots.read(target, "prompts_file", 4096)


def test_http_front_refuses_with_400(tmp_path: Path, root: Path) -> None:
    runner, stop = start_in_thread(
        build_trainer, settings(tmp_path, root, grpc_port=0, http_port=0)
    )
    try:
        url = f"http://127.0.0.1:{runner.http_port}/v1/runs"
        r = httpx.post(url, json=online(prompts_file="/etc/shadow"), timeout=30)
        assert r.status_code == 400
        assert ROOTS_MESSAGE in r.json()["error"]["message"]
        r = httpx.post(url, json=online(generator={"address": "169.254.169.254:80"}), timeout=30)
        assert r.status_code == 400
        assert "LIFT_TRAINER_ALLOWED_ENDPOINTS" in r.json()["error"]["message"]
    finally:
        stop()


# ---- 4. endpoints: only the operator's allow-list --------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254:80",
        "attacker.example:50052",
        "10.0.0.5:50051",
        "127.0.0.1:22",  # the right host, another port
        "127.1:50052",  # not a canonical spelling: never matched
        "[::ffff:169.254.169.254]:80",
        "unix:/var/run/docker.sock",
        "dns:///localhost:50052",
        "localhost:50052/extra",
    ],
)
def test_endpoints_off_the_allow_list_are_refused(manager: RunManager, address: str) -> None:
    for field in ("generator", "critic"):
        message = refusal(manager, online(**{field: {"address": address}}))
        assert f"{field}.address" in message


def test_the_trainers_own_endpoints_are_allowed_by_default(tmp_path: Path) -> None:
    s = TrainerSettings(data_dir=tmp_path, critic_address="critic.internal:50051")
    allowed = Endpoints.of(s.endpoints())
    for address in ("localhost:50052", "127.0.0.1:50052", "[::1]:50052", "Critic.Internal:50051"):
        allowed.check(address, "generator.address")
    with pytest.raises(InvalidInput, match="LIFT_TRAINER_ALLOWED_ENDPOINTS"):
        allowed.check("localhost:50051", "critic.address")  # the critic moved off localhost
    assert endpoint_key("[::ffff:127.0.0.1]:1") == endpoint_key("localhost:1")


def test_a_config_without_endpoints_gets_the_trainers_own(tmp_path: Path, root: Path) -> None:
    m = RunManager(
        settings(
            tmp_path, root, generator_address="gen.internal:9", critic_address="critic.internal:9"
        )
    )
    m.load()
    deps, release = _blocked_deps()
    m.deps_factory = deps  # keep the run from starting to train
    try:
        run = m.start_run(json.dumps(online()))
        assert run.config["generator"]["address"] == "gen.internal:9"
        assert run.config["critic"]["address"] == "critic.internal:9"
        m.cancel_run(run.id)
    finally:
        release.set()
        m.close()


# ---- 5. bounded runs: every number finite and bounded ----------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("optimizer: {grad_clip: .inf}", "optimizer.grad_clip"),
        ("optimizer: {grad_clip: .nan}", "optimizer.grad_clip"),
        ("optimizer: {lr: .nan}", "optimizer.lr"),
        ("optimizer: {eps: 1.0e+300}", "optimizer.eps"),
        ("steps: 10000000", "steps"),
        ("batch_size: 1024\nvideos_per_prompt: 64", "batch_size"),
        ("batch_size: 65536", "batch_size"),
        ("sampling: {num_frames: 1000, height: 4096, width: 4096}", "sampling.num_frames"),
        ("sampling: {num_frames: 257, height: 2048, width: 2048}", "num_frames x height x width"),
        (
            "batch_size: 64\nsampling: {num_frames: 129, height: 720, width: 1280}",
            "voxels",
        ),
        ("generator: {address: 'localhost:50052', timeout_s: 1.0e+9}", "generator.timeout_s"),
        ("critic: {address: 'localhost:50051', down_after_s: .inf}", "critic.down_after_s"),
        ("checkpoint_every: 100000000", "checkpoint_every"),
        ("publish_every: 100000000", "publish_every"),
        ("real_data: {path: x, weight: .inf}", "real_data.weight"),
        (f"eval: {{prompts: [a, b], seeds: {list(range(65))}}}", "eval.seeds"),
        (f"eval: {{prompts: {['p'] * 600}, seeds: [0, 1]}}", "prompts x seeds"),
        ("batch_size: 256\nvideos_per_prompt: 64", "batch_size x videos_per_prompt"),
        ("guards: {min_reward_rise: .inf}", "guards.min_reward_rise"),
        ("reward_map: {good: .nan}", "reward_map.good"),
        ("lora: {alpha: 1.0e+30}", "lora.alpha"),
    ],
)
def test_unbounded_numbers_are_refused_naming_the_field(yaml_text: str, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_run_config("prompts: [a dog]\n" + yaml_text)
    assert field in err.value.message


def test_the_bounds_leave_real_runs_possible() -> None:
    cfg = parse_run_config(
        "prompts: [a dog]\nsteps: 100000\nbatch_size: 8\nvideos_per_prompt: 4\n"
        "sampling: {num_frames: 49, height: 480, width: 720}\noptimizer: {grad_clip: 1.0}"
    )
    assert cfg.per_step_videos == 32


# ---- 5. lifecycle: crashes, cancel in every state --------------------------------------------


def _blocked_deps() -> tuple[Callable[..., Any], threading.Event]:
    """A deps factory that holds the run "running" until released, then fails it."""
    release = threading.Event()

    def deps(config: RunConfig, stop: threading.Event) -> None:
        release.wait(60)
        raise RuntimeError("boom while reading /srv/secret/weights.bin")

    return deps, release


def _wait_state(m: RunManager, run_id: str, state: RunState, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while m.get_run(run_id).state != state:
        assert time.monotonic() < deadline, f"{run_id}: {m.get_run(run_id).state} != {state}"
        time.sleep(0.02)


def test_a_crashing_worker_fails_the_run_with_a_reason(tmp_path: Path, root: Path) -> None:
    deps, release = _blocked_deps()
    release.set()
    m = RunManager(settings(tmp_path, root), deps_factory=deps)
    m.load()
    try:
        run = m.start_run(json.dumps(online()))
        _wait_state(m, run.id, RunState.FAILED)
        reason = m.get_run(run.id).reason
        assert "RuntimeError" in reason and "boom" in reason
        assert "/srv/secret" not in reason  # no server path in what callers read
        with pytest.raises(Conflict):
            m.cancel_run(run.id)  # a finished run stays as it is (409 / FAILED_PRECONDITION)
    finally:
        m.close()


def test_cancel_in_every_state(tmp_path: Path, root: Path) -> None:
    deps, release = _blocked_deps()
    m = RunManager(settings(tmp_path, root, concurrent_runs=1), deps_factory=deps)
    m.load()
    try:
        stuck = m.start_run(json.dumps(online(name="stuck")))
        _wait_state(m, stuck.id, RunState.RUNNING)
        waiting = m.start_run(json.dumps(online(name="waiting")))
        assert m.get_run(waiting.id).state == RunState.QUEUED

        # queued: cancelled on the spot
        assert m.cancel_run(waiting.id).state == RunState.CANCELLED
        # running, stuck in a long step: cancelled on the spot, the worker abandons it
        began = time.monotonic()
        assert m.cancel_run(stuck.id).state == RunState.CANCELLED
        assert time.monotonic() - began < 2
        release.set()  # the stuck step ends (by crashing): the cancel stands
        time.sleep(0.5)
        final = m.get_run(stuck.id)
        assert final.state == RunState.CANCELLED and final.reason == "cancelled"
        states = [e.data["state"] for e in m.events(stuck.id) if e.kind == "state"]
        assert states == ["queued", "running", "cancelled"]
        # final: cancelling again is refused, the state stays
        for run_id in (stuck.id, waiting.id):
            with pytest.raises(Conflict):
                m.cancel_run(run_id)
            assert m.get_run(run_id).state == RunState.CANCELLED
    finally:
        m.close()


def test_a_run_that_keeps_crashing_the_trainer_is_not_requeued_forever(
    tmp_path: Path, root: Path
) -> None:
    """Each round: a manager picks the run up, "dies" under it (never closed), restarts."""
    limit = 2
    releases: list[threading.Event] = []
    run_id = ""
    try:
        for round_ in range(limit + 2):
            deps, release = _blocked_deps()
            releases.append(release)
            m = RunManager(settings(tmp_path, root, max_crash_resumes=limit), deps_factory=deps)
            m.load()
            if round_ == 0:
                run_id = m.start_run(json.dumps(online())).id
            run = m.get_run(run_id)
            if round_ <= limit:  # resumed: it runs again (resumes counts the restarts)
                assert run.state in (RunState.QUEUED, RunState.RUNNING)
                _wait_state(m, run_id, RunState.RUNNING)
                assert m.get_run(run_id).resumes == round_
            else:  # one crash too many: failed, not queued again
                assert run.state == RunState.FAILED
                assert f"crashed the trainer {limit + 1} times" in run.reason
                assert "LIFT_TRAINER_MAX_CRASH_RESUMES" in run.reason
            m.ready = False  # the process "dies": no close(), no clean re-queue
            assert m.store is not None
            m.store.close()
    finally:
        for r in releases:
            r.set()
    store = Store(tmp_path / "data" / "trainer.sqlite")  # and it stays failed
    try:
        final = store.get(run_id)
        assert final is not None and final.state == RunState.FAILED
    finally:
        store.close()


# ---- 5. checkpoint retention ------------------------------------------------------------------


def _ckpt(step: int, reward: float | None) -> Checkpoint:
    import torch

    return Checkpoint(
        step, {"w": torch.zeros(1)}, {}, torch.get_rng_state(), {"reward": reward}, None
    )


def test_retention_keeps_the_newest_and_the_best(tmp_path: Path) -> None:
    d = CheckpointDir(tmp_path / "ckpt", keep=3)
    rewards = [0.1, 0.2, 0.9, 0.3, 0.2, 0.1, 0.4, 0.3, 0.2, 0.25]
    for step, reward in enumerate(rewards, start=1):
        d.save(_ckpt(step, reward))
        assert len(d.steps()) <= 4  # bounded all along, not only at the end
    assert d.steps() == [3, 8, 9, 10]  # the best (step 3, 0.9) and the newest three
    assert sorted(p.name for p in d.root.iterdir()) == [f"step-{s:08d}" for s in (3, 8, 9, 10)]
    latest = d.latest()
    assert latest is not None and latest.step == 10  # resuming still finds its checkpoint


def test_a_long_run_with_a_checkpoint_every_step_keeps_few(
    tmp_path: Path, tiny_generator_dir: Path, offline_dataset: Path
) -> None:
    m = RunManager(
        TrainerSettings(
            data_dir=tmp_path / "data",
            data_roots=[tiny_generator_dir, offline_dataset],
            keep_checkpoints=2,
            log_level="WARNING",
        )
    )
    m.load()
    try:
        config = {
            "mode": "offline",
            "model": str(tiny_generator_dir),
            "offline_data": {"path": str(offline_dataset / "data.json")},
            "lora": {"rank": 2, "alpha": 2},
            "steps": 8,
            "batch_size": 1,
            "checkpoint_every": 1,
            "publish_every": 0,
        }
        run = m.start_run(json.dumps(config))
        deadline = time.monotonic() + 240
        while not m.get_run(run.id).state.final:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        final = m.get_run(run.id)
        assert final.state == RunState.SUCCEEDED, final.reason
        kept = sorted(
            p.name for p in (tmp_path / "data" / "runs" / run.id / "checkpoints").iterdir()
        )
        assert len(kept) <= 3 and "step-00000008" in kept and "step-00000007" in kept
        assert [e.step for e in m.events(run.id) if e.kind == "checkpoint"] == list(range(1, 9))
    finally:
        m.close()


def test_text_that_is_not_a_config_is_refused_with_a_sentence(manager: RunManager) -> None:
    # Python refuses to convert integers past 4300 digits: a 500 before this was caught.
    for text, words in [
        ("steps: " + "9" * 5000, "too long"),
        ('{"steps": ' + "9" * 5000 + "}", "too long"),
        (b'prompts: ["\xff\xfe"]', "UTF-8"),
    ]:
        with pytest.raises(InvalidInput, match=words):
            manager.start_run(text)  # type: ignore[arg-type]
    # The address checked is the address dialled: no surrounding spaces.
    message = refusal(manager, online(generator={"address": " 127.0.0.1:50052"}))
    assert "generator.address" in message
    assert manager.list_runs() == []


def test_cancel_succeeds_when_the_worker_ends_the_run_as_cancelled_first(
    tmp_path: Path, root: Path
) -> None:
    """The worker sees the stop event and finishes the run before cancel_run's own finish:
    that is the cancel taking effect, not a 409 (it raced in test_cancel on a busy machine)."""
    deps, release = _blocked_deps()
    m = RunManager(settings(tmp_path, root, concurrent_runs=1), deps_factory=deps)
    m.load()
    try:
        run = m.start_run(json.dumps(online(name="raced")))
        _wait_state(m, run.id, RunState.RUNNING)
        store = m.store
        assert store is not None
        real = store.finish_unless_final

        def worker_first(run_id: str, state: RunState, reason: str) -> bool:
            real(run_id, RunState.CANCELLED, "cancelled")  # the worker wins the race
            return real(run_id, state, reason)  # cancel_run's own finish finds it final

        store.finish_unless_final = worker_first  # type: ignore[method-assign]
        assert m.cancel_run(run.id).state == RunState.CANCELLED
        store.finish_unless_final = real  # type: ignore[method-assign]
        with pytest.raises(Conflict):  # a second cancel is still refused
            m.cancel_run(run.id)
        release.set()
    finally:
        m.close()
