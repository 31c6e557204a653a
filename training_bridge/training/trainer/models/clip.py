"""The CLIP-style backbone, fine-tuned PickScore-style: the reward of an image for a caption is
`logit_scale.exp() * cos(text embedding, image embedding)`; the Bradley-Terry loss over the two
images of a pair is then PickScore's cross-entropy against the soft label.

The model comes from a local transformers folder (`CLIPModel.from_pretrained(folder)`, its
tokenizer with `AutoTokenizer`); images are resized on the shortest side and centre-cropped to
the folder's size, normalised with its mean and std (preprocessor_config.json when present,
else the vision config's image size and OpenAI CLIP's statistics). The gaussian head adds a
linear layer on the product of the normalised embeddings for the log std.

Saved as `clip/` (save_pretrained: the fine-tuned model, its tokenizer and preprocessing, so
`CLIPModel.from_pretrained(<checkpoint>/clip)` loads it as any CLIP), `head.safetensors` for
the std head, and `reward_model.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from training_bridge.training.trainer.data import ImageTransform
from training_bridge.training.trainer.models.base import LOG_STD_MAX, LOG_STD_MIN, RewardNet

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HEAD_WEIGHTS = "head.safetensors"


def _features(output: Any) -> torch.Tensor:
    """transformers 5 returns a model output (projected features in pooler_output); 4 a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _preprocessing(folder: Path, vision_size: int) -> tuple[int, tuple, tuple]:
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return vision_size, CLIP_MEAN, CLIP_STD
    data = json.loads(path.read_text())
    crop = data.get("crop_size") or data.get("size") or vision_size
    if isinstance(crop, dict):
        crop = crop.get("height") or crop.get("shortest_edge") or vision_size
    mean = tuple(data.get("image_mean") or CLIP_MEAN)
    std = tuple(data.get("image_std") or CLIP_STD)
    return int(crop), mean, std


class ClipNet(RewardNet):
    backbone = "clip"

    def __init__(self, clip: nn.Module, tokenizer: Any, *, head: str, image_size: int,
                 mean: tuple, std: tuple, max_text_length: int) -> None:  # fmt: skip
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.head = head
        self.image_size = image_size
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        positions = clip.config.text_config.max_position_embeddings
        self.max_text_length = min(max_text_length, positions)
        self.std_head = nn.Linear(clip.config.projection_dim, 1) if head == "gaussian" else None

    @classmethod
    def from_folder(
        cls, path: str, *, head: str, image_size: int | None, max_text_length: int
    ) -> ClipNet:
        from transformers import AutoTokenizer, CLIPModel

        folder = Path(path)
        clip = CLIPModel.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        size, mean, std = _preprocessing(folder, clip.config.vision_config.image_size)
        return cls(clip, tokenizer, head=head, image_size=image_size or size, mean=mean,
                   std=std, max_text_length=max_text_length)  # fmt: skip

    def transform(self) -> ImageTransform:
        return ImageTransform(size=self.image_size, mode="clip")

    def texts_encode(self, captions: list[str], device: torch.device) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            captions,
            padding=True,
            truncation=True,
            max_length=self.max_text_length,
            return_tensors="pt",
        )
        return {
            "input_ids": encoded["input_ids"].to(device),
            "attention_mask": encoded["attention_mask"].to(device),
        }

    def forward(
        self, text: dict[str, torch.Tensor], images: torch.Tensor, text_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        text_features = _features(
            self.clip.get_text_features(
                input_ids=text["input_ids"], attention_mask=text["attention_mask"]
            )
        )
        image_features = _features(self.clip.get_image_features(pixel_values=images))
        product = F.normalize(text_features, dim=-1)[text_index] * F.normalize(
            image_features, dim=-1
        )
        mean = self.clip.logit_scale.exp() * product.sum(dim=-1)
        if self.std_head is None:
            return mean, None
        log_std = self.std_head(product).squeeze(-1).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return mean, log_std

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.clip.save_pretrained(folder / "clip")
        self.tokenizer.save_pretrained(folder / "clip")
        (folder / "clip" / "preprocessor_config.json").write_text(
            json.dumps(
                {
                    "crop_size": {"height": self.image_size, "width": self.image_size},
                    "size": {"shortest_edge": self.image_size},
                    "do_center_crop": True,
                    "image_mean": list(self.mean),
                    "image_std": list(self.std),
                    "image_processor_type": "CLIPImageProcessor",
                },
                indent=1,
            )
        )
        if self.std_head is not None:
            state = {
                k: v.detach().cpu().contiguous() for k, v in self.std_head.state_dict().items()
            }
            save_file(state, str(folder / HEAD_WEIGHTS))
        meta = {
            **self.meta(),
            "format": 1,
            "image_size": self.image_size,
            "max_text_length": self.max_text_length,
            "image_mean": list(self.mean),
            "image_std": list(self.std),
        }
        (folder / "reward_model.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any]) -> ClipNet:
        from transformers import AutoTokenizer, CLIPModel

        clip = CLIPModel.from_pretrained(folder / "clip")
        tokenizer = AutoTokenizer.from_pretrained(folder / "clip")
        net = cls(clip, tokenizer, head=meta["head"], image_size=meta["image_size"],
                  mean=meta["image_mean"], std=meta["image_std"],
                  max_text_length=meta["max_text_length"])  # fmt: skip
        if net.std_head is not None:
            net.std_head.load_state_dict(load_file(str(folder / HEAD_WEIGHTS)))
        return net.eval()
