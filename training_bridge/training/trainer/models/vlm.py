"""The vision-language backbone (`vlm`): a Qwen2-VL / Qwen2.5-VL model from a local folder,
fine-tuned with LoRA (peft), read as a reward model.

Each image is read with its judged prompt in one fixed instruction (`INSTRUCTION`, through the
folder's chat template, as one user turn holding the image then the text, followed by the
assistant's generation prompt). The reward comes from a linear head on the final hidden state
of the sequence's last token (the newline after `<|im_start|>assistant`): a mean and, with the
gaussian head, a log standard deviation (`REWARD_TOKEN` = "last").

Images: decoded and resized (stretched, bilinear) to `image_size` x `image_size` (a multiple of
28, its area between `min_pixels` and `max_pixels`, so Qwen's own `smart_resize` leaves it as
it is), normalised with the folder's preprocessor mean and std and cut into Qwen's 14 px
patches (temporal patch 2, merge 2) here in torch, exactly as Qwen2VLImageProcessor does: a
square image of an allowed size gives the same `pixel_values` and `image_grid_thw` either way.

LoRA on the language model's `lora_target_modules` (the vision tower frozen) or, with
`vision: lora`, on the vision blocks' attention and MLP too; the merger is trained with the
vision LoRA. Only the LoRA weights and the head train.

Checkpoint (`save`): `reward_model.json` (backbone, head, base model folder and revision,
image size, pixel bounds, the instruction, the LoRA settings), `adapter/` (peft
`save_pretrained`: adapter_config.json, adapter_model.safetensors) or `merged/` (the merged
model, save_pretrained) with `merge_lora`, `head.safetensors` (`weight` (k, hidden), `bias`
(k,): row 0 the mean, row 1 the log std), `processor/` (tokenizer, chat template and
preprocessor_config.json, copied from the base folder).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from training_bridge.training.trainer.data import ImageTransform
from training_bridge.training.trainer.models.base import RewardNet, head_split

INSTRUCTION = (
    "You are judging a generated image. Description: {prompt}\n"
    "How well does the image match the description, above all the spatial relations between "
    "the objects (left, right, above, below, in front of, behind, inside), their number and "
    "their attributes?"
)
REWARD_TOKEN = "last"
HEAD_WEIGHTS = "head.safetensors"
ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"
PROCESSOR_DIR = "processor"
PROCESSOR_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
    "merges.txt", "chat_template.jinja", "chat_template.json", "preprocessor_config.json",
    "added_tokens.json",
)  # fmt: skip
VISION_TARGETS = ("qkv", "proj", "fc1", "fc2", "gate_proj", "up_proj", "down_proj")


def folder_revision(path: Path | str) -> str:
    """sha256 over the folder's files (relative names and contents, sorted): which weights,
    tokenizer and preprocessing a checkpoint was trained on."""
    folder = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(folder)).encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def _model_class(folder: Path):
    model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    if model_type == "qwen2_5_vl":
        from transformers import Qwen2_5_VLForConditionalGeneration

        return Qwen2_5_VLForConditionalGeneration, model_type
    if model_type == "qwen2_vl":
        from transformers import Qwen2VLForConditionalGeneration

        return Qwen2VLForConditionalGeneration, model_type
    raise ValueError(f"{folder}: model_type {model_type!r} is not qwen2_vl or qwen2_5_vl")


def lora_target_regex(targets: tuple[str, ...] | list[str], vision: str) -> str:
    """The peft `target_modules` regex: the language model's `targets` (never the vision tower's
    modules of the same name), plus the vision blocks' layers when `vision` is lora."""
    names = "|".join(sorted(set(targets)))
    language = rf"^(?!.*visual).*\.({names})$"
    if vision != "lora":
        return language
    vision_names = "|".join(VISION_TARGETS)
    return rf"({language})|(^.*visual\.(blocks\.\d+|merger)\..*({vision_names})$)"


class VlmNet(RewardNet):
    backbone = "vlm"

    def __init__(
        self, vlm: nn.Module, tokenizer: Any, preprocessor: dict[str, Any], *, head: str,
        image_size: int, min_pixels: int, max_pixels: int, max_text_length: int,
        base_model: dict[str, str], lora: dict[str, Any] | None, merge_lora: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        self.vlm = vlm
        self.tokenizer = tokenizer
        self.preprocessor = preprocessor
        self.head = head
        self.image_size = image_size
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.max_text_length = max_text_length
        self.base_model = base_model
        self.lora = lora
        self.merge_lora = merge_lora
        self.mean = tuple(float(v) for v in preprocessor["image_mean"])
        self.std = tuple(float(v) for v in preprocessor["image_std"])
        self.patch_size = int(preprocessor.get("patch_size", 14))
        self.merge_size = int(preprocessor.get("merge_size", 2))
        self.temporal_patch_size = int(preprocessor.get("temporal_patch_size", 2))
        config = self._base().config
        hidden = config.text_config.hidden_size
        self.reward_head = nn.Linear(hidden, 2 if head == "gaussian" else 1)
        nn.init.normal_(self.reward_head.weight, std=1.0 / hidden**0.5)
        nn.init.zeros_(self.reward_head.bias)
        self.image_token = "<|image_pad|>"
        grid = image_size // self.patch_size
        self.image_tokens = grid * grid // (self.merge_size * self.merge_size)

    # the model under peft's wrappers: a *ForConditionalGeneration
    def _base(self) -> nn.Module:
        model = self.vlm
        if hasattr(model, "get_base_model"):
            model = model.get_base_model()
        return model

    @classmethod
    def from_config(cls, config: Any) -> VlmNet:
        """The base folder of `config.model_path` with fresh LoRA adapters and head."""
        from peft import LoraConfig, get_peft_model
        from transformers import AutoTokenizer

        options = config.vlm
        folder = Path(config.model_path)
        model_class, model_type = _model_class(folder)
        cuda = torch.cuda.is_available() and config.device != "cpu"
        placed: dict[str, Any] = {
            "dtype": torch.bfloat16 if cuda and config.mixed_precision == "bf16" else torch.float32
        }
        replicated = config.vlm.distributed == "ddp" or config.devices == 1
        if cuda and replicated:  # straight onto this process's GPU (torchrun: its local rank)
            placed["device_map"] = {"": torch.cuda.current_device()}
        vlm = model_class.from_pretrained(folder, **placed)
        vlm.requires_grad_(False)
        if options.gradient_checkpointing:  # non-reentrant: the frozen inputs need no grad
            checkpointing = {"use_reentrant": False}
            if hasattr(vlm, "activation_checkpointing_enable"):  # transformers >= 5.2x
                vlm.activation_checkpointing_enable(activation_checkpointing_kwargs=checkpointing)
            else:
                vlm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
        vlm.config.use_cache = False
        lora = {
            "r": options.lora_rank,
            "lora_alpha": options.lora_alpha,
            "lora_dropout": options.lora_dropout,
            "target_modules": list(options.lora_target_modules),
            "vision": options.vision,
        }
        peft_config = LoraConfig(
            r=options.lora_rank, lora_alpha=options.lora_alpha, lora_dropout=options.lora_dropout,
            target_modules=lora_target_regex(options.lora_target_modules, options.vision),
            bias="none",
        )  # fmt: skip
        vlm = get_peft_model(vlm, peft_config)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        preprocessor = json.loads((folder / "preprocessor_config.json").read_text())
        base_model = {
            "path": str(folder.resolve()),
            "revision": folder_revision(folder),
            "model_type": model_type,
        }
        return cls(vlm, tokenizer, preprocessor, head=config.head, image_size=config.image_size,
                   min_pixels=options.min_pixels, max_pixels=options.max_pixels,
                   max_text_length=config.max_text_length, base_model=base_model, lora=lora,
                   merge_lora=options.merge_lora)  # fmt: skip

    def transform(self) -> ImageTransform:
        return ImageTransform(size=self.image_size, mode="square")

    def prompt_text(self, caption: str) -> str:
        """The chat-templated text of one (image, caption), with one image placeholder."""
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "image"},
                    {"type": "text", "text": INSTRUCTION.format(prompt=caption)},
                ],
            }
        ]
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def _caption_cut(self, caption: str) -> str:
        ids = self.tokenizer(caption, add_special_tokens=False)["input_ids"]
        if len(ids) <= self.max_text_length:
            return caption
        return self.tokenizer.decode(ids[: self.max_text_length])

    def texts_encode(self, captions: list[str], device: torch.device) -> dict[str, torch.Tensor]:
        texts = [
            self.prompt_text(self._caption_cut(c)).replace(
                self.image_token, self.image_token * self.image_tokens, 1
            )
            for c in captions
        ]
        rows = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):  # right padding: the reward token is the last real one
            input_ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        # 1 on image tokens: what M-RoPE reads to give them their (t, h, w) positions (the
        # processor's `mm_token_type_ids`; without it Qwen falls back to 1-D positions)
        image_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        types = (input_ids == image_id).int()
        return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device),
                "mm_token_type_ids": types.to(device)}  # fmt: skip

    def patches(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (N, 3, H, W) -> Qwen's flat patches (N * gh * gw, 3 * t * p * p) and
        image_grid_thw (N, 3), as Qwen2VLImageProcessor lays them out."""
        n, channels, height, width = images.shape
        p, m, t = self.patch_size, self.merge_size, self.temporal_patch_size
        gh, gw = height // p, width // p
        x = images.reshape(n, channels, gh // m, m, p, gw // m, m, p)
        x = x.permute(0, 2, 5, 3, 6, 1, 4, 7)  # n, gh/m, gw/m, m, m, C, p, p
        x = x.unsqueeze(6).expand(*x.shape[:6], t, p, p)
        flat = x.reshape(n * gh * gw, channels * t * p * p)
        grid = torch.tensor([[1, gh, gw]] * n, device=images.device, dtype=torch.long)
        return flat, grid

    def forward(
        self, text: dict[str, torch.Tensor], images: torch.Tensor, text_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_ids = text["input_ids"][text_index]
        attention_mask = text["attention_mask"][text_index]
        mm_token_type_ids = text["mm_token_type_ids"][text_index]
        pixel_values, grid = self.patches(images)
        inner = self._base().model  # Qwen*VLModel: the last hidden states, no LM head
        output = inner(
            input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values,
            image_grid_thw=grid, mm_token_type_ids=mm_token_type_ids, use_cache=False,
        )  # fmt: skip
        hidden = output.last_hidden_state
        last = attention_mask.sum(dim=1) - 1
        state = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return head_split(self.reward_head(state.float()), self.head)

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def shard(self, device: torch.device) -> None:
        """FSDP2 over the torchrun processes: each language-model decoder layer and each vision
        block is its own unit (gathered for its forward, freed after), the rest (embeddings,
        merger, head) the root unit. Frozen and LoRA weights are sharded alike; the optimizer
        holds only this rank's shard of the LoRA weights and head."""
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
        inner = self._base().model
        for layer in inner.language_model.layers:
            fully_shard(layer, mesh=mesh)
        for block in inner.visual.blocks:
            fully_shard(block, mesh=mesh)
        fully_shard(self, mesh=mesh)  # moves the shards to the mesh's device
        self.to(device)
        self.sharded = True

    def _trained_state(self) -> dict[str, torch.Tensor]:
        """The trained weights (LoRA, head) whole, on the CPU; sharded, every rank must call it
        (each gathers every tensor, in the same order)."""
        state = {}
        for name, parameter in self.named_parameters():
            if parameter.requires_grad:
                tensor = parameter.detach()
                if hasattr(tensor, "full_tensor"):  # a DTensor shard
                    tensor = tensor.full_tensor()
                state[name] = tensor.float().cpu().contiguous()
        return state

    def save_gather(self) -> None:
        if getattr(self, "sharded", False):
            self._trained_state()

    def meta(self) -> dict[str, Any]:
        return {
            **super().meta(),
            "format": 1,
            "base_model": self.base_model,
            "image_size": self.image_size,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "max_text_length": self.max_text_length,
            "instruction": INSTRUCTION,
            "reward_token": REWARD_TOKEN,
            "lora": self.lora,
            "merged": self.merge_lora,
            "dtype": str(next(self._base().parameters()).dtype).removeprefix("torch."),
        }

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if getattr(self, "sharded", False):  # gathered from the shards (merge_lora refused)
            state = self._trained_state()
            adapter = {k.removeprefix("vlm."): v for k, v in state.items() if "lora_" in k}
            self.vlm.save_pretrained(folder / ADAPTER_DIR, state_dict=adapter)
            head = {k.removeprefix("reward_head."): v for k, v in state.items()
                    if k.startswith("reward_head.")}  # fmt: skip
            save_file(head, str(folder / HEAD_WEIGHTS))
            self._processor_save(folder)
            return
        if self.merge_lora:
            merged = (
                self.vlm.merge_and_unload() if hasattr(self.vlm, "merge_and_unload") else self.vlm
            )
            self.vlm = merged
            merged.save_pretrained(folder / MERGED_DIR)
        else:
            self.vlm.save_pretrained(folder / ADAPTER_DIR)
        state = {k: v.detach().float().cpu().contiguous()
                 for k, v in self.reward_head.state_dict().items()}  # fmt: skip
        save_file(state, str(folder / HEAD_WEIGHTS))
        self._processor_save(folder)

    def _processor_save(self, folder: Path) -> None:
        """processor/ (tokenizer, chat template, preprocessing) and reward_model.json."""
        processor = folder / PROCESSOR_DIR
        processor.mkdir(exist_ok=True)
        self.tokenizer.save_pretrained(processor)
        (processor / "preprocessor_config.json").write_text(
            json.dumps({**self.preprocessor, "min_pixels": self.min_pixels,
                        "max_pixels": self.max_pixels,
                        "size": {"shortest_edge": self.min_pixels,
                                 "longest_edge": self.max_pixels}}, indent=1)
        )  # fmt: skip
        base = Path(self.base_model["path"])
        for name in ("chat_template.jinja", "chat_template.json"):
            if (base / name).is_file() and not (processor / name).is_file():
                shutil.copyfile(base / name, processor / name)
        (folder / "reward_model.json").write_text(json.dumps(self.meta(), indent=1))

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any], *, device: str | None = None) -> VlmNet:
        """A saved checkpoint: the merged model, or the base folder (its revision checked) with
        the adapter; the tokenizer and preprocessing from the checkpoint's `processor/`. On a
        GPU (`device` cuda...) the weights load there directly, in bf16 (the head stays fp32);
        on a CPU in fp32."""
        from transformers import AutoTokenizer

        base = meta["base_model"]
        gpu = device is not None and device.startswith("cuda")
        placed = (
            {"dtype": torch.bfloat16, "device_map": device} if gpu else {"dtype": torch.float32}
        )
        if meta.get("merged"):
            model_class, _ = _model_class(folder / MERGED_DIR)
            vlm = model_class.from_pretrained(folder / MERGED_DIR, **placed)
        else:
            from peft import PeftModel

            base_folder = Path(base["path"])
            if not (base_folder / "config.json").is_file():
                raise FileNotFoundError(
                    f"{folder}: the base model folder {base_folder} is not on this machine"
                )
            revision = folder_revision(base_folder)
            if revision != base["revision"]:
                raise ValueError(
                    f"{folder}: the base model folder {base_folder} has changed since training "
                    f"(revision {revision[:12]}, trained on {base['revision'][:12]})"
                )
            model_class, _ = _model_class(base_folder)
            vlm = model_class.from_pretrained(base_folder, **placed)
            vlm = PeftModel.from_pretrained(vlm, folder / ADAPTER_DIR)
        vlm.requires_grad_(False)
        processor = folder / PROCESSOR_DIR
        tokenizer = AutoTokenizer.from_pretrained(processor)
        preprocessor = json.loads((processor / "preprocessor_config.json").read_text())
        net = cls(vlm, tokenizer, preprocessor, head=meta["head"], image_size=meta["image_size"],
                  min_pixels=meta["min_pixels"], max_pixels=meta["max_pixels"],
                  max_text_length=meta["max_text_length"], base_model=base, lora=meta["lora"],
                  merge_lora=bool(meta.get("merged")))  # fmt: skip
        net.reward_head.load_state_dict(load_file(str(folder / HEAD_WEIGHTS)))
        return net.eval()
