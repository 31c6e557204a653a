"""A random-weight Qwen2-VL / Qwen2.5-VL model built offline and saved as a local folder.

    folder = vlm_tiny_build(tmp / "base")                       # a few layers, CPU tests
    folder = vlm_tiny_build(tmp / "7b", **QWEN_SHAPES["qwen2.5-vl-7b"], dtype="bfloat16")

The folder is what the `vlm` backbone reads from a real model's folder: `config.json` and
`model.safetensors` (save_pretrained), a tokenizer (`tokenizer.json`, `tokenizer_config.json`)
with Qwen's special tokens and chat template (`chat_template.jinja`), and
`preprocessor_config.json` (patch 14, merge 2, temporal patch 2, OpenAI CLIP statistics, min and
max pixels). The tokenizer is byte-level with no merges (one token per UTF-8 byte), so it is
built without any file; `vocab_size` pads the embedding table (pass 152064 for the real
models' table). Nothing here downloads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Qwen's chat template for image + text messages (the part of Qwen2-VL's template a reward
# model's prompt uses: a default system message, user turns with images and text, the
# assistant's generation prompt).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>",
)  # fmt: skip
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_MIN_PIXELS = 56 * 56
DEFAULT_MAX_PIXELS = 448 * 448

# Published shapes (the models' config.json on the hub), as keyword arguments of vlm_tiny_build.
QWEN_SHAPES: dict[str, dict[str, Any]] = {
    "qwen2.5-vl-3b": {
        "family": "qwen2_5_vl", "hidden_size": 2048, "num_hidden_layers": 36,
        "num_attention_heads": 16, "num_key_value_heads": 2, "intermediate_size": 11008,
        "vision_depth": 32, "vision_hidden_size": 1280, "vision_num_heads": 16,
        "vision_intermediate_size": 3420, "vocab_size": 151936, "tie_word_embeddings": True,
    },
    "qwen2.5-vl-7b": {
        "family": "qwen2_5_vl", "hidden_size": 3584, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "intermediate_size": 18944,
        "vision_depth": 32, "vision_hidden_size": 1280, "vision_num_heads": 16,
        "vision_intermediate_size": 3420, "vocab_size": 152064,
    },
}  # fmt: skip


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    alphabet = ByteLevel.alphabet()
    vocab = {char: i for i, char in enumerate(sorted(alphabet))}
    raw = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    raw.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _rope_sections(head_dim: int) -> list[int]:
    """M-RoPE's (temporal, height, width) split of head_dim / 2 rotary frequencies, in Qwen's
    proportions 16:24:24 for head_dim 128."""
    half = head_dim // 2
    temporal = max(1, half // 4)
    height = (half - temporal) // 2
    return [temporal, height, half - temporal - height]


def vlm_tiny_build(
    folder: Path | str, *, family: str = "qwen2_5_vl", hidden_size: int = 64,
    num_hidden_layers: int = 2, num_attention_heads: int = 4, num_key_value_heads: int = 2,
    intermediate_size: int = 128, vision_depth: int = 2, vision_hidden_size: int = 32,
    vision_num_heads: int = 2, vision_intermediate_size: int = 64, vocab_size: int | None = None,
    seed: int = 0, dtype: str = "float32", min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS, tie_word_embeddings: bool = False, device: str = "cpu",
) -> Path:  # fmt: skip
    """Build a random-weight model of `family` (qwen2_5_vl or qwen2_vl) and save it to `folder`.

    `device` cuda initialises the weights on the GPU (seconds for a 7B shape instead of minutes
    on a CPU); the saved folder is the same either way (random values aside)."""
    import torch

    if family not in ("qwen2_5_vl", "qwen2_vl"):
        raise ValueError(f"family must be qwen2_5_vl or qwen2_vl, got {family!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    vocab = max(len(tokenizer), vocab_size or 0)
    head_dim = hidden_size // num_attention_heads
    text = {
        "vocab_size": vocab, "hidden_size": hidden_size, "intermediate_size": intermediate_size,
        "num_hidden_layers": num_hidden_layers, "num_attention_heads": num_attention_heads,
        "num_key_value_heads": num_key_value_heads, "max_position_embeddings": 32768,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0,
                            "mrope_section": _rope_sections(head_dim)},
        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }  # fmt: skip
    common = {
        "image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }  # fmt: skip
    torch.manual_seed(seed)
    if family == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        vision = {
            "depth": vision_depth, "hidden_size": vision_hidden_size,
            "intermediate_size": vision_intermediate_size, "num_heads": vision_num_heads,
            "out_hidden_size": hidden_size,
            "fullatt_block_indexes": list(range(vision_depth - 1, -1, -8))[::-1]
            if vision_depth >= 8 else [vision_depth - 1],
        }  # fmt: skip
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision,
                                  tie_word_embeddings=tie_word_embeddings, **common)  # fmt: skip
        model_class = Qwen2_5_VLForConditionalGeneration
    else:
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

        vision = {
            "depth": vision_depth, "embed_dim": vision_hidden_size, "hidden_size": hidden_size,
            "num_heads": vision_num_heads,
            "mlp_ratio": max(1, vision_intermediate_size // vision_hidden_size),
        }  # fmt: skip
        config = Qwen2VLConfig(text_config=text, vision_config=vision,
                               tie_word_embeddings=tie_word_embeddings, **common)  # fmt: skip
        model_class = Qwen2VLForConditionalGeneration
    torch_dtype = getattr(torch, dtype)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype)
    try:
        with torch.device(device):
            model = model_class(config)
    finally:
        torch.set_default_dtype(previous)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "Qwen2VLImageProcessor",
                "processor_class": "Qwen2VLProcessor"
                if family == "qwen2_vl"
                else "Qwen2_5_VLProcessor",
                "patch_size": 14,
                "temporal_patch_size": 2,
                "merge_size": 2,
                "image_mean": list(CLIP_MEAN),
                "image_std": list(CLIP_STD),
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": True,
                "do_resize": True,
                "do_convert_rgb": True,
                "min_pixels": min_pixels,
                "max_pixels": max_pixels,
                "size": {"shortest_edge": min_pixels, "longest_edge": max_pixels},
            },
            indent=1,
        )  # fmt: skip
    )
    return folder
