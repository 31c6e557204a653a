"""The training config: checked, with every default written in, so equal configs hash equally.

    {"backbone": "builtin" | "clip",
     "model_path": "/models/clip-vit-b32",     # clip only: a local transformers folder
     "head": "scalar" | "gaussian",            # gaussian: mean and std, uncertainty-aware loss
     "epochs": 5, "batch_size": 32, "lr": 0.001, "weight_decay": 0.0, "seed": 0,
     "early_stopping": null | {"metric": "val/accuracy", "patience": 2, "min_delta": 0.0},
     "device": "auto" | "cpu" | "cuda" | "cuda:1",
     "devices": 1,                             # > 1: torchrun, one process per GPU (DDP)
     "mixed_precision": "no" | "fp16" | "bf16", # on CUDA only
     "image_size": 64,                         # builtin; clip takes the folder's own
     "dataset_format": "parquet" | "webdataset",
     "tie_margin": 0.0,                        # |score difference| <= margin counts as a tie
     "log_every_steps": 1, "max_text_length": 64, "grad_clip": 1.0, "num_threads": null,
     "hflip": 0.5,                             # builtin 0.5, clip and vlm 0.0
     "match_loss": 1.0}                        # builtin only

`hflip`: the share of training pairs mirrored left-right each epoch, their captions' `left`
and `right` swapped with the images (augment.py), so no pair's label turns false. On by
default for the built-in backbone, which learns left and right from scratch (and draws only
left-right symmetric shapes); off for the pretrained backbones, whose images may carry text or
handed objects a mirror would misdraw.

`match_loss`: the weight of the built-in network's word-image matching loss, added to the
preference loss in training (models/builtin.py says what it is and why); 0 turns it off. The
built-in backbone's only: clip and vlm refuse it, and their stored configs leave it out.

The `vlm` backbone (a Qwen2-VL / Qwen2.5-VL folder in `model_path`, LoRA through peft) takes
these keys too, refused for the other backbones (see `VlmOptions`):

    {"loss": "uncertainty" | "bradley_terry", "lora_rank": 16, "lora_alpha": 32.0,
     "lora_dropout": 0.05, "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj",
     "gate_proj", "up_proj", "down_proj"], "vision": "frozen" | "lora",
     "gradient_checkpointing": true, "grad_accum_steps": 1, "min_pixels": 3136,
     "max_pixels": 200704, "soft_labels": false, "merge_lora": false, "distributed": "ddp"}

(defaults for vlm: head gaussian, lr 1e-4, image_size 448, max_text_length 256).

`config_parse` raises `ConfigError(field, message)`; no torch is imported here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BACKBONES = ("builtin", "clip", "vlm")
HEADS = ("scalar", "gaussian")
DATASET_FORMATS = ("parquet", "webdataset")
MIXED_PRECISION = ("no", "fp16", "bf16")
EARLY_STOPPING_METRICS = ("val/accuracy", "val/loss")
DEFAULT_LR = {"builtin": 1e-3, "clip": 1e-5, "vlm": 1e-4}
DEFAULT_HFLIP = {"builtin": 0.5, "clip": 0.0, "vlm": 0.0}
DEFAULT_MATCH_LOSS = 1.0
DEFAULT_IMAGE_SIZE = 64
LOSSES = ("uncertainty", "bradley_terry")
VISION_MODES = ("frozen", "lora")
DISTRIBUTED = ("ddp", "fsdp")
VLM_PATCH = 28  # Qwen-VL: 14 px patches merged 2 x 2: image sides are multiples of 28
VLM_DEFAULT_IMAGE_SIZE = 448
VLM_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class ConfigError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class EarlyStopping:
    metric: str
    patience: int
    min_delta: float

    @property
    def maximise(self) -> bool:
        return self.metric.endswith("accuracy")


@dataclass(frozen=True)
class VlmOptions:
    """The vlm backbone's own keys (written flat into the config JSON)."""

    loss: str
    lora_rank: int
    lora_alpha: float
    lora_dropout: float
    lora_target_modules: tuple[str, ...]
    vision: str  # frozen: the vision tower untouched; lora: LoRA on its blocks too
    gradient_checkpointing: bool
    grad_accum_steps: int
    min_pixels: int
    max_pixels: int
    soft_labels: bool  # label_0 from the vote counts (Parquet exports) instead of the majority
    merge_lora: bool  # the checkpoint holds the merged model instead of the adapter
    distributed: str  # under torchrun: ddp (a model copy per GPU) or fsdp (the model sharded)


VLM_KEYS = frozenset(VlmOptions.__dataclass_fields__)


@dataclass(frozen=True)
class TrainerConfig:
    backbone: str
    model_path: str
    head: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    early_stopping: EarlyStopping | None
    device: str
    devices: int
    mixed_precision: str
    image_size: int | None  # None: the clip folder's own size
    dataset_format: str
    tie_margin: float
    log_every_steps: int
    max_text_length: int
    grad_clip: float
    num_threads: int | None
    hflip: float
    match_loss: float = 0.0
    vlm: VlmOptions | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        # clip and vlm runs mirror nothing by default, as every run did before `hflip` existed:
        # leaving it out there keeps their stored configs, and so their hashes, as they were.
        if data["hflip"] == 0.0 and DEFAULT_HFLIP[self.backbone] == 0.0:
            del data["hflip"]
        if self.backbone != "builtin":
            del data["match_loss"]
        vlm = data.pop("vlm")
        if vlm is not None:
            data.update(vlm, lora_target_modules=list(vlm["lora_target_modules"]))
        return data


TRAINER_KEYS = (frozenset(TrainerConfig.__dataclass_fields__) - {"vlm"}) | VLM_KEYS


def _int(raw: Mapping[str, Any], key: str, default: int | None, low: int, high: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(key, f"must be an integer from {low} to {high}, got {value!r}")
    return value


def _float(raw: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = raw.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ConfigError(key, f"must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _choice(raw: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = raw.get(key, default)
    if value not in choices:
        raise ConfigError(key, f"unknown value {value!r}; choose one of {', '.join(choices)}")
    return value


def _device(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError("device", f"must be auto, cpu, cuda or cuda:<n>, got {value!r}")
    if value in ("auto", "cpu", "cuda"):
        return value
    if value.startswith("cuda:") and value[5:].isdigit():
        return value
    raise ConfigError("device", f"must be auto, cpu, cuda or cuda:<n>, got {value!r}")


def _early_stopping(value: Any) -> EarlyStopping | None:
    if value is None or value is False:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError("early_stopping", "must be null or an object {metric, patience, ...}")
    unknown = sorted(set(value) - {"metric", "patience", "min_delta"})
    if unknown:
        raise ConfigError(f"early_stopping.{unknown[0]}", "unknown key")
    metric = value.get("metric", "val/accuracy")
    if metric not in EARLY_STOPPING_METRICS:
        raise ConfigError(
            "early_stopping.metric",
            f"unknown metric {metric!r}; choose one of {', '.join(EARLY_STOPPING_METRICS)}",
        )
    try:
        patience = _int(value, "patience", 2, 1, 1000)
        min_delta = _float(value, "min_delta", 0.0, 0.0, 1.0)
    except ConfigError as exc:
        raise ConfigError(f"early_stopping.{exc.field}", exc.message) from None
    return EarlyStopping(metric=metric, patience=patience, min_delta=min_delta)


def clip_folder_check(path: str) -> None:
    """A CLIP-style transformers folder: a config.json and tokenizer files beside it."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError("model_path", f"no such folder: {path}")
    if not (folder / "config.json").is_file():
        raise ConfigError("model_path", f"{path} has no config.json (not a transformers folder)")
    if not any((folder / name).is_file() for name in ("tokenizer.json", "vocab.json")):
        raise ConfigError("model_path", f"{path} has no tokenizer (vocab.json or tokenizer.json)")


def vlm_folder_check(path: str) -> None:
    """A Qwen2-VL / Qwen2.5-VL transformers folder: config.json of that family, a tokenizer with
    a chat template, preprocessor_config.json."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError("model_path", f"no such folder: {path}")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ConfigError("model_path", f"{path} has no config.json (not a transformers folder)")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (ValueError, AttributeError):
        raise ConfigError("model_path", f"{path}/config.json is not a JSON object") from None
    if model_type not in ("qwen2_vl", "qwen2_5_vl"):
        raise ConfigError(
            "model_path", f"{path} is a {model_type!r} model; the vlm backbone reads qwen2_vl or "
            "qwen2_5_vl folders",
        )  # fmt: skip
    if not (folder / "tokenizer.json").is_file():
        raise ConfigError("model_path", f"{path} has no tokenizer.json")
    if not (folder / "preprocessor_config.json").is_file():
        raise ConfigError("model_path", f"{path} has no preprocessor_config.json")
    has_template = (folder / "chat_template.jinja").is_file() or (
        folder / "chat_template.json"
    ).is_file()
    if not has_template:
        tokenizer_config = folder / "tokenizer_config.json"
        text = tokenizer_config.read_text() if tokenizer_config.is_file() else ""
        if "chat_template" not in text:
            raise ConfigError("model_path", f"{path} has no chat template")


def _bool(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false, got {value!r}")
    return value


def _vlm_options(raw: Mapping[str, Any], head: str, image_size: int) -> VlmOptions:
    loss = _choice(raw, "loss", "uncertainty" if head == "gaussian" else "bradley_terry", LOSSES)
    if loss == "uncertainty" and head != "gaussian":
        raise ConfigError("loss", "the uncertainty loss needs the gaussian head (a std per image)")
    rank = _int(raw, "lora_rank", 16, 1, 1024)
    targets = raw.get("lora_target_modules", list(VLM_TARGET_MODULES))
    if (
        not isinstance(targets, list | tuple)
        or not targets
        or not all(isinstance(t, str) and t.isidentifier() for t in targets)
    ):
        raise ConfigError(
            "lora_target_modules", "must be a non-empty list of module names (e.g. q_proj)"
        )
    min_pixels = _int(raw, "min_pixels", 56 * 56, VLM_PATCH * VLM_PATCH, 16384 * 16384)
    max_pixels = _int(raw, "max_pixels", VLM_DEFAULT_IMAGE_SIZE**2, min_pixels, 16384 * 16384)
    if image_size % VLM_PATCH:
        raise ConfigError("image_size", f"must be a multiple of {VLM_PATCH} for the vlm backbone")
    if not min_pixels <= image_size * image_size <= max_pixels:
        raise ConfigError(
            "image_size",
            f"{image_size}x{image_size} is outside min_pixels {min_pixels} .. max_pixels "
            f"{max_pixels}",
        )
    return VlmOptions(
        loss=loss,
        lora_rank=rank,
        lora_alpha=_float(raw, "lora_alpha", 2.0 * rank, 1e-6, 1e6),
        lora_dropout=_float(raw, "lora_dropout", 0.05, 0.0, 0.9),
        lora_target_modules=tuple(targets),
        vision=_choice(raw, "vision", "frozen", VISION_MODES),
        gradient_checkpointing=_bool(raw, "gradient_checkpointing", True),
        grad_accum_steps=_int(raw, "grad_accum_steps", 1, 1, 4096),
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        soft_labels=_bool(raw, "soft_labels", False),
        merge_lora=_bool(raw, "merge_lora", False),
        distributed=_choice(raw, "distributed", "ddp", DISTRIBUTED),
    )


def config_parse(raw: Any, *, check_paths: bool = True) -> TrainerConfig:
    """Check a trainer config (see the module docstring) and fill in the defaults."""
    if not isinstance(raw, Mapping):
        raise ConfigError("config", "must be a JSON object")
    unknown = sorted(set(raw) - TRAINER_KEYS)
    if unknown:
        raise ConfigError(unknown[0], "unknown key")
    backbone = _choice(raw, "backbone", "builtin", BACKBONES)
    model_path = raw.get("model_path", "")
    if not isinstance(model_path, str):
        raise ConfigError("model_path", "must be a folder path")
    if backbone in ("clip", "vlm"):
        if not model_path:
            raise ConfigError(
                "model_path", f"the {backbone} backbone needs a local transformers folder"
            )
        if check_paths:
            (clip_folder_check if backbone == "clip" else vlm_folder_check)(model_path)
    elif model_path:
        raise ConfigError("model_path", "only the clip and vlm backbones read a model folder")
    if backbone != "vlm":
        vlm_only = sorted(VLM_KEYS & set(raw))
        if vlm_only:
            raise ConfigError(vlm_only[0], "only the vlm backbone takes this key")
    devices = _int(raw, "devices", 1, 1, 64)
    device = _device(raw.get("device", "auto"))
    if devices > 1 and device == "cpu":
        raise ConfigError("devices", "several devices need GPUs (device auto or cuda)")
    image_size = raw.get("image_size")
    if backbone == "vlm":
        image_size = _int(raw, "image_size", VLM_DEFAULT_IMAGE_SIZE, VLM_PATCH, 16384)
    elif backbone == "builtin" or image_size is not None:
        image_size = _int(raw, "image_size", DEFAULT_IMAGE_SIZE, 16, 1024)
    head = _choice(raw, "head", "gaussian" if backbone == "vlm" else "scalar", HEADS)
    vlm = _vlm_options(raw, head, image_size) if backbone == "vlm" else None
    if vlm is not None and vlm.soft_labels and raw.get("dataset_format") == "webdataset":
        raise ConfigError("soft_labels", "vote counts are read from Parquet exports only")
    if vlm is not None and vlm.merge_lora and vlm.distributed == "fsdp":
        raise ConfigError(
            "merge_lora", "a sharded (fsdp) run saves the adapter; merge it after (merge_lora "
            "with distributed ddp, or peft's merge_and_unload on the checkpoint)",
        )  # fmt: skip
    num_threads = raw.get("num_threads")
    if num_threads is not None:
        num_threads = _int(raw, "num_threads", None, 1, 256)
    return TrainerConfig(
        backbone=backbone,
        model_path=model_path,
        head=head,
        epochs=_int(raw, "epochs", 5, 1, 10_000),
        batch_size=_int(raw, "batch_size", 32, 1, 65_536),
        lr=_float(raw, "lr", DEFAULT_LR[backbone], 1e-9, 10.0),
        weight_decay=_float(raw, "weight_decay", 0.0, 0.0, 10.0),
        seed=_int(raw, "seed", 0, 0, 2**31 - 1),
        early_stopping=_early_stopping(raw.get("early_stopping")),
        device=device,
        devices=devices,
        mixed_precision=_choice(raw, "mixed_precision", "no", MIXED_PRECISION),
        image_size=image_size,
        dataset_format=_choice(raw, "dataset_format", "parquet", DATASET_FORMATS),
        tie_margin=_float(raw, "tie_margin", 0.0, 0.0, 1e6),
        log_every_steps=_int(raw, "log_every_steps", 1, 1, 1_000_000),
        max_text_length=_int(raw, "max_text_length", 256 if backbone == "vlm" else 64, 4, 4096),
        grad_clip=_float(raw, "grad_clip", 1.0, 0.0, 1e6),
        num_threads=num_threads,
        hflip=_float(raw, "hflip", DEFAULT_HFLIP[backbone], 0.0, 1.0),
        match_loss=_match_loss(raw, backbone),
        vlm=vlm,
    )


def _match_loss(raw: Mapping[str, Any], backbone: str) -> float:
    if backbone == "builtin":
        return _float(raw, "match_loss", DEFAULT_MATCH_LOSS, 0.0, 100.0)
    if raw.get("match_loss") is not None:
        raise ConfigError("match_loss", "is the built-in backbone's only")
    return 0.0


def config_from_json(data: Mapping[str, Any]) -> TrainerConfig:
    """A config written by `as_json` (early_stopping as a dict) read back, paths unchecked."""
    return config_parse(data, check_paths=False)
