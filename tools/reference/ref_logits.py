#!/usr/bin/env python
"""Reference (VILA/LiFT `llava`) next-token logits on CPU/fp32, mirroring
LiFT-Critic/test/run_critic_13b.py preprocessing.  Run with /tmp/ref/venv/bin/python.

All CPU/fp32 monkeypatches live here (package untouched):
  * load_pretrained_model(..., device="cpu")                -> device_map {"": "cpu"}
  * builder.prepare_config_for_eval wrapped: after it runs, model_dtype := "torch.float32" (it was
    torch.float16, hard-coded in load_pretrained_model) and device_map := {"": "cpu"} (it forces
    "cuda" for siglip towers)
  * during load, nn.Module.to(dtype=torch.float16) is rewritten to float32 (builder casts vision
    tower + projector to fp16 at the end; doing fp16->fp32 afterwards would round the weights)
  * input_ids .cuda() / images .to(cuda, float16) of run_critic are dropped (kept on CPU, fp32)
"""

import argparse, json, os, re, sys, warnings

sys.path.insert(0, os.environ.get("LIFT_REPO", "/tmp/ref/lift"))  # the paper's repository (llava/)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")
import numpy as np
import torch
from PIL import Image

from llava.constants import (
    DEFAULT_IM_END_TOKEN,
    DEFAULT_IM_START_TOKEN,
    DEFAULT_IMAGE_TOKEN,
    IMAGE_PLACEHOLDER,
    IMAGE_TOKEN_INDEX,
)
from llava.conversation import conv_templates
from llava.mm_utils import get_model_name_from_path, process_images, tokenizer_image_token
import llava.model.builder as B
from llava.model.builder import load_pretrained_model
from llava.utils import disable_torch_init


def patched_load(model_path, model_name, model_base):
    orig_prep = B.prepare_config_for_eval

    def prep(config, kwargs):
        orig_prep(config, kwargs)
        config.model_dtype = "torch.float32"
        kwargs["device_map"] = {"": "cpu"}

    orig_to = torch.nn.Module.to

    def to(self, *a, **k):
        if k.get("dtype") is torch.float16:
            k["dtype"] = torch.float32
        a = tuple(torch.float32 if x is torch.float16 else x for x in a)
        return orig_to(self, *a, **k)

    # LoRA branch: LlavaMetaModel.load_pretrained re-reads the config with AutoConfig (dropping the
    # prepared one) and LlavaConfig does not keep `model_dtype`, so it falls back to torch.float16.
    import llava.model.llava_arch as A

    RealAutoConfig = A.AutoConfig

    class AutoConfigFP32:
        @staticmethod
        def from_pretrained(*a, **k):
            c = RealAutoConfig.from_pretrained(*a, **k)
            c.model_dtype = "torch.float32"
            return c

    B.prepare_config_for_eval = prep
    torch.nn.Module.to = to
    A.AutoConfig = AutoConfigFP32
    try:
        return load_pretrained_model(model_path, model_name, model_base, device="cpu")
    finally:
        B.prepare_config_for_eval = orig_prep
        torch.nn.Module.to = orig_to
        A.AutoConfig = RealAutoConfig


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--model-base", default=None)
    ap.add_argument("--frames-npy", required=True)
    ap.add_argument("--caption", default=None)
    ap.add_argument("--question", default=None)
    ap.add_argument(
        "--inputs-json", default=None, help="json with caption/question (used if flags absent)"
    )
    ap.add_argument("--conv", default="vicuna_v1")
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--check-forward",
        action="store_true",
        help="also run model.forward(input_ids, images=[...]) (needs a 1-proc gloo group) and compare",
    )
    args = ap.parse_args()
    if args.inputs_json and (args.caption is None or args.question is None):
        d = json.load(open(args.inputs_json))
        args.caption = d["caption"] if args.caption is None else args.caption
        args.question = d["question"] if args.question is None else args.question
    torch.set_grad_enabled(False)

    disable_torch_init()  # as run_critic_13b.py
    model_name = get_model_name_from_path(args.model)
    tokenizer, model, image_processor, context_len = patched_load(
        args.model, model_name, args.model_base
    )
    model.eval()

    frames = np.load(args.frames_npy)
    assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[-1] == 3, frames.shape
    images = [Image.fromarray(f) for f in frames]  # replaces opencv_extract_frames (RGB PIL)

    # ---- run_critic_13b.py, verbatim logic ----
    qs = args.caption + args.question
    image_token_se = DEFAULT_IM_START_TOKEN + DEFAULT_IMAGE_TOKEN + DEFAULT_IM_END_TOKEN
    if IMAGE_PLACEHOLDER in qs:
        if model.config.mm_use_im_start_end:
            qs = re.sub(IMAGE_PLACEHOLDER, image_token_se, qs)
        else:
            qs = re.sub(IMAGE_PLACEHOLDER, DEFAULT_IMAGE_TOKEN, qs)
    else:
        if DEFAULT_IMAGE_TOKEN not in qs:
            if model.config.mm_use_im_start_end:
                qs = (image_token_se + "\n") * len(images) + qs
            else:
                qs = (DEFAULT_IMAGE_TOKEN + "\n") * len(images) + qs
    conv = conv_templates[args.conv].copy()
    conv.append_message(conv.roles[0], qs)
    conv.append_message(conv.roles[1], None)
    prompt = conv.get_prompt()
    images_tensor = process_images(images, image_processor, model.config).to(
        model.device, dtype=torch.float32
    )
    input_ids = tokenizer_image_token(
        prompt, tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt"
    ).unsqueeze(0)

    # ---- first step of model.generate (LlavaMetaForCausalLM.generate) ----
    (_, _, attention_mask, _, inputs_embeds, _) = model.prepare_inputs_labels_for_multimodal(
        input_ids, None, None, None, None, [images_tensor]
    )
    inputs_embeds = inputs_embeds.to(model.dtype)
    # llm.generate: attention_mask None -> _prepare_attention_mask_for_generation gives ones (inputs_embeds);
    # prepare_inputs_for_generation: position_ids = cumsum(mask)-1
    if attention_mask is None:
        attention_mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long)
    position_ids = attention_mask.long().cumsum(-1) - 1
    position_ids.masked_fill_(attention_mask == 0, 1)
    out = model.llm(
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=False,
        return_dict=True,
    )
    logits = out.logits[0, -1].float()

    res = dict(
        input_ids=input_ids[0].numpy().astype(np.int64),
        images=images_tensor.numpy().astype(np.float32),
        logits=logits.numpy().astype(np.float32),
        inputs_embeds=inputs_embeds[0].float().numpy(),
        all_logits=out.logits[0].float().numpy(),
        prompt=np.array(prompt),
    )
    with torch.no_grad():
        feats = model.encode_images(images_tensor)
    res["image_features"] = feats.float().numpy()

    if args.check_forward:
        import torch.distributed as dist

        if not dist.is_initialized():
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ.setdefault("MASTER_PORT", "29533")
            dist.init_process_group("gloo", rank=0, world_size=1)
        fo = model(
            input_ids=input_ids,
            images=[images_tensor],
            attention_mask=torch.ones_like(input_ids),
            labels=torch.full_like(input_ids, -100),
            return_dict=True,
        )
        res["forward_logits"] = fo.logits[0, -1].float().numpy()
        print(
            "model.forward vs generate-path last-logit max|diff|:",
            float(np.abs(res["forward_logits"] - res["logits"]).max()),
        )

    np.savez(args.out, **res)
    print("prompt:", repr(prompt))
    print(
        "input_ids:",
        input_ids.shape,
        "n_image_tokens:",
        int((input_ids == IMAGE_TOKEN_INDEX).sum()),
        "images:",
        tuple(images_tensor.shape),
        "image_features:",
        tuple(feats.shape),
        "inputs_embeds:",
        tuple(inputs_embeds.shape),
        "vocab(logits):",
        logits.shape[0],
        "len(tokenizer):",
        len(tokenizer),
    )
    print(
        "dtypes: llm",
        model.llm.dtype,
        "vt",
        model.get_vision_tower().dtype,
        "proj",
        next(model.get_mm_projector().parameters()).dtype,
    )
    print("logits[:5]", logits[:5].tolist(), "argmax", int(logits.argmax()))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
