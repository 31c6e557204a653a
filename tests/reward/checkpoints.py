"""Reward-model checkpoints made with the trainer's own code, stored like a run stores them.

`builtin_checkpoint` builds the built-in network through the trainer's `model_build` (from a
checked trainer config, torch seeded), untrained, and saves it with the network's own `save`:
exactly the folder a run leaves under `training/runs/<id>/checkpoint`. `clip_checkpoint` does
the same for the CLIP-style backbone from a tiny random-weight transformers folder. The folder
is then copied into the default storage under a prefix, which is what a registered model's
`artifact_key` names.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

CAPTIONS = [
    "a photo of a cat to the left of a dog",
    "a photo of a cup above a lamp",
    "a photo of a book to the right of a vase",
    "a photo of a chair below a clock",
]
WORDS = ["a", "photo", "of", "cat", "dog", "cup", "lamp", "book", "vase", "chair", "clock",
         "to", "the", "left", "right", "above", "below"]  # fmt: skip


def _save(net, folder: Path) -> Path:
    net.save(folder)
    return folder


def builtin_checkpoint(folder: Path, *, seed: int, head: str = "gaussian", size: int = 32) -> Path:
    import torch

    from training_bridge.training.trainer.config import config_parse
    from training_bridge.training.trainer.models import model_build

    config = config_parse(
        {"backbone": "builtin", "head": head, "image_size": size, "max_text_length": 32,
         "seed": seed}
    )  # fmt: skip
    torch.manual_seed(seed)
    return _save(model_build(config, train_captions=CAPTIONS), folder)


def tiny_clip_folder(folder: Path, *, image_size: int = 32, hidden: int = 32, layers: int = 2):
    """A random-weight CLIPModel with a CLIPTokenizer (vocab.json + merges.txt) in `folder`."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    merges = ["#version: 0.2"]
    for char in "abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(f"{char}</w>", len(vocab))
    for word in WORDS:
        pieces = [*word[:-1], f"{word[-1]}</w>"]
        while len(pieces) > 1:
            if f"{pieces[0]} {pieces[1]}" not in merges:
                merges.append(f"{pieces[0]} {pieces[1]}")
            vocab.setdefault(pieces[0] + pieces[1], len(vocab))
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}  # fmt: skip
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": hidden,
                     "intermediate_size": 2 * hidden, "num_hidden_layers": layers,
                     "num_attention_heads": 2, "max_position_embeddings": 32, **ids},
        vision_config={"hidden_size": hidden, "intermediate_size": 2 * hidden,
                       "num_hidden_layers": layers, "num_attention_heads": 2,
                       "image_size": image_size, "patch_size": 8},
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def clip_checkpoint(folder: Path, *, clip_folder: Path, seed: int, head: str = "gaussian"):
    import torch

    from training_bridge.training.trainer.config import config_parse
    from training_bridge.training.trainer.models import model_build

    config = config_parse({"backbone": "clip", "model_path": str(clip_folder), "head": head,
                           "seed": seed})  # fmt: skip
    torch.manual_seed(seed)
    return _save(model_build(config, train_captions=CAPTIONS), folder)


def checkpoint_upload(folder: Path, prefix: str | None = None) -> str:
    """Copy a checkpoint folder into the default storage; returns its prefix (artifact key)."""
    prefix = prefix or f"reward-models/test/{uuid.uuid4().hex[:12]}/checkpoint"
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(folder).as_posix()}"
        default_storage.save(key, ContentFile(path.read_bytes()))
    return prefix
