"""Compare our vila family with the reference ``llava`` package on one input (dev tool).

Run ``ref_logits.py`` (in the reference venv, see README.md) on a checkpoint first,
then, in this project's venv::

    python -m tools.reference.compare --model BASE [--adapter LORA] --frames F.npy \\
        --caption "..." --reference OUT.npz

It prints whether our prompt ids equal the reference's (one -200 per image there,
each expanded to the frame's tokens here), the largest differences of the
preprocessed frames, the projected image features and the next-token logits.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from lift.critique import Dimension
from lift.services.critic.backends.vlm import VlmBackend, VlmOptions
from lift.services.critic.backends.vlm.families.vila import PLACEHOLDER


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--adapter", type=Path)
    ap.add_argument("--frames", type=Path, required=True)
    ap.add_argument("--caption", required=True)
    ap.add_argument("--templates", default="lift-13b")
    ap.add_argument("--reference", type=Path, required=True)
    args = ap.parse_args()
    ref = np.load(args.reference)
    backend = VlmBackend(
        VlmOptions(model=args.model, adapter=args.adapter, templates=args.templates)
    )
    scorer, family = backend.scorer, backend.scorer.family
    item = scorer.prepare(np.load(args.frames), 1.0, args.caption, [Dimension.SEMANTIC_CONSISTENCY])
    row = list(item.rows[0])
    per_frame = item.vision.num_tokens // item.vision.grid[0]
    collapsed = []
    run = 0
    for t in row:
        if t == PLACEHOLDER and run and run < per_frame:
            run += 1
            continue
        run = 1 if t == PLACEHOLDER else 0
        collapsed.append(t)
    print("prompt ids equal:", collapsed == ref["input_ids"].reshape(-1).tolist())
    print("frames max diff:", float(np.abs(item.vision.pixels - ref["images"]).max()))
    with torch.inference_mode():
        model = scorer.model
        feats = family.encode_videos(model, [item.vision])[0]
        ref_feats = torch.from_numpy(ref["image_features"]).reshape(feats.shape)
        print("image features max diff:", float((feats - ref_feats).abs().max()))
        ids = torch.tensor([row])
        mask = torch.ones_like(ids)
        placed = ids == PLACEHOLDER
        embeds = family.embed(model, ids.masked_fill(placed, scorer.pad_id))
        embeds = embeds.masked_scatter(placed.unsqueeze(-1), feats.to(embeds.dtype))
        logits, _ = family.decode(
            model, embeds, mask, family.position_ids(model, ids, mask, [item.vision])
        )
    diff = float((logits[0].float() - torch.from_numpy(ref["logits"].reshape(-1))).abs().max())
    print(
        f"next-token logits max diff: {diff:.3g} (logits up to {np.abs(ref['logits']).max():.3g})"
    )


if __name__ == "__main__":
    main()
