"""The embedded demo model: a tiny random CogVideoX pipeline, built in code.

The generator serves it and the trainer trains it when no model is configured.

Every component is real (T5 encoder, CogVideoX transformer and VAE, DDIM
scheduler with v-prediction, a Unigram tokenizer trained with ``tokenizers``);
only the sizes are tiny and the weights random, so its videos are coloured
noise. It is written with ``save_pretrained`` and served through the same
``from_pretrained`` path as a real checkpoint. Same seed, same bytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

TINY_NAME = "lift-tiny-cogvideox"
TINY_REVISION = 2
"""Bump when the builder changes, so cached copies of the old one are not reused."""

_CORPUS = [
    "a dog runs along the beach at sunset",
    "a cat sleeps on a sofa in the afternoon light",
    "colourful shapes glide across a textured wall",
    "the camera pans slowly over a city at night",
    "a red car drives through a forest road in the rain",
    "waves crash against rocks under a cloudy sky",
    "a person walks through a busy market and smiles",
    "a bird flies over a snowy mountain valley",
    "a close-up of coffee being poured into a white cup",
    "children play football on a green field",
]


def _tokenizer(vocab_size: int = 256):  # type: ignore[no-untyped-def]
    """T5's tokenizer (a Unigram model) over pieces learnt from the corpus by ``tokenizers``.

    The pieces come from a BPE trainer, which is deterministic (the Unigram
    trainer is not: the same corpus gives different scores run to run); each
    piece scores by the order it was learnt in, so earlier, commoner merges win.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5Tokenizer

    specials = ["<pad>", "</s>", "<unk>"]  # T5's ids 0, 1, 2
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer)
    pieces = sorted((tid, piece) for piece, tid in bpe.get_vocab().items() if piece not in specials)
    vocab = [(s, 0.0) for s in specials] + [
        (piece, -1.0 - 0.01 * rank) for rank, (_, piece) in enumerate(pieces)
    ]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def build_tiny_pipeline(seed: int = 0):  # type: ignore[no-untyped-def]
    """The tiny CogVideoX pipeline in memory (random weights from ``seed``)."""
    import torch
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    tokenizer = _tokenizer()
    torch.manual_seed(seed)
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
        )
    )
    # CogVideoX-2B's layout (absolute positions, 4x temporal / 8x spatial VAE, patch 2)
    # at toy width; the sample size makes the defaults 49 frames of 64x96. Width 64
    # (revision 2; 16 before) is the least at which `lift align --demo` measurably
    # learns in a few hundred CPU steps.
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=4,
        attention_head_dim=16,
        in_channels=4,
        out_channels=4,
        time_embed_dim=32,
        text_embed_dim=32,
        num_layers=2,
        sample_width=12,
        sample_height=8,
        sample_frames=49,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=226,
    )
    vae = AutoencoderKLCogVideoX(
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
        sample_height=64,
        sample_width=96,
    )
    # CogVideoX-2B's scheduler: DDIM, v-prediction, zero-terminal-SNR, trailing spacing.
    scheduler = CogVideoXDDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        set_alpha_to_one=True,
        snr_shift_scale=3.0,
        steps_offset=0,
        timestep_spacing="trailing",
    )
    return CogVideoXPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
    )


def write_tiny_generator(directory: Path, seed: int = 0) -> Path:
    """Write the tiny pipeline to ``directory`` (diffusers layout, safetensors)."""
    from lift.checkpoints import quiet_hf

    quiet_hf()
    pipe = build_tiny_pipeline(seed)
    directory.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(directory, safe_serialization=True)
    (directory / "LIFT_DEMO_MODEL").write_text(
        f"{TINY_NAME} revision {TINY_REVISION}, seed {seed}: random weights, a demo only.\n"
    )
    return directory


def is_tiny(directory: Path) -> bool:
    """Whether ``directory`` holds the demo model."""
    return (directory / "LIFT_DEMO_MODEL").is_file()


def ensure_tiny_generator(cache_dir: Path, seed: int = 0) -> Path:
    """The cached demo model directory, written atomically on first use."""
    target = cache_dir / f"{TINY_NAME}-r{TINY_REVISION}-seed{seed}"
    if (target / "model_index.json").is_file() and is_tiny(target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir))
    try:
        write_tiny_generator(tmp, seed)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "model_index.json").is_file():  # not a concurrent writer's copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def write_tiny_lora(model_dir: Path, directory: Path, seed: int = 1, rank: int = 4) -> Path:
    """Write a random LoRA adapter for the denoiser in ``model_dir`` in peft's format.

    ``adapter_model.safetensors`` (keys ``base_model.model.<module>.lora_A.weight``)
    and ``adapter_config.json``, as peft's ``save_pretrained`` lays them out; both
    factors are random so the adapter visibly changes the output.
    """
    import torch
    from diffusers import CogVideoXTransformer3DModel
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model
    from safetensors.torch import save_file

    from lift.checkpoints import quiet_hf
    from lift.generation import WEIGHTS_FILE

    quiet_hf()
    transformer = CogVideoXTransformer3DModel.from_pretrained(model_dir / "transformer")
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        init_lora_weights=False,
    )
    torch.manual_seed(seed)
    inject_adapter_in_model(config, transformer)
    state = get_peft_model_state_dict(transformer)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {f"base_model.model.{k}": v.contiguous() for k, v in state.items()},
        str(directory / WEIGHTS_FILE),
        metadata={"format": "pt"},
    )
    config.save_pretrained(str(directory))
    return directory
