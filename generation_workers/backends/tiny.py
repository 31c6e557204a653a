"""A random-weight Stable Diffusion pipeline (~1.7M parameters) built in code and saved to a folder.

For tests, benchmarks and smoke-testing a worker without downloading weights: the folder loads
through the same `from_pretrained` path as a real model. Imports torch (never at web start-up).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

WORDS = (
    "a an the photo of to on in left right above below behind front next near under top between "
    "cat dog cup chair table red blue green yellow small large kitchen"
).split()


def _tokenizer(folder: Path) -> CLIPTokenizer:
    """A CLIP BPE tokenizer of letters and a few whole words (read from files: transformers 5)."""
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in "abcdefghijklmnopqrstuvwxyz0123456789.,":
        vocab.setdefault(letter, len(vocab))
        vocab.setdefault(f"{letter}</w>", len(vocab))
    merges = ["#version: 0.2"]
    for word in WORDS:
        # Merge the word letter by letter so that it becomes one token.
        pieces = list(word[:-1]) + [f"{word[-1]}</w>"]
        while len(pieces) > 1:
            merges.append(f"{pieces[0]} {pieces[1]}")
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
            vocab.setdefault(pieces[0], len(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("\n".join(dict.fromkeys(merges)) + "\n")
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)


def tiny_pipeline_build(*, seed: int = 0, scratch: Path) -> StableDiffusionPipeline:
    """The pipeline in memory; `scratch` receives the tokenizer files it is read from."""
    tokenizer = _tokenizer(scratch)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-5,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(tokenizer),
            projection_dim=32,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def tiny_pipeline_save(folder: Path, *, seed: int = 0) -> Path:
    """Build the tiny pipeline and save it to `folder` (a diffusers folder); return the folder."""
    folder = Path(folder)
    pipeline = tiny_pipeline_build(seed=seed, scratch=folder.parent / f".{folder.name}-tokenizer")
    pipeline.save_pretrained(str(folder))
    return folder
