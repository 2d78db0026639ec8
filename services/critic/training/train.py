"""LoRA fine-tuning of the vlm critic on LiFT-HRA ratings (``lift critic train``).

The model is loaded exactly as the critic serves it (``VlmBackend``: the family's loader,
templates, frame sampling); the LoRA is injected into that model in place, so the same
``VlmScorer`` reads label probabilities from the weights being trained and the per-epoch
agreement is what the critic would serve. The loss is cross-entropy on the answer tokens
(``"<Label>. <reason>"`` and the end token) only.

Runs under accelerate: one process on CPU or one device, or ``accelerate launch`` over
several (each process takes every n-th batch; gradients are averaged before each step).
Same data, same options, same seed: same adapter on CPU (no dropout, a seeded order per
epoch); on a GPU, kernels that are not bit-deterministic (atomics in some backward passes)
can make runs differ in the last bits.

``OUT/checkpoints/epoch-N`` holds the adapter, the trainable tensors, the optimizer,
scheduler and RNG state after epoch N; ``--resume`` continues from the newest one when the
data, model and options are those it was written with. The final adapter is ``OUT`` itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from lift.checkpoints import fingerprint
from lift.critique import DIMENSIONS
from lift.hra.agreement import AgreementReport, agreement
from lift.hra.records import HraRecord
from lift.services.critic.training.adapters import (
    LoraOptions,
    format_for,
    trainable_parameters,
    upcast_trainables,
)
from lift.services.critic.training.checkpoints import (
    differences,
    fingerprint_videos,
    flatten_optimizer,
    unflatten_optimizer,
)
from lift.services.critic.training.data import (
    Example,
    PreparedVideos,
    TrainDataError,
    answer_warnings,
    build_examples,
    file_digest,
    read_records,
    unsayable,
)

log = logging.getLogger(__name__)

STATE = "state.json"
TRAINABLE = "trainable.safetensors"
OPTIMIZER = "optimizer.safetensors"
LOG = "train_log.jsonl"
CONFIG = "train_config.json"


class TrainError(ValueError):
    """The run cannot start or continue (bad options, model, output directory, resume)."""


@dataclass(frozen=True)
class TrainConfig:
    """``lift critic train``'s options."""

    data: Path
    model: Path
    out: Path
    eval: Path | None = None
    epochs: int = 3
    lr: float = 2e-4
    rank: int = 16
    alpha: int = 32
    batch_size: int = 8
    grad_accum: int = 1
    num_frames: int = 8
    templates: str | None = None
    seed: int = 0
    resume: bool = False
    device: str = "auto"
    dtype: str = "auto"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    train_projector: bool | None = None
    """Train the vision projector too (None: the family's default, see ``adapters``)."""
    allow_outside_data: bool = False
    """Read videos that resolve outside the data file's folder (absolute, ``..``, links out)."""

    def check(self) -> None:
        """Refuse options that cannot train, naming the option."""
        for name in ("epochs", "rank", "batch_size", "grad_accum", "num_frames"):
            if getattr(self, name) < 1:
                raise TrainError(f"--{name.replace('_', '-')} must be at least 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise TrainError("--lr must be a positive number")
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise TrainError("--alpha must be a positive number")
        if self.out.exists() and not self.out.is_dir():
            raise TrainError(f"--out {self.out} is a file; give a directory for the adapter")
        from lift.services.critic.backends.vlm import protocols

        protocol = protocols.detect(self.model, self.templates)
        if protocol != "labels":
            raise TrainError(
                f"--model {self.model} answers with the {protocol} protocol (a reward head or "
                'numeric ratings), not "<Label>. <reason>"; `lift critic train` fine-tunes '
                "label-answering critics (Qwen2-VL, Qwen2.5-VL, VILA / LiFT-Critic)"
            )
        if not (self.model / "config.json").is_file():
            raise TrainError(
                f"--model {self.model}: no config.json; give a critic checkpoint directory"
            )
        if self.out.resolve().is_relative_to(self.model.resolve()):
            raise TrainError(
                f"--out {self.out} is inside --model {self.model}; write the adapter elsewhere "
                "(it would mix into the checkpoint it is trained on)"
            )
        if not self.resume and checkpoint_epochs(self.out / "checkpoints"):
            raise TrainError(
                f"--out {self.out} holds the checkpoints of an earlier run; use --resume to "
                "continue it or a new --out"
            )

    def options(self) -> dict[str, Any]:
        """What a resumed run must share with the run that wrote the checkpoint."""
        keys: tuple[str, ...] = (
            "epochs",
            "lr",
            "rank",
            "alpha",
            "batch_size",
            "grad_accum",
            "num_frames",
        )
        keys += ("templates", "seed", "dtype", "weight_decay", "max_grad_norm", "train_projector")
        return {k: getattr(self, k) for k in keys}


@dataclass
class EpochLog:
    """One line of ``train_log.jsonl``."""

    epoch: int
    loss: float | None
    steps: int
    eval: dict[str, Any] | None = None


@dataclass
class TrainSummary:
    """What the run did (``--json`` prints it)."""

    out: str
    family: str
    examples: int
    epochs: int
    steps: int
    trainable_parameters: int
    losses: list[float | None] = field(default_factory=list)
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    resumed_from: int | None = None
    main_process: bool = True
    """False in the other processes of a multi-process launch (only the main one reports)."""


def accuracy_summary(report: AgreementReport) -> dict[str, Any]:
    """Average and per-dimension agreement of one report (None where nothing compared)."""
    return {
        "average": report.average,
        "dimensions": {d.value: report.dimensions[d].accuracy for d in DIMENSIONS},
        "errors": len(report.errors),
    }


class CriticTrainer:
    """Loads the critic, prepares the data, trains, checkpoints and evaluates."""

    def __init__(self, config: TrainConfig, echo: Callable[[str], None] | None = None) -> None:
        config.check()
        self.config = config
        self.echo = echo or (lambda s: print(s, file=sys.stderr))
        self._setup()

    # -- set-up -------------------------------------------------------------------
    def _setup(self) -> None:
        from accelerate import Accelerator

        from lift.services.critic.backends.vlm.backend import VlmBackend, VlmOptions
        from lift.services.critic.engine import CriticEngine
        from lift.services.critic.settings import CriticSettings
        from lift.templates import load_templates

        c = self.config
        cpu = c.device == "cpu" or (c.device == "auto" and not torch.cuda.is_available())
        self.acc = Accelerator(cpu=cpu)
        if not self.acc.is_main_process:  # one voice for warnings and progress
            self.echo = lambda s: None
        device = process_device(c.device, str(self.acc.device), self.acc.num_processes)
        if device != c.device and c.device not in ("auto", "cpu"):
            self.echo(
                f"--device {c.device}: under {self.acc.num_processes} processes each process "
                "uses its own device (accelerate's assignment)"
            )
        self.templates = load_templates(c.templates)
        try:
            settings = CriticSettings(
                backend="vlm",
                model=c.model,
                templates=c.templates,
                device=device,
                dtype=c.dtype,  # type: ignore[arg-type]
                num_frames=c.num_frames,
            )
        except ValueError as exc:
            raise TrainError(f"invalid critic settings: {exc}") from None
        options = VlmOptions(
            model=c.model,
            templates=c.templates,
            device=device,
            dtype=c.dtype,
            num_frames=c.num_frames,
            max_reason_tokens=settings.max_reason_tokens,
        )
        self.backend = VlmBackend(options)
        self.engine = CriticEngine(settings, self.backend)  # no load(): judged in this thread
        self.scorer = self.backend.scorer
        self.family = self.backend.family
        self.model = self.scorer.model
        self.format = format_for(self.family.name)
        c.out.mkdir(parents=True, exist_ok=True)
        self.cache = c.out / "cache" / f"process-{self.acc.process_index}"
        shutil.rmtree(self.cache, ignore_errors=True)  # pixels of another run's options
        self.videos = PreparedVideos(self.engine, self.cache)
        self.train_records = read_records(c.data, self.templates)
        keys = self.videos.add(c.data, self.train_records, c.allow_outside_data)
        self.examples = build_examples(self.train_records, keys, self.videos, self.scorer, c.data)
        for warning in answer_warnings(
            c.data, self.train_records, self.examples, self.scorer, self.family.max_length
        ):
            self.echo(warning)
        odd = unsayable(self.train_records, self.examples, self.scorer)
        if odd:
            self.echo(
                f"warning: {len(odd)} reasons (e.g. {c.data}:line {odd[0]}) start with a "
                "whitespace-only token in this tokenizer; the critic never starts a reason with "
                "one, so it cannot say them as written"
            )
        self.eval_records: list[HraRecord] = []
        if c.eval is not None:
            self.eval_records = read_records(c.eval, self.templates)
            eval_keys = self.videos.add(c.eval, self.eval_records, c.allow_outside_data)
            seen = {self.videos.digests[k[0]] for k in keys}
            shared = sorted({k[0] for k in eval_keys if self.videos.digests[k[0]] in seen})
            if shared:
                self.echo(
                    f"warning: {len(shared)} videos of --eval {c.eval} are also in --data "
                    f"(e.g. {shared[0]}); its agreement is not on held-out videos"
                )
        for p in self.model.parameters():
            p.requires_grad_(False)
        torch.manual_seed(c.seed)  # LoRA A's initialisation
        self.handle = self.format.attach(
            self.model, LoraOptions(c.rank, c.alpha, c.train_projector)
        )
        self.model.eval()  # no dropout anywhere: the same data and seed give the same adapter
        # the frozen weights keep the model's dtype; the trainables are float32 and the
        # forward runs under autocast in the model's dtype (see :meth:`autocast`)
        self.model_dtype = next(p.dtype for p in self.model.parameters() if not p.requires_grad)
        upcast_trainables(self.model)
        self.params = trainable_parameters(self.model)
        self.optimizer = torch.optim.AdamW(
            list(self.params.values()),
            lr=c.lr,
            betas=(0.9, 0.999),  # LiFT's critic: the HF Trainer's AdamW defaults
            weight_decay=c.weight_decay,
        )
        per_epoch = math.ceil(self._batches_per_epoch() / c.grad_accum)
        self.total_steps = per_epoch * c.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: max(0.1, 1.0 - 0.9 * step / max(1, self.total_steps))
        )
        self.identity = {
            "data": file_digest(c.data),
            "eval": file_digest(c.eval) if c.eval is not None else None,
            "videos": fingerprint_videos(self.videos.digests),
            "model": fingerprint(c.model),
            "options": c.options(),
        }

    def _batches_per_epoch(self) -> int:
        """Batches each process takes per epoch (the same on every process)."""
        return batches_per_process(
            len(self.examples), self.config.batch_size, self.acc.num_processes
        )

    # -- one step -----------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The forward's precision: the model's dtype (float32 trainables under autocast)."""
        if self.model_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.model.device.type, dtype=self.model_dtype)

    def loss(self, batch: Sequence[Example]) -> torch.Tensor:
        """Mean cross-entropy over the answer tokens of ``batch`` (questions, padding masked)."""
        return self.loss_sum(batch) / sum(len(e.answer) for e in batch)

    def loss_sum(self, batch: Sequence[Example]) -> torch.Tensor:
        """Summed cross-entropy over the answer tokens of ``batch`` (questions, padding masked)."""
        family, model, scorer = self.family, self.model, self.scorer
        device = model.device
        rows = [list(e.question) + list(e.answer) for e in batch]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), scorer.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        select = torch.zeros((len(rows), width), dtype=torch.bool)
        targets: list[int] = []
        for b, (e, row) in enumerate(zip(batch, rows, strict=True)):
            start = width - len(row)  # left-padded, as the scorer pads
            ids[b, start:] = torch.tensor(row)
            mask[b, start:] = 1
            first = start + len(e.question)
            select[b, first - 1 : width - 1] = True  # position t predicts token t + 1
            targets += list(e.answer)
        ids, mask, select = ids.to(device), mask.to(device), select.to(device)
        visions = [self.videos.items[e.key].item.vision for e in batch]
        per_video = family.encode_videos(model, visions)
        placed = ids == scorer.video_token_id
        embeds = family.embed(model, ids.masked_fill(placed, scorer.pad_id))
        embeds = embeds.masked_scatter(placed.unsqueeze(-1), torch.cat(per_video).to(embeds.dtype))
        positions = family.position_ids(model, ids, mask, visions)
        logits = family.logits_at(model, embeds, mask, positions, select)
        return torch.nn.functional.cross_entropy(
            logits.float(), torch.tensor(targets, device=device), reduction="sum"
        )

    def _order(self, epoch: int) -> list[list[Example]]:
        """This process's batches of ``epoch``: a seeded shuffle, then every n-th batch."""
        c = self.config
        gen = torch.Generator().manual_seed(c.seed * 100_003 + epoch)
        order = torch.randperm(len(self.examples), generator=gen).tolist()
        batches = [
            [self.examples[i] for i in order[k : k + c.batch_size]]
            for k in range(0, len(order), c.batch_size)
        ]
        mine = batches[self.acc.process_index :: self.acc.num_processes]
        return mine[: self._batches_per_epoch()]

    # -- evaluation -----------------------------------------------------------------
    def evaluate(self) -> AgreementReport | None:
        """Agreement on --eval through the serving path (None without --eval)."""
        if not self.eval_records or self.config.eval is None:
            return None
        from lift.hra.records import resolve_video

        data = self.config.eval
        resolved = [
            HraRecord(
                r.line, r.id, resolve_video(data, r.video), r.prompt, r.dimension, r.label, r.reason
            )
            for r in self.eval_records
        ]
        with self.autocast():
            return agreement("vlm (training)", resolved, self.videos.judge)

    # -- the run ----------------------------------------------------------------------
    def run(self) -> TrainSummary:
        """Train (or continue) and write the adapter; the summary of the whole run."""
        from tqdm import tqdm

        c = self.config
        c.out.mkdir(parents=True, exist_ok=True)
        summary = TrainSummary(
            out=str(c.out),
            family=self.family.name,
            examples=len(self.examples),
            epochs=c.epochs,
            steps=0,
            trainable_parameters=sum(p.numel() for p in self.params.values()),
            main_process=self.acc.is_main_process,
        )
        if self.acc.is_main_process:
            self._write_config()
        start_epoch = 1
        history: list[dict[str, Any]] = []
        if c.resume:
            resumed = self._resume()
            if resumed is not None:
                done, history = resumed
                start_epoch = done + 1
                summary.resumed_from = done
        if start_epoch == 1:
            report = self.evaluate() if self.acc.is_main_process else None
            entry = asdict(EpochLog(0, None, 0, accuracy_summary(report) if report else None))
            history = [entry]
            if self.acc.is_main_process:
                self._write_log(history)
                self._print_epoch(entry)
        step = (start_epoch - 1) * math.ceil(self._batches_per_epoch() / c.grad_accum)
        for epoch in range(start_epoch, c.epochs + 1):
            batches = self._order(epoch)
            total, count = 0.0, 0
            bar = tqdm(
                total=len(batches),
                desc=f"epoch {epoch}/{c.epochs}",
                file=sys.stderr,
                disable=not self.acc.is_main_process,
                leave=False,
                # A log file (not a terminal) gets a line every 30 s, not one per batch.
                mininterval=1.0 if sys.stderr.isatty() else 30.0,
            )
            self.optimizer.zero_grad(set_to_none=True)
            for g in range(0, len(batches), c.grad_accum):
                # one step per group: the group's summed token losses over its answer tokens,
                # so B x accumulation A trains as one batch of B*A (a short last group too)
                group = batches[g : g + c.grad_accum]
                tokens = sum(len(e.answer) for batch in group for e in batch)
                for batch in group:
                    with self.autocast():
                        loss = self.loss_sum(batch)
                    (loss / tokens).backward()
                    total += float(loss.detach())
                    count += sum(len(e.answer) for e in batch)  # the epoch's loss: per token
                    bar.update(1)
                    bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)
                self._step()
                step += 1
            bar.close()
            mean = total / count if count else None
            if self.acc.num_processes > 1 and mean is not None:
                mean = float(self.acc.reduce(torch.tensor(mean, device=self.acc.device), "mean"))
            report = self.evaluate() if self.acc.is_main_process else None
            entry = asdict(
                EpochLog(epoch, mean, step, accuracy_summary(report) if report else None)
            )
            history.append(entry)
            if self.acc.is_main_process:
                self._checkpoint(epoch, step, history)
                self._write_log(history)
                self._print_epoch(entry)
            self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            self.format.save(self.handle, self.model, c.out, c.model)
        if self.acc.num_processes > 1:  # leave the process group together (see the trainer's
            self.acc.wait_for_everyone()  # launch: a gloo peer that exits alone aborts the other)
            self.acc.end_training()
        shutil.rmtree(self.cache, ignore_errors=True)  # mapped pixels stay readable until unmapped
        with contextlib.suppress(OSError):
            self.cache.parent.rmdir()  # when no other process's cache is left
        summary.steps = step
        summary.losses = [h["loss"] for h in history[1:]]
        summary.before = history[0]["eval"] if history else None
        summary.after = history[-1]["eval"] if len(history) > 1 else None
        return summary

    def _step(self) -> None:
        if self.acc.num_processes > 1:  # one all-reduce of every gradient, flattened
            params = list(self.params.values())
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            flat = self.acc.reduce(torch.cat([g.reshape(-1) for g in grads]), "mean")
            for p, g in zip(params, flat.split([g.numel() for g in grads]), strict=True):
                p.grad = g.view_as(p).to(p.dtype)
        torch.nn.utils.clip_grad_norm_(list(self.params.values()), self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _print_epoch(self, entry: dict[str, Any]) -> None:
        ev = entry["eval"]
        loss = "" if entry["loss"] is None else f" loss {entry['loss']:.4f}"
        where = "before training" if entry["epoch"] == 0 else f"epoch {entry['epoch']}"
        text = f"{where}:{loss}"
        if ev is not None:
            dims = "  ".join(f"{d} {_pct(a)}" for d, a in ev["dimensions"].items())
            text += f"  agreement avg {_pct(ev['average'])}  ({dims})"
        self.echo(text)

    def _write_config(self) -> None:
        """OUT/train_config.json: the options, the family, the templates and frames served."""
        c = self.config
        raw = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(c).items()}
        raw |= {
            "family": self.family.name,
            "num_frames": c.num_frames,
            "model_dtype": str(self.model_dtype).removeprefix("torch."),
            "trainable": sorted(self.params),
            "processes": self.acc.num_processes,
        }
        (c.out / CONFIG).write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")

    def _write_log(self, history: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(h) + "\n" for h in history)
        (self.config.out / LOG).write_text(text, encoding="utf-8")

    # -- checkpoints ------------------------------------------------------------------
    def _checkpoint(self, epoch: int, step: int, history: list[dict[str, Any]]) -> None:
        from safetensors.torch import save_file

        final = self.config.out / "checkpoints" / f"epoch-{epoch}"
        where = final.with_name(final.name + ".tmp")  # complete or absent: renamed when written
        shutil.rmtree(where, ignore_errors=True)
        self.format.save(self.handle, self.model, where, self.config.model)
        save_file(
            {n: p.detach().cpu().contiguous() for n, p in self.params.items()},
            str(where / TRAINABLE),
        )
        tensors, groups = flatten_optimizer(self.optimizer.state_dict())
        save_file(tensors, str(where / OPTIMIZER))
        state = {
            "epoch": epoch,
            "step": step,
            "identity": self.identity,
            "optimizer_groups": groups,
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state().tolist(),
            "history": history,
        }
        (where / STATE).write_text(json.dumps(state), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(where, final)

    def _resume(self) -> tuple[int, list[dict[str, Any]]] | None:
        """Load the newest checkpoint; (its epoch, the log up to it), or None when there is none."""
        from safetensors.torch import load_file

        root = self.config.out / "checkpoints"
        epochs = checkpoint_epochs(root)
        for epoch in reversed(epochs):  # the newest readable one
            where = root / f"epoch-{epoch}"
            try:
                state = json.loads((where / STATE).read_text(encoding="utf-8"))
                trainable = load_file(str(where / TRAINABLE))
                tensors = load_file(str(where / OPTIMIZER))
                int(state["epoch"])
                break
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                self.echo(f"--resume: {where} is not a readable checkpoint ({exc}); skipped")
        else:
            self.echo(f"--resume: no readable checkpoint in {root}; starting from the beginning")
            return None
        differ = differences(state.get("identity", {}), self.identity)
        if differ:
            raise TrainError(
                f"--resume: the checkpoint in {where} was written with other "
                + "; ".join(differ)
                + "; resume with the same data, model and options, or train into a new --out"
            )
        if set(trainable) != set(self.params):
            raise TrainError(f"--resume: {where} holds other trainable tensors than this run")
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(trainable[n].to(p.dtype))
        self.optimizer.load_state_dict(unflatten_optimizer(tensors, state["optimizer_groups"]))
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
        self.echo(f"resuming after epoch {state['epoch']} from {where}")
        return int(state["epoch"]), list(state.get("history", []))


def checkpoint_epochs(root: Path) -> list[int]:
    """Epochs with a checkpoint directory under ``root`` (``epoch-N`` holding its state), in
    order; half-written ones (``epoch-N.tmp``) are not checkpoints."""
    if not root.is_dir():
        return []
    return sorted(
        int(p.name.removeprefix("epoch-"))
        for p in root.glob("epoch-*")
        if p.name.removeprefix("epoch-").isdigit() and (p / STATE).is_file()
    )


def batches_per_process(examples: int, batch_size: int, world: int) -> int:
    """Batches each of ``world`` processes takes per epoch: all of them on one process;
    under several, the same number on each (the last few batches are dropped rather than
    have a process wait on gradients another never sends). TrainError when there are
    fewer batches than processes (a process would have nothing to train on)."""
    n = math.ceil(examples / batch_size)
    if world == 1:
        return n
    if n < world:
        raise TrainError(
            f"{examples} ratings make {n} batches of --batch-size {batch_size}, fewer than the "
            f"{world} processes training them; every process needs at least one batch: "
            "use a smaller --batch-size, more data or fewer processes"
        )
    return n // world


def process_device(requested: str, assigned: str, world: int) -> str:
    """The device this process trains on: ``requested`` on one process ("auto": the
    accelerator's); under several, the device accelerate assigned to this process (an
    explicit cuda / cuda:N would put every process on the same device)."""
    if requested == "auto" or (world > 1 and requested != "cpu"):
        return assigned
    return requested


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def train(config: TrainConfig, echo: Callable[[str], None] | None = None) -> TrainSummary:
    """Run ``lift critic train`` (errors: TrainError, TrainDataError, ValueError from loading)."""
    return CriticTrainer(config, echo).run()


__all__ = ["CriticTrainer", "TrainConfig", "TrainDataError", "TrainError", "TrainSummary", "train"]
