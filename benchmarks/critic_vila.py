"""The `vlm` critic on the tiny random VILA-1.5 checkpoint against the reference protocol.

Measured in one run, interleaved, on the same loaded modules, videos per second of:

* ours, ``Score``: prepare each video, then ``judge_batch`` without reasons over
  micro-batches (label probabilities from one forward, nothing decoded);
* ours, ``Critique``: the same with reasons (forced label, greedy reason of at most
  ``max_reason_tokens``);
* the reference protocol (LiFT-Critic/test/run_critic_13b.py) re-enacted: one video
  at a time, each of the three questions on its own: frames preprocessed and
  encoded again, the prompt embedded with the image features in place, then
  transformers' own ``generate`` on the language model (sampling at temperature
  0.2, up to 512 new tokens, KV cache, stopping at the end-of-sequence token).
  The tiny random model often runs long (the mean length is printed), which is
  what the reference pays when an answer does. The reference's keyword stopping
  criterion (a decode of the tail every step) is left out, which only makes it
  faster here;
* the same protocol with answers capped at the length of our Critique's longest
  answer ("reference, short"): what the reference costs with a critic that
  answers briefly, so the ratio does not rest on long random answers alone.

The target (``Score`` at least 20x the reference protocol) is stated and checked
in the output, not asserted. torch runs on one thread by default: the tiny
model's ops are too small to share, and on a busy machine spinning threads made
the reference's thousands of small decode steps many times slower at random.

Video decoding is outside every timing (the reference even decodes the video
again for each question). The tiny model shows the protocol's costs (three
prefills and up to 3 x 512 decode steps per video versus one batched forward),
not a real model's compute.

    make bench            # or: .venv/bin/python -m benchmarks.critic_vila --videos 8 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lift.critique import DIMENSIONS
from lift.services.critic.backends.vlm import VlmBackend, VlmOptions
from lift.services.critic.backends.vlm.tiny_vila import write_tiny_vila
from lift.serving import Deadline
from lift.video import DecodedVideo, VideoLimits, decode_video
from lift.video.samples import SAMPLE_NAMES, make_sample

PROMPT = "colourful shapes glide across a textured wall"
NEVER = Deadline().check
TARGET = 20.0
"""Score must reach this many times the reference protocol's throughput."""


def _clips(directory: Path | None, n: int) -> tuple[list[bytes], str]:
    if directory is not None:
        files = sorted(directory.glob("*.mp4"))
        if not files:
            raise SystemExit(f"no .mp4 files in {directory}")
        return [files[i % len(files)].read_bytes() for i in range(n)], f"{directory}/*.mp4"
    clips = [make_sample(SAMPLE_NAMES[i % len(SAMPLE_NAMES)]).encode("mp4") for i in range(n)]
    return clips, "synthetic samples (49 frames 480x720)"


def _spf(video: DecodedVideo) -> float:
    if video.num_sampled > 1:
        return float(np.mean(np.diff(video.timestamps)))
    return 1.0 / video.fps if video.fps > 0 else 1.0


class Reference:
    """run_critic_13b.py's loop on our loaded modules: per video, per question, generate."""

    def __init__(self, backend: VlmBackend, max_new_tokens: int, temperature: float) -> None:
        self.scorer = backend.scorer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        tok = self.scorer.tokenizer
        self.eos = tok.eos_token_id
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else self.eos
        self.new_tokens = 0

    @torch.inference_mode()
    def answer(self, video: DecodedVideo, seed: int) -> list[str]:
        scorer, family = self.scorer, self.scorer.family
        model: Any = scorer.model
        answers = []
        for q, dim in enumerate(DIMENSIONS):
            # process_images + tokenizer_image_token, again for every question
            item = scorer.prepare(video.frames, _spf(video), PROMPT, (dim,))
            features = family.encode_videos(model, [item.vision])[0]
            ids = torch.tensor([item.rows[0]], device=model.device)
            placed = ids == scorer.video_token_id
            embeds = family.embed(model, ids.masked_fill(placed, self.pad))
            embeds = embeds.masked_scatter(placed.unsqueeze(-1), features.to(embeds.dtype))
            torch.manual_seed(seed * len(DIMENSIONS) + q)  # repeatable benchmark runs only
            out = model.llm.generate(
                inputs_embeds=embeds,
                attention_mask=torch.ones_like(ids),
                do_sample=self.temperature > 0,
                temperature=self.temperature,
                top_p=None,
                top_k=None,
                num_beams=1,
                max_new_tokens=self.max_new_tokens,
                use_cache=True,
                eos_token_id=self.eos,
                pad_token_id=self.pad,
            )
            self.new_tokens += int(out.shape[1])  # inputs_embeds only: the output is new tokens
            answers.append(scorer.tokenizer.decode(out[0], skip_special_tokens=True).strip())
        return answers


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=8, help="videos per measurement (8)")
    parser.add_argument("--runs", type=int, default=3, help="interleaved repeats (3)")
    parser.add_argument("--batch", type=int, default=8, help="our micro-batch size (8)")
    parser.add_argument("--max-new-tokens", type=int, default=512, help="reference's (512)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1)",
    )
    parser.add_argument(
        "--clips", type=Path, default=None, help="a folder of .mp4 files (default: synthetic)"
    )
    args = parser.parse_args()
    n, batch = args.videos, args.batch
    torch.set_num_threads(args.threads)
    clips, source = _clips(args.clips, n)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_tiny_vila(Path(tmp) / "vila")
        backend = VlmBackend(VlmOptions(model=model_dir, templates="lift-13b"))
        videos = [
            decode_video(c, VideoLimits(), max_samples=8, sampling=backend.frame_sampling)
            for c in clips
        ]
        reference = Reference(backend, args.max_new_tokens, temperature=0.2)
        # as long as our Critique's longest answer: what a critic that answers briefly costs
        short_cap = max(map(len, backend.scorer.forced.values())) + backend.scorer.max_reason_tokens
        short = Reference(backend, short_cap, temperature=0.2)

        def ours(with_reasons: bool) -> None:
            for start in range(0, n, batch):
                items = [backend.prepare(v, PROMPT, NEVER) for v in videos[start : start + batch]]
                backend.judge_batch(items, with_reasons, NEVER)

        def ref(protocol: Reference) -> None:
            for k, v in enumerate(videos):
                protocol.answer(v, seed=k)

        cases: dict[str, Callable[[], None]] = {
            "ours, Score": lambda: ours(False),
            "ours, Critique": lambda: ours(True),
            "reference protocol": lambda: ref(reference),
            "reference, short": lambda: ref(short),
        }
        ours(False)  # warm-up (first-call allocations, lazy imports)
        ours(True)
        for protocol in (reference, short):
            protocol.answer(videos[0], seed=0)
            protocol.new_tokens = 0
        times: dict[str, list[float]] = {name: [] for name in cases}
        t_all = time.perf_counter()
        for _ in range(args.runs):  # interleaved so drift hits every case alike
            for name, fn in cases.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        wall = time.perf_counter() - t_all
        answers = args.runs * n * len(DIMENSIONS)
        tokens_per_answer = reference.new_tokens / answers
        short_tokens = short.new_tokens / answers

    print(
        f"tiny VILA-1.5 critic (lift-13b templates), {n} videos from {source}, 8 frames each, "
        f"CPU, torch threads {torch.get_num_threads()}, {args.runs} interleaved runs"
    )
    print(
        f"ours: prepare + judge_batch in micro-batches of {batch} "
        f"(Critique reasons up to {backend.scorer.max_reason_tokens} tokens); reference: per video, "
        f"3 x generate (temperature 0.2, up to {args.max_new_tokens} tokens; "
        f"{tokens_per_answer:.0f} generated per answer on average)"
    )
    print(
        f"reference, short: the same with answers capped at {short_cap} tokens "
        f"({short_tokens:.0f} on average), as long as our Critique's, as a critic that answers "
        "briefly would cost"
    )
    print(f"  {'':<20} {'videos/s (median)':>18} {'(best)':>8} {'ms/video':>9}")
    rate: dict[str, float] = {}
    for name, ts in times.items():
        med, best = statistics.median(ts), min(ts)
        rate[name] = n / med
        print(f"  {name:<20} {n / med:18.2f} {n / best:8.2f} {1000 * med / n:9.1f}")
    ref_rate = rate["reference protocol"]
    score_x = rate["ours, Score"] / ref_rate
    critique_x = rate["ours, Critique"] / ref_rate
    short_rate = rate["reference, short"]
    print(
        f"  Score vs reference:    x{score_x:.1f}   (vs reference, short: x{rate['ours, Score'] / short_rate:.1f})"
    )
    print(
        f"  Critique vs reference: x{critique_x:.1f}   (vs reference, short: x{rate['ours, Critique'] / short_rate:.1f})"
    )
    met = "met" if score_x >= TARGET else "NOT met"
    print(f"  target: Score >= x{TARGET:.0f} the reference protocol's throughput: {met}")
    print(f"  (timed part {wall:.0f} s)")


if __name__ == "__main__":
    main()
