"""Shared fixtures: sample clips (rendered once per session) and bad inputs."""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import pytest

from lift.video.encode import encode_video
from lift.video.samples import SAMPLE_NAMES, SampleClip, make_sample


@pytest.fixture(scope="session")
def clips() -> dict[str, SampleClip]:
    """Every sample clip, rendered once."""
    return {name: make_sample(name) for name in SAMPLE_NAMES}


@pytest.fixture(scope="session")
def mp4s(clips: dict[str, SampleClip]) -> dict[str, bytes]:
    """Every sample clip as H.264 mp4 bytes."""
    return {name: clip.encode("mp4") for name, clip in clips.items()}


def _zero_frame_webm() -> bytes:
    """A valid webm container with a VP9 video stream and no frames."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="webm") as out:
        s = out.add_stream("libvpx-vp9", rate=8)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        out.start_encoding()  # writes the header although no frame follows
    return buf.getvalue()


def _absurd_gif() -> bytes:
    """A GIF whose header claims 65535x65535 pixels around a 1x1 image."""
    screen = struct.pack("<HHBBB", 65535, 65535, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    image = b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + image + b";"


@pytest.fixture(scope="session")
def bad_videos(mp4s: dict[str, bytes]) -> dict[str, bytes]:
    """Inputs every front must refuse with INVALID_ARGUMENT / 4xx."""
    rng = np.random.default_rng(0)
    tall = np.zeros((2, 4112, 16, 3), np.uint8)
    webm = encode_video(make_sample("clean").frames[:16], 8.0, "webm")
    return {
        "empty": b"",
        "random_bytes": rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes(),
        "truncated_mp4": mp4s["clean"][: len(mp4s["clean"]) // 2],
        "truncated_webm": webm[: len(webm) * 2 // 3],
        "zero_frames": _zero_frame_webm(),
        "absurd_gif_header": _absurd_gif(),
        "too_tall": encode_video(tall, 8.0, "mp4"),
    }


@pytest.fixture(scope="session")
def tiny_critic_dir(tmp_path_factory: pytest.TempPathFactory):
    """The tiny random Qwen2-VL critic checkpoint (same builder as `lift debug tiny-model`)."""
    from lift.services.critic.backends.vlm.tiny import write_tiny_critic

    return write_tiny_critic(tmp_path_factory.mktemp("tiny-critic"))


@pytest.fixture(scope="session")
def tiny_lora_dir(tiny_critic_dir, tmp_path_factory: pytest.TempPathFactory):
    """A random LoRA adapter for the tiny critic."""
    from lift.services.critic.backends.vlm.tiny import write_tiny_lora

    return write_tiny_lora(tiny_critic_dir, tmp_path_factory.mktemp("tiny-lora"))


@pytest.fixture(scope="session")
def tiny_vila_dir(tmp_path_factory: pytest.TempPathFactory):
    """The tiny random VILA-1.5 checkpoint (same builder as `lift debug tiny-model critic --family vila`)."""
    from lift.services.critic.backends.vlm.tiny_vila import write_tiny_vila

    return write_tiny_vila(tmp_path_factory.mktemp("tiny-vila"))


@pytest.fixture(scope="session")
def tiny_vila_lora_dir(tiny_vila_dir, tmp_path_factory: pytest.TempPathFactory):
    """A LiFT-style LoRA directory (adapter + non_lora_trainables.bin) for the tiny VILA."""
    from lift.services.critic.backends.vlm.tiny_vila import write_tiny_vila_lora

    return write_tiny_vila_lora(tiny_vila_dir, tmp_path_factory.mktemp("tiny-vila-lora"))


@pytest.fixture(scope="session")
def tiny_generator_dir(tmp_path_factory: pytest.TempPathFactory):
    """The tiny random CogVideoX pipeline (same builder as `lift debug tiny-model generator`)."""
    from lift.t2v.tiny import write_tiny_generator

    return write_tiny_generator(tmp_path_factory.mktemp("tiny-generator"))


@pytest.fixture(scope="session")
def generator_loras(tiny_generator_dir, tmp_path_factory: pytest.TempPathFactory):
    """Two different random peft LoRA adapters for the tiny generator."""
    from lift.t2v.tiny import write_tiny_lora

    return [
        write_tiny_lora(tiny_generator_dir, tmp_path_factory.mktemp(f"gen-lora-{seed}"), seed=seed)
        for seed in (1, 2)
    ]


@pytest.fixture(scope="session")
def offline_dataset(tmp_path_factory: pytest.TempPathFactory):
    """A pre-scored dataset (4 small mp4 clips, 9 frames of 32x32) and a real-clip folder."""
    import json

    root = tmp_path_factory.mktemp("offline")
    frames = make_sample("clean").frames
    rows = []
    scores = [(0.9, "good"), (0.2, "normal"), (0.05, "bad"), (0.9, "good")]
    for i, (reward, label) in enumerate(scores):
        window = frames[i * 6 : i * 6 + 9, :, 120:600]
        small = np.stack([f[::15, ::15][:32, :32] for f in window])
        name = f"clip-{i}.mp4"
        (root / name).write_bytes(encode_video(small, 8.0, "mp4"))
        rows.append(
            {
                "video": name,
                "caption": f"shapes move, clip {i}",
                "reward": reward,
                "labels": {"motion_smoothness": label, "video_fidelity": label},
            }
        )
    (root / "data.json").write_text(json.dumps(rows))
    real = root / "real"
    real.mkdir()
    (real / "clip-0.mp4").write_bytes((root / "clip-0.mp4").read_bytes())
    (real / "clip-0.txt").write_text("a real clip of moving shapes")
    return root


@pytest.fixture(scope="session")
def graph_dir(tiny_critic_dir, tmp_path_factory: pytest.TempPathFactory):
    """The tiny critic's vision graph, exported as `lift critic export` does."""
    from lift.services.critic.backends.vlm.vision_graph import export

    out = tmp_path_factory.mktemp("vision-graph")
    export(tiny_critic_dir, out)
    return out


@pytest.fixture(scope="session")
def mixed_videos(mp4s: dict[str, bytes]):
    """Three decoded clips of two lengths: several (steps, patches) groups in one batch."""
    from lift.video import VideoLimits, decode_video

    return [
        decode_video(mp4s["clean"], VideoLimits(), max_samples=8),
        decode_video(mp4s["flicker"], VideoLimits(), max_samples=8),
        decode_video(mp4s["judder"], VideoLimits(), max_samples=4),
    ]
