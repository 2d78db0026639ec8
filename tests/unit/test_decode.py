"""Video decoding: formats, uniform sampling, and a clear refusal for every bad input."""

import numpy as np
import pytest

from lift.errors import InvalidInput, PayloadTooLarge
from lift.video import VideoLimits, decode_video
from lift.video.encode import encode_video
from lift.video.samples import make_sample


@pytest.mark.parametrize("fmt", ["mp4", "webm", "gif"])
def test_decodes_each_container(fmt: str) -> None:
    frames = make_sample("clean").frames[:12, ::4, ::4]
    video = decode_video(encode_video(frames, 8.0, fmt), VideoLimits())
    assert video.total_frames == 12
    assert video.frames.shape == (12, 120, 180, 3)
    assert video.fps == pytest.approx(8.0, rel=0.05)
    assert np.all(np.diff(video.timestamps) > 0)
    # Lossy codecs stay close to the source (gif: a 256-colour palette).
    assert np.abs(video.frames.astype(int) - frames).mean() < (40 if fmt == "gif" else 12)


def test_uniform_sampling_spans_the_whole_clip(mp4s: dict[str, bytes]) -> None:
    video = decode_video(mp4s["clean"], VideoLimits(), max_samples=8)
    assert video.num_sampled == 8
    assert video.indices[0] == 0 and video.indices[-1] == 48
    assert video.total_frames == 49


def test_gray_matches_rgb_luma(mp4s: dict[str, bytes]) -> None:
    gray = decode_video(mp4s["clean"], VideoLimits(), pixel_format="gray").frames
    rgb = decode_video(mp4s["clean"], VideoLimits()).frames.astype(np.float32)
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    assert gray.shape == luma.shape
    assert np.abs(gray - luma).mean() < 3


@pytest.mark.parametrize(
    "name, words",
    [
        ("empty", "empty"),
        ("random_bytes", "not a video"),
        ("truncated_mp4", "not a video"),
        ("truncated_webm", "truncated"),
        ("zero_frames", "video"),
        ("absurd_gif_header", "could not be decoded"),
        ("too_tall", "largest accepted side"),
    ],
)
def test_bad_input_is_refused_with_a_sentence(
    bad_videos: dict[str, bytes], name: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_video(bad_videos[name], VideoLimits())
    assert words in info.value.message


def test_limits_on_bytes_duration_and_frames(mp4s: dict[str, bytes]) -> None:
    with pytest.raises(PayloadTooLarge):
        decode_video(mp4s["clean"], VideoLimits(max_bytes=1000))
    with pytest.raises(InvalidInput, match="lasts"):
        decode_video(mp4s["clean"], VideoLimits(max_duration_s=2.0))
    with pytest.raises(InvalidInput, match="frames"):
        decode_video(mp4s["clean"], VideoLimits(max_frames=20))


def test_a_memory_bound_keeps_fewer_frames_of_larger_pictures_but_never_below_64() -> None:
    from lift.video.decode import MIN_KEPT_FRAMES, kept_frames

    frame = 1280 * 720
    assert kept_frames(256, 256 * frame, frame) == 256
    assert kept_frames(256, 100 * frame, frame) == 100
    assert kept_frames(256, 10 * frame, frame) == MIN_KEPT_FRAMES
    assert kept_frames(8, 1, frame) == 8  # a small request is never cut
    data = encode_video(np.zeros((80, 64, 64, 3), np.uint8), 25.0, "mp4")
    gray = decode_video(data, VideoLimits(), max_samples=80, pixel_format="gray")
    assert gray.num_sampled == 80
    bounded = decode_video(
        data, VideoLimits(), max_samples=80, pixel_format="rgb24", max_kept_bytes=70 * 64 * 64 * 3
    )
    assert bounded.num_sampled == 70
