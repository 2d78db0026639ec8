"""The embedded demo run: what ``lift align --demo`` trains on the embedded defaults.

The demo generator is a tiny random CogVideoX whose videos are noise; the
``signal`` critic rates them mostly bad (judder, noise, flicker, blocks). Its
own samples, weighted by their reward, teach it little; the real-video term
(λ = 4, four copies of one window of the suite's clean sample clip per step)
pulls it toward smoothly moving footage. Measured on 2 CPU cores (3 min 20 s):
held-out reward 0.202 -> 0.401, gain +0.199 ± 0.091 (95 % paired CI over 16
videos), dynamic degree 0.97 -> 0.90, no guard warning. The recipe was tuned on
this tiny model: rank-8 LoRA on attention only, lr 1e-2 or λ = 1 gave gains inside
their CI; at 300 steps the dynamic degree of the samples falls to ~0.7 and the
hacking watch warns, so the demo stops at 250. The reward stays low (<= 0.5)
because the random VAE's decoder adds 8x8 blocks to anything it decodes.
"""

from __future__ import annotations

import json
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
EVAL_PROMPTS = [
    "a cat walks along a garden wall",
    "a train crosses a bridge",
    "leaves fall from an autumn tree",
    "a kite flies over a field",
]

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


def write_real_clips(directory: Path, count: int = 1) -> Path:
    """Windows of the clean sample clip (every other frame, downscaled) with captions."""
    directory.mkdir(parents=True, exist_ok=True)
    frames = make_sample("clean").frames
    captions = {}
    span = FRAMES * 2
    for i in range(count):
        start = i * (len(frames) - span) // max(1, count - 1)
        window = frames[start : start + span : 2]
        small = np.stack(
            [cv2.resize(f, (WIDTH * 2, HEIGHT * 2), interpolation=cv2.INTER_AREA) for f in window]
        )
        name = f"clean-{i}.mp4"
        (directory / name).write_bytes(encode_video(small, 8.0, "mp4"))
        captions[name] = CAPTION
    (directory / "captions.json").write_text(json.dumps(captions, indent=1))
    return directory


def demo_config(
    generator: str | None, critic: str | None, real_dir: Path, steps: int = 250
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
        "seed": 0,
        "eval": {"prompts": EVAL_PROMPTS, "seeds": [0, 1, 2, 3]},
    }
