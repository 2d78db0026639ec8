"""The embedded demo run: what ``lift align --demo`` trains on the embedded defaults.

The demo generator is a tiny random CogVideoX whose videos are noise; the
``signal`` critic rates them mostly bad (judder, noise, flicker, blocks). Its
own samples, weighted by their reward, teach it little; the real-video term
pulls it toward smoothly moving footage.

Recipe: 200 steps of one sample each (a training prompt, 17 frames of 64x64, 20
denoising steps, guidance 6) plus the real-video term (λ = 4, four copies per step of
one window of the suite's clean sample clip, written at the training size); a rank-32
LoRA on every Linear layer of the denoiser, AdamW lr 3e-3. Tuned on this tiny model
with the critics of their day: rank-8 LoRA on attention only, lr 1e-2 or λ = 1 gave
gains inside their CI; lr 5e-3, λ = 8 or 250+ steps push the samples' dynamic degree
down (it falls steeply after step ~200) until the hacking watch warns for some seeds.
The reward stays low (<= 0.5) because the random VAE's decoder adds 8x8 blocks to
anything it decodes.

Held-out set: 8 prompts (none trained on) x 8 seeds = 64 videos, scored before and
after; the gain's interval is the paired 95 % CI. Its promise is gain >= 2x CI with no
guard warning. The interval covers only which videos were drawn, not which training
trajectory the run took: the same recipe with another training seed, or another
machine's float rounding, gives another gain. With 16 videos the CI was too wide for
that spread (+0.199 ± 0.091 on the machine that measured it, +0.098 ± 0.095 on a
fresh clone elsewhere); 64 make the CI about half as wide.

Determinism: same code, same wheels, same kind of CPU, same numbers (a score may still
differ in its last bits between processes, moving a mean by ~1e-16; a different
trajectory moves it by 1e-5 and more: ``benchmarks.demo_gain`` tells the two). Every
draw is seeded (prompts and seeds per step from (seed, step), the LoRA's initial weights,
timesteps and noise, the generator's seeds; the embedded model is built from seed 0,
so a fresh cache holds the same bytes as an old one of its revision); the in-process
run pins torch's and OpenCV's threads (:data:`DEMO_THREADS`); x264 encodes the 64x64
videos with one thread on any machine. Float kernels still differ between CPU
families (AVX2, AVX-512), so elsewhere the numbers differ a little and the run takes
another trajectory: the margin over 2x CI, checked over several seeds, is what
carries there.

Measure it (a fresh cache per run, the verdict against gain >= 2x CI):
``python -m benchmarks.demo_gain`` (seed 0 twice: determinism) or
``--seeds 0,1,2`` (other trajectories). Numbers depend on the critic; the last
measurement and its commit are in the README.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lift.video.encode import encode_video
from lift.video.samples import make_sample

FRAMES, HEIGHT, WIDTH = 17, 64, 64
CAPTION = "colourful shapes glide over a detailed, slowly panning background"
PROMPTS = [
    "a red ball rolls across a wooden table",
    "waves roll onto a sandy beach at sunset",
    "a dog runs through a park",
    "a city street at night with moving cars",
    "clouds drift over green hills",
    "a paper boat floats down a stream",
]
EVAL_PROMPTS = [  # held out: no training prompt
    "a cat walks along a garden wall",
    "a train crosses a bridge",
    "leaves fall from an autumn tree",
    "a kite flies over a field",
    "a horse gallops along a beach",
    "snow falls on a quiet village street",
    "a sailboat crosses a calm lake",
    "fireworks burst over a river at night",
]
EVAL_SEEDS = [0, 1, 2, 3, 4, 5, 6, 7]
"""Every held-out prompt with every seed: 64 videos (one Score call of the critic's
default limit), scored before and after the run."""

DEMO_THREADS = 2
"""torch's and OpenCV's thread count for an in-process demo run (LIFT_DEMO_THREADS).

Fixed rather than one per core: a reduction split over another number of threads rounds
differently, and 200 steps make that a different result."""

TARGETS = [  # every Linear layer of the tiny denoiser's blocks, embeddings and output
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "ff.net.0.proj",
    "ff.net.2",
    "norm1.linear",
    "norm2.linear",
    "norm_out.linear",
    "proj_out",
    "text_proj",
    "time_embedding.linear_1",
    "time_embedding.linear_2",
]


def _env_int(name: str, default: int, least: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = least - 1
    if number < least:
        raise ValueError(f"{name} must be an integer of at least {least}, got {value!r}")
    return number


def demo_threads() -> int:
    """The demo's thread count: LIFT_DEMO_THREADS, else :data:`DEMO_THREADS`."""
    return _env_int("LIFT_DEMO_THREADS", DEMO_THREADS, 1)


def demo_seed() -> int:
    """The demo run's seed: LIFT_DEMO_SEED, else 0 (another seed: another training run).

    The held-out prompts and seeds stay the same; only the training draws change, which
    is how the demo's gain is checked to hold beyond one trajectory
    (``python -m benchmarks.demo_gain --seeds 0,1,2``).
    """
    return _env_int("LIFT_DEMO_SEED", 0, 0)


def pin_threads(threads: int | None = None) -> int:
    """Pin torch's and OpenCV's thread counts for this process (the in-process demo run).

    The trainer, the generator and the critic of ``lift align --demo`` all run in this
    process, and threads started later inherit torch's setting. Returns the count.
    """
    import torch

    n = threads if threads is not None else demo_threads()
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    return n


def write_real_clips(directory: Path, count: int = 1) -> Path:
    """Windows of the clean sample clip (every other frame, at the training size) with captions.

    Written at the training size: x264 gives a 64-pixel-high video one slice thread on
    any machine, while at 128 pixels it took one per core (up to 2), and the bytes, so
    the decoded real clips, differed between a 1-core and a 2-core machine.
    """
    directory.mkdir(parents=True, exist_ok=True)
    frames = make_sample("clean").frames
    captions = {}
    span = FRAMES * 2
    for i in range(count):
        start = i * (len(frames) - span) // max(1, count - 1)
        window = frames[start : start + span : 2]
        small = np.stack(
            [cv2.resize(f, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA) for f in window]
        )
        name = f"clean-{i}.mp4"
        (directory / name).write_bytes(encode_video(small, 8.0, "mp4"))
        captions[name] = CAPTION
    (directory / "captions.json").write_text(json.dumps(captions, indent=1))
    return directory


def demo_config(
    generator: str | None, critic: str | None, real_dir: Path, steps: int = 200, seed: int = 0
) -> dict[str, Any]:
    """The demo run's config (a plain dict, as a user would write it in YAML).

    A None address leaves the endpoint out: the trainer then uses its own configured
    generator / critic (LIFT_TRAINER_GENERATOR_ADDRESS / _CRITIC_ADDRESS).
    """
    endpoints = {
        name: {"address": address, "timeout_s": timeout}
        for name, address, timeout in (("generator", generator, 120), ("critic", critic, 60))
        if address is not None
    }
    return {
        "name": "demo",
        **endpoints,
        "prompts": PROMPTS,
        "strategy": "reward_weighted",
        "real_data": {"path": str(real_dir), "weight": 4.0, "ratio": 4.0},
        "lora": {"rank": 32, "alpha": 32, "target_modules": TARGETS},
        "optimizer": {"lr": 3e-3, "betas": [0.9, 0.95], "grad_clip": 1.0},
        "sampling": {
            "num_frames": FRAMES,
            "height": HEIGHT,
            "width": WIDTH,
            "num_inference_steps": 20,
            "guidance_scale": 6.0,
            "fps": 8,
        },
        "steps": steps,
        "batch_size": 1,
        "videos_per_prompt": 1,
        "publish_every": 10,
        "checkpoint_every": 40,
        "seed": seed,
        "eval": {"prompts": EVAL_PROMPTS, "seeds": EVAL_SEEDS},
    }
