"""One alignment run, start to finish: sample, score, weight, step, publish, checkpoint.

:class:`AlignmentLoop` is a library class (a config plus callables for its
dependencies), run by the trainer service's run manager, by ``lift align`` in
process, or under ``accelerate launch`` on several GPUs. Each step:

1. choose prompts and seeds from ``(seed, step)`` alone, so a resumed run draws
   exactly what the uninterrupted run drew;
2. online: ``Generate`` each (prompt, seed) with the adapter version the generator
   serves for this run, and ``Score`` the videos; offline: take scored clips from
   the dataset;
3. encode clips (and the step's real clips) with the trainer's VAE, compute the
   per-example diffusion loss, combine it by the strategy, and take an optimizer
   step;
4. record the step (reward per dimension, the guard signals: a
   :class:`~lift.runs.StepMetrics`), watch for reward hacking;
5. every ``publish_every`` steps publish the adapter (a new version label), every
   ``checkpoint_every`` steps write an atomic checkpoint.

The loop reports only through its event stream (``emit``): the trainer service
stores the events and turns them into Prometheus metrics
(:class:`lift.services.trainer.metrics.RunMetrics`), so the loop runs the same
under the service, in process and under ``accelerate launch``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from lift.critique import Critique
from lift.errors import Cancelled, InvalidInput, LiftError
from lift.generation import AdapterFiles, GenerationRequest
from lift.reward import RewardMap
from lift.runs import StepMetrics
from lift.services.trainer import losses
from lift.services.trainer.checkpoints import (
    Checkpoint,
    CheckpointDir,
    load_optimizer_state,
    optimizer_state,
    write_adapter,
)
from lift.services.trainer.config import MAX_STEP_VOXELS, MAX_VIDEO_VOXELS, RunConfig
from lift.services.trainer.data import (
    Clip,
    DataAccess,
    Shape,
    decode_all,
    load_offline_clips,
    load_prompts,
    load_real_clips,
    to_shape,
)
from lift.services.trainer.evaluation import EvalResult, compare, reward_of
from lift.services.trainer.guards import HackingWatch
from lift.services.trainer.policy import Policy
from lift.services.trainer.remote import AdapterMissing

log = logging.getLogger(__name__)

Emit = Callable[[str, int, str, dict[str, Any]], None]
"""emit(kind, step, message, data): events for watchers and the run's history."""


class RunFailed(LiftError):
    """The run cannot go on; the message is its reason."""


def run_version(run_id: str, step: int) -> str:
    """The adapter version a run publishes for ``step``: its run id is the namespace."""
    return f"{run_id}/s{step}"


class Dependencies(Protocol):
    """The generator and the critic as an online run uses them (see remote.Services)."""

    def generator_info(self) -> dict[str, Any]: ...
    def generate(self, request: GenerationRequest) -> bytes: ...
    def generate_many(
        self, requests: Sequence[GenerationRequest], progress: Callable[[int], None] | None = None
    ) -> list[bytes]: ...
    def publish(self, version: str, files: AdapterFiles) -> None: ...
    def promote(self, version: str) -> None: ...
    def score(self, items: list[tuple[bytes, str]]) -> list[Critique]: ...
    def close(self) -> None: ...


@dataclass
class _Batch:
    clips: list[Clip]
    rewards: list[float] = field(default_factory=list)
    per_dim: list[dict[str, float]] = field(default_factory=list)
    all_good: list[bool] = field(default_factory=list)
    dynamic: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    """Each clip's place in the step's global batch (data-parallel runs)."""
    total: int = 0
    """Clips in the step's global batch, over every process."""
    filler: bool = False
    """This process had no share of a batch smaller than the process count: its one
    clip (a copy of the first) keeps it in step and weighs nothing."""


def _share(n: int, rank: int, world: int) -> tuple[list[int], bool]:
    """Global rows a process takes of ``n`` (strided), and whether it is a weightless filler."""
    rows = list(range(rank, n, world))
    return (rows, False) if rows else ([0], True)


def _mix(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes and Python versions)."""
    h = hashlib.sha256(",".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


class AlignmentLoop:
    """Runs one alignment run; see the module docstring."""

    def __init__(
        self,
        run_id: str,
        config: RunConfig,
        workdir: Path,
        model_dir: Path,
        deps: Dependencies | None,
        emit: Emit,
        stop: threading.Event,
        history: Callable[[int], list[dict[str, Any]]] | None = None,
        resumes: int = 0,
        access: DataAccess | None = None,
        keep_checkpoints: int = 3,
    ) -> None:
        self.run_id = run_id
        self.config = config
        self.workdir = workdir
        self.model_dir = model_dir
        self.deps = deps
        self.emit = emit
        self.stop = stop
        self.history = history or (lambda step: [])
        self.resumes = resumes
        self.access = access or DataAccess()
        self.reward_map: RewardMap = config.reward_map.reward_map()
        self.checkpoints = CheckpointDir(workdir / "checkpoints", keep_checkpoints)
        self._rewards_since_checkpoint: list[float] = []
        self.watch = HackingWatch(config.guards)
        self.current_version = "base"
        self.policy_weights: bytes | None = None
        self.published_step = 0
        self._labels = 0
        self.eval_before: EvalResult | None = None
        self._real_cache: dict[int, torch.Tensor] = {}

    # ---- set-up -------------------------------------------------------------------

    def _accelerator(self) -> Any:
        from accelerate import Accelerator

        device = self.config.device
        cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
        return Accelerator(cpu=cpu, mixed_precision=self.config.mixed_precision)

    def _shape(self) -> Shape | None:
        s = self.config.sampling
        if s.num_frames and s.height and s.width:
            return Shape(s.num_frames, s.height, s.width)
        if self.deps is None:
            return None
        defaults = self.deps.generator_info().get("defaults", {})
        return Shape(
            int(s.num_frames or defaults.get("num_frames", 49)),
            int(s.height or defaults.get("height", 480)),
            int(s.width or defaults.get("width", 720)),
        )

    def _setup(self) -> None:
        cfg = self.config
        self.acc = self._accelerator()
        if self.acc.num_processes > 1:
            self.emit(
                "log",
                0,
                f"data parallel over {self.acc.num_processes} processes ({self.acc.device})",
                {"processes": self.acc.num_processes},
            )
        self.emit("log", 0, f"loading the trainer's model from {self.model_dir}", {})
        began = time.perf_counter()
        self.policy = Policy(
            self.model_dir, cfg.lora, str(self.acc.device), seed=_mix(cfg.seed, 3) % 2**31
        )
        loaded = time.perf_counter() - began
        self.emit(
            "log",
            0,
            f"loaded the trainer's model in {loaded:.1f} s",
            {"model_load_seconds": loaded},
        )
        self.prompts = load_prompts(cfg, self.access)
        self.shape = self._shape()
        self.offline: list[Clip] = []
        if cfg.mode == "offline":
            assert cfg.offline_data is not None
            self.offline = load_offline_clips(
                cfg.offline_data.path, self.shape, self.reward_map, self.access
            )
            first = self.offline[0].frames.shape
            self.shape = Shape(first[0], first[1], first[2])
        assert self.shape is not None
        self._check_shape(self.shape)
        self.real: list[Clip] = []
        if cfg.real_data is not None and cfg.real_data.weight > 0:
            self.real = load_real_clips(cfg.real_data.path, self.shape, self.access)
        params = list(self.policy.trainable().values())
        if not params:
            raise InvalidInput("lora: nothing to train (no trainable parameter)")
        o = cfg.optimizer
        optimizer = torch.optim.AdamW(
            params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay, eps=o.eps
        )
        warm = max(1, o.warmup_steps)  # 0 and 1 both mean: full rate from the first step
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: min(1.0, (i + 1) / warm))
        self.policy.denoiser, self.optimizer, self.scheduler = self.acc.prepare(
            self.policy.denoiser, optimizer, scheduler
        )
        self.params = params

    def _check_shape(self, shape: Shape) -> None:
        """The run-config bounds again, for a shape that came from the generator or the data."""
        voxels = shape.frames * shape.height * shape.width
        step = voxels * self.config.per_step_videos
        if voxels > MAX_VIDEO_VOXELS or step > MAX_STEP_VOXELS:
            raise InvalidInput(
                f"sampling: the training shape {shape.frames}x{shape.height}x{shape.width} "
                f"(from the generator's defaults or the data) x {self.config.per_step_videos} "
                "videos per step is over the trainer's limits: set sampling.num_frames, "
                "height and width, or fewer videos per step"
            )

    # ---- sampling -------------------------------------------------------------------

    def _rng(self, step: int) -> np.random.Generator:
        return np.random.default_rng(_mix(self.config.seed, step))

    def _online_batch(self, step: int) -> _Batch:
        assert self.deps is not None and self.shape is not None
        cfg = self.config
        rng = self._rng(step)
        prompts = [self.prompts[i] for i in rng.integers(0, len(self.prompts), cfg.batch_size)]
        items = [
            (p, int(rng.integers(0, 2**63))) for p in prompts for _ in range(cfg.videos_per_prompt)
        ]
        # Each process of a multi-GPU run samples its share; gradients are averaged.
        rows, filler = _share(len(items), self.acc.process_index, self.acc.num_processes)
        mine = [items[i] for i in rows]
        # Spread over the generator replicas; a cancel takes effect between videos.
        videos = self._generate_all([self._request(p, s, self.current_version) for p, s in mine])
        self._check_stop()
        critiques = self.deps.score([(v, p) for v, (p, _) in zip(videos, mine, strict=True)])
        self._check_stop()
        batch = _Batch(
            [
                Clip(to_shape(decode_all(v, "generated video"), self.shape), p)
                for v, (p, _) in zip(videos, mine, strict=True)
            ],
            rows=rows,
            total=len(items),
            filler=filler,
        )
        for c in critiques:
            self._add_score(batch, c)
        return batch

    def _request(self, prompt: str, seed: int, version: str) -> GenerationRequest:
        """A generation at the training shape with the config's sampling settings."""
        assert self.shape is not None
        s = self.config.sampling
        return GenerationRequest(
            prompt=prompt,
            seed=seed,
            num_frames=self.shape.frames,
            height=self.shape.height,
            width=self.shape.width,
            num_inference_steps=s.num_inference_steps,
            guidance_scale=s.guidance_scale,
            fps=s.fps,
            adapter_version=version,
        )

    def _generate_all(
        self, reqs: list[GenerationRequest], progress: Callable[[int], None] | None = None
    ) -> list[bytes]:
        """The videos of ``reqs`` in order (all generator replicas at once, when several)."""
        assert self.deps is not None
        self._check_stop()
        many = getattr(self.deps, "generate_many", None)
        try:
            if many is not None:
                videos: list[bytes] = many(reqs, progress)
                return videos
            return self._one_by_one(reqs, progress)
        except AdapterMissing:
            if self.policy_weights is None:
                raise
            # The generator lost our version and it could not be installed again under
            # its label: publish it under a new one.
            old = self.current_version
            self._publish_policy(self.policy_weights)
            reqs = [
                replace(r, adapter_version=self.current_version) if r.adapter_version == old else r
                for r in reqs
            ]
            return many(reqs, progress) if many is not None else self._one_by_one(reqs, progress)

    def _one_by_one(
        self, reqs: list[GenerationRequest], progress: Callable[[int], None] | None
    ) -> list[bytes]:
        """Dependencies without generate_many: one request after another."""
        assert self.deps is not None
        videos = []
        for i, req in enumerate(reqs, 1):
            self._check_stop()
            videos.append(self.deps.generate(req))
            if progress is not None:
                progress(i)
        return videos

    def _add_score(self, batch: _Batch, c: Critique) -> None:
        reward, per_dim, all_good = reward_of(c, self.reward_map)
        batch.rewards.append(reward)
        batch.per_dim.append(per_dim)
        batch.all_good.append(all_good)
        if c.dynamic_degree is not None:
            batch.dynamic.append(c.dynamic_degree)

    def _offline_batch(self, step: int) -> _Batch:
        rng = self._rng(step)
        n = self.config.per_step_videos
        everyone = [self.offline[i] for i in rng.integers(0, len(self.offline), n)]
        rows, filler = _share(n, self.acc.process_index, self.acc.num_processes)
        picked = [everyone[i] for i in rows]
        return _Batch(
            picked,
            rewards=[c.reward or 0.0 for c in picked],
            per_dim=[{} for _ in picked],
            all_good=[bool(c.all_good) for c in picked],
            rows=rows,
            total=n,
            filler=filler,
        )

    def _real_batch(self, step: int, n_gen: int) -> tuple[list[Clip], list[int], int]:
        """This process's real clips of the step, their global rows, and the global count.

        ``n_gen`` is the step's generated clips over every process: the real clips are
        drawn for the whole step and shared out like the generated ones.
        """
        if not self.real:
            return [], [], 0
        assert self.config.real_data is not None  # real clips are loaded from it
        n = max(1, round(n_gen * self.config.real_data.ratio))
        rng = np.random.default_rng(_mix(self.config.seed, step, 1))
        everyone = [self.real[i] for i in rng.integers(0, len(self.real), n)]
        rows = list(range(self.acc.process_index, n, self.acc.num_processes))
        return [everyone[i] for i in rows], rows, n

    # ---- one step -------------------------------------------------------------------

    def _real_latents(self, clips: list[Clip]) -> torch.Tensor:
        """Latents of real clips, encoded once (the VAE is frozen and encodes deterministically)."""
        missing = [c for c in clips if id(c) not in self._real_cache]
        if missing:
            for c, z in zip(
                missing, self.policy.encode(np.stack([c.frames for c in missing])), strict=True
            ):
                self._real_cache[id(c)] = z
        return torch.stack([self._real_cache[id(c)] for c in clips])

    def _train_step(
        self, step: int, batch: _Batch, real_share: tuple[list[Clip], list[int], int], began: float
    ) -> StepMetrics:
        """One optimizer step; ``began`` is when the step started sampling (its wall time)."""
        cfg = self.config
        real, real_rows, n_real = real_share
        clips = batch.clips + real
        latents = self.policy.encode(np.stack([c.frames for c in batch.clips]))
        if real:
            latents = torch.cat([latents, self._real_latents(real)])
        embeds = self.policy.embed([c.caption for c in clips])
        gen = torch.Generator().manual_seed(_mix(cfg.seed, step, 2))
        world = self.acc.num_processes
        # Timesteps and noise are drawn for the step's global batch (generated clips,
        # then real ones) and each process takes its clips' rows: the processes of a
        # data-parallel run train on exactly what one process would.
        rows = None if world == 1 else [*batch.rows, *(batch.total + r for r in real_rows)]
        self.policy.denoiser.train()
        with self.acc.autocast():
            per_example = self.policy.losses(latents, embeds, gen, rows, batch.total + n_real)
        n = len(batch.clips)
        gen_l, real_l = per_example[:n], per_example[n:]
        weight = cfg.real_data.weight if cfg.real_data else 0.0
        if world > 1:
            loss = self._shared_loss(batch, gen_l, real_l, n_real, weight)
        elif cfg.strategy == "reward_weighted":
            rewards = torch.tensor(batch.rewards, dtype=torch.float32, device=gen_l.device)
            loss = losses.reward_weighted(gen_l, rewards, real_l, weight)
        else:
            keep = torch.tensor(batch.all_good, dtype=torch.bool, device=gen_l.device)
            loss = losses.rejection_sampling(gen_l, keep, real_l, weight)
        self.optimizer.zero_grad(set_to_none=True)
        self.acc.backward(loss)
        grad_norm = self.acc.clip_grad_norm_(self.params, cfg.optimizer.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.policy.denoiser.eval()
        loss_value = float(loss.detach())
        gen_loss = float(gen_l.detach().mean())
        real_loss = float(real_l.detach().mean()) if real_l.numel() else None
        if world > 1:  # the step's numbers over every process's clips
            batch, loss_value, gen_loss, real_loss = self._gathered(batch, loss, gen_l, real_l)
        dims = sorted({k for d in batch.per_dim for k in d})
        elapsed = time.perf_counter() - began
        return StepMetrics(
            step=step,
            loss=loss_value,
            gen_loss=gen_loss,
            real_loss=real_loss,
            reward=float(np.mean(batch.rewards)),
            reward_by_dimension={
                d: float(np.mean([p[d] for p in batch.per_dim if d in p])) for d in dims
            },
            dynamic_degree=float(np.mean(batch.dynamic)) if batch.dynamic else None,
            kept=float(np.mean(batch.all_good)) if batch.all_good else None,
            grad_norm=float(grad_norm),
            lr=float(self.scheduler.get_last_lr()[0]),
            clips=len(batch.clips),
            real_clips=n_real,
            seconds=elapsed,
            samples_per_second=(len(batch.clips) + n_real) / max(elapsed, 1e-9),
        )

    def _shared_loss(
        self,
        batch: _Batch,
        gen_l: torch.Tensor,
        real_l: torch.Tensor,
        n_real: int,
        weight: float,
    ) -> torch.Tensor:
        """This process's part of the step's loss, scaled so that the processes' mean
        (what data-parallel training averages) is the loss over the global batch."""
        world = self.acc.num_processes
        mask = torch.zeros_like(gen_l) if batch.filler else torch.ones_like(gen_l)
        if self.config.strategy == "reward_weighted":
            rewards = torch.tensor(batch.rewards, dtype=torch.float32, device=gen_l.device)
            loss = (mask * rewards * gen_l).sum() * (world / batch.total)
        else:
            keep = mask * torch.tensor(batch.all_good, dtype=torch.float32, device=gen_l.device)
            kept = int(self.acc.reduce(keep.sum().detach(), reduction="sum").item())
            loss = (keep * gen_l).sum() * (world / max(1, kept))
        if real_l.numel() and weight:
            loss = loss + weight * real_l.sum() * (world / n_real)
        return loss

    def _gathered(
        self, batch: _Batch, loss: torch.Tensor, gen_l: torch.Tensor, real_l: torch.Tensor
    ) -> tuple[_Batch, float, float, float | None]:
        """The step's batch statistics and losses over every process (rows in global order)."""
        from accelerate.utils import gather_object

        keep = not batch.filler
        mine = [
            (row, reward, per_dim, good, float(g))
            for row, reward, per_dim, good, g in zip(
                batch.rows,
                batch.rewards,
                batch.per_dim,
                batch.all_good,
                gen_l.detach(),
                strict=True,
            )
            if keep
        ]
        rows = sorted(gather_object(mine))
        dynamic = gather_object(list(batch.dynamic) if keep else [])
        reals = gather_object([float(x) for x in real_l.detach()])
        total = float(self.acc.reduce(loss.detach().clone(), reduction="mean").item())
        merged = _Batch(
            [],
            rewards=[r[1] for r in rows],
            per_dim=[r[2] for r in rows],
            all_good=[r[3] for r in rows],
            dynamic=dynamic,
            total=batch.total,
        )
        merged.clips = [batch.clips[0]] * len(rows)  # counted only
        gen_loss = float(np.mean([r[4] for r in rows]))
        return merged, total, gen_loss, float(np.mean(reals)) if reals else None

    # ---- publishing, checkpoints, evaluation ----------------------------------------

    def _unwrapped(self) -> torch.nn.Module:
        module: torch.nn.Module = self.acc.unwrap_model(self.policy.denoiser)
        return module

    def _publish_policy(self, weights: bytes) -> None:
        """Install ``weights`` on the generator under a label it has never seen.

        Every label lies in the run's own namespace, ``<run id>/s<step>``, and a load
        never changes what other callers get (only a promotion does: see
        :meth:`_promote`). Labels are never reused by the generator, so a run that
        resumed (or that re-installs a version the generator lost) adds
        ``-r<resumes>.<n>``.
        """
        assert self.deps is not None
        self._labels += 1
        version = run_version(self.run_id, self.published_step)
        if self.resumes or self._labels > 1:
            version += f"-r{self.resumes}.{self._labels}"
        self.deps.publish(version, AdapterFiles(weights, self.policy.adapter_config()))
        self.current_version = version
        self.emit(
            "publish",
            self.published_step,
            f"published adapter version {version}",
            {"version": version},
        )

    def _publish(self, step: int, every_process: bool = True) -> None:
        """Publish the adapter (the main process); ``every_process``: all call this."""
        files = self.policy.adapter_files(self._unwrapped())
        self.policy_weights = files.weights
        self.published_step = step
        self._labels = 0
        if self.deps is not None and self.acc.is_main_process:
            self._publish_policy(files.weights)
        if every_process:
            self._share_version()

    def _share_version(self) -> None:
        """The version the main process published, on every process (they sample from it)."""
        if self.deps is None or self.acc.num_processes == 1:
            return
        from accelerate.utils import broadcast_object_list

        self.current_version = str(broadcast_object_list([self.current_version])[0])

    def _checkpoint(self, step: int) -> None:
        if not self.acc.is_main_process:
            return
        opt_tensors, groups = optimizer_state(self.optimizer)
        state = {
            "optimizer_groups": groups,
            "scheduler": self.scheduler.state_dict(),
            "current_version": self.current_version,
            "published_step": self.published_step,
            "eval_before": self.eval_before.to_json() if self.eval_before else None,
            # Ranks checkpoints for retention (the best is kept besides the newest).
            "reward": float(np.mean(self._rewards_since_checkpoint))
            if self._rewards_since_checkpoint
            else None,
        }
        path = self.checkpoints.save(
            Checkpoint(
                step,
                self.policy.trainable_state(),
                opt_tensors,
                torch.get_rng_state(),
                state,
                self.policy_weights,
            )
        )
        self._rewards_since_checkpoint = []
        self.emit("checkpoint", step, f"checkpoint written: {path.name}", {"path": str(path)})

    def _resume(self) -> int:
        self.checkpoints.clear_partial()
        ckpt = self.checkpoints.latest()
        if ckpt is None:
            return 0
        self.policy.load_trainable_state(ckpt.trainable)
        load_optimizer_state(self.optimizer, ckpt.optimizer, ckpt.state["optimizer_groups"])
        self.scheduler.load_state_dict(ckpt.state["scheduler"])
        torch.set_rng_state(ckpt.rng)
        self.published_step = int(ckpt.state.get("published_step", 0))
        self.policy_weights = ckpt.policy_weights
        if ckpt.state.get("eval_before"):
            self.eval_before = EvalResult.from_json(ckpt.state["eval_before"])
        for row in self.history(ckpt.step):  # the watch sees the steps it saw before the crash
            self.watch.observe_metrics(StepMetrics.from_json(row))
        if self.policy_weights is not None and self.deps is not None and self.acc.is_main_process:
            self._publish_policy(self.policy_weights)
        self._share_version()
        self.emit(
            "resumed",
            ckpt.step,
            f"resumed from the checkpoint of step {ckpt.step}",
            {"step": ckpt.step},
        )
        return ckpt.step

    def _real_eval_loss(self) -> float | None:
        if not self.real:
            return None
        gen = torch.Generator().manual_seed(_mix(self.config.seed, 4))
        with torch.no_grad():
            latents = self._real_latents(self.real[:8])
            embeds = self.policy.embed([c.caption for c in self.real[:8]])
            # The main process evaluates alone: not through the data-parallel wrapper.
            module = self._unwrapped()
            return float(self.policy.losses(latents, embeds, gen, denoiser=module).mean())

    def _evaluate(self, version: str, step: int, label: str) -> EvalResult | None:
        ev = self.config.eval
        if not ev.prompts or self.deps is None or not self.acc.is_main_process:
            return None
        items = [(p, seed) for p in ev.prompts for seed in ev.seeds]

        def progress(done: int) -> None:
            self.emit(
                "eval_progress",
                step,
                f"{label}: {done}/{len(items)}",
                {"done": done, "total": len(items), "phase": label},
            )

        videos = self._generate_all([self._request(p, s, version) for p, s in items], progress)
        critiques = self.deps.score([(v, p) for v, (p, _) in zip(videos, items, strict=True)])
        batch = _Batch([])
        for c in critiques:
            self._add_score(batch, c)
        result = EvalResult(
            version,
            batch.rewards,
            float(np.mean(batch.dynamic)) if batch.dynamic else None,
            self._real_eval_loss(),
        )
        self.emit(
            "eval",
            step,
            f"held-out reward {label}: {result.mean:.4f}"
            + (f" ± {result.ci95:.4f}" if math.isfinite(result.ci95) else " (no interval)")
            + f" ({len(items)} videos, version {version})",
            {"phase": label, **result.to_json()},
        )
        return result

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Cancelled("the run was cancelled")

    # ---- the run --------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Train to ``config.steps``; returns the run's result (also in the last event)."""
        cfg = self.config
        self._setup()
        start = self._resume()
        if start == 0 and cfg.eval.prompts:
            self.eval_before = self._evaluate("base", 0, "before")
        for step in range(start + 1, cfg.steps + 1):
            self._check_stop()
            began = time.perf_counter()
            batch = self._online_batch(step) if cfg.mode == "online" else self._offline_batch(step)
            real = self._real_batch(step, batch.total)
            self._check_stop()
            m = self._train_step(step, batch, real, began)
            if not math.isfinite(m.loss):
                raise RunFailed(f"the loss became {m.loss} at step {step}: lower optimizer.lr")
            self._observe(m)
            self._rewards_since_checkpoint.append(m.reward)
            self._check_stop()
            if cfg.publish_every and step % cfg.publish_every == 0 and not cfg.lora.full_finetune:
                self._publish(step)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                self._checkpoint(step)
        return self._finish()

    def _observe(self, m: StepMetrics) -> None:
        self.emit(
            "step",
            m.step,
            f"step {m.step}/{self.config.steps}: reward {m.reward:.4f}, loss {m.loss:.4f}",
            m.to_json(),
        )
        for w in self.watch.observe_metrics(m):
            self.emit("warning", m.step, w.message(), {"guard": w.guard, "worsening": w.worsening})
            if self.config.guards.stop_on_warning:
                raise RunFailed(w.message() + " (guards.stop_on_warning is set)")

    def _finish(self) -> dict[str, Any]:
        cfg = self.config
        result: dict[str, Any] = {"steps": cfg.steps}
        if not cfg.lora.full_finetune and self.acc.is_main_process:
            files = self.policy.adapter_files(self._unwrapped())
            out = self.workdir / "adapter"
            write_adapter(out, files.weights, files.config_json)
            result["adapter_dir"] = str(out)
            if self.deps is not None and self.published_step != cfg.steps:
                self._publish(cfg.steps, every_process=False)  # the main process only
            result["adapter_version"] = self.current_version
        after = (
            self._evaluate(self.current_version, cfg.steps, "after") if self.eval_before else None
        )
        if self.eval_before is not None and after is not None:
            result.update(compare(self.eval_before, after))
        result["warnings"] = sorted(self.watch.firing)
        if cfg.promote_on_success:
            self._promote()
        return result

    def _promote(self) -> None:
        """Make the run's last version the generator's default: the run's very last act.

        Only a run that got here succeeds; a cancel seen before the call leaves the
        default as it was, as does any failure or cancel earlier in the run.
        """
        if self.deps is None or not self.acc.is_main_process or self.current_version == "base":
            return
        self._check_stop()
        version = self.current_version
        self.deps.promote(version)
        self.emit(
            "log",
            self.config.steps,
            f"promoted adapter version {version} to the generator's default",
            {},
        )
