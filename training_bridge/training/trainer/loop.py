"""The training loop: batches of pairs, Bradley-Terry loss, per-epoch validation, early
stopping, the best weights restored, the test report and the checkpoint.

- Deterministic on CPU for a seed (seeded shuffles and mirror draws, deterministic algorithms,
  no worker processes); the same thread count gives the same numbers.
- The built-in network adds its matching loss (`match_loss`) to the preference loss in
  training (`RewardNet.auxiliary_loss_pop`); `train/loss` stays the preference loss alone and
  `train/match_loss` is logged beside it.
- Augmentation: `hflip` of the training pairs, each epoch, are mirrored left-right with their
  captions' left and right swapped (augment.py); validation and test pairs never are.
- Under torchrun (WORLD_SIZE > 1) each process trains on its share of every epoch's shuffle
  with DistributedDataParallel (NCCL on GPUs, gloo on CPU); rank 0 validates, writes the
  metrics, the reports and the checkpoint.
- Mixed precision (fp16 with a gradient scaler, or bf16) on CUDA; ignored on CPU.
- The vlm backbone adds its loss choice (`loss`), soft labels from the vote counts, gradient
  accumulation (`grad_accum_steps` batches per optimizer step; DDP syncs on the last one), and
  keeps only its trainable weights (LoRA, head) as the best epoch's copy. With `distributed:
  fsdp` under torchrun the model is sharded with torch's FSDP2 (`fully_shard` per decoder layer
  and vision block) instead of replicated by DDP: every rank then takes part in validation,
  the test report and gathering the weights for the checkpoint (rank 0 still writes alone).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import random
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training_bridge.training.trainer.augment import caption_mirror, mirror_mask
from training_bridge.training.trainer.config import TrainerConfig
from training_bridge.training.trainer.data import DecodedImages, PairRecord, dataset_read
from training_bridge.training.trainer.events import Events, Stopped
from training_bridge.training.trainer.losses import pair_loss
from training_bridge.training.trainer.metrics import AccuracyReport, ScoredPair, accuracy_report
from training_bridge.training.trainer.models import model_build
from training_bridge.training.trainer.models.base import RewardNet

log = logging.getLogger("training_bridge.training.trainer")

CHECKPOINT_DIR = "checkpoint"
EVALUATION_FILE = "evaluation.json"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"
EVAL_BATCH = 64
IMAGE_CACHE_BYTES = 2 * 1024**3
WARMUP_FRACTION = 0.05


@dataclass(frozen=True)
class Distributed:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def distributed_setup(config: TrainerConfig) -> Distributed:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    wanted = config.device
    cuda = torch.cuda.is_available() and wanted != "cpu"
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {wanted!r} asked for, but CUDA is not available here")
    if cuda:
        index = int(wanted.split(":", 1)[1]) if ":" in wanted else local_rank
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
    return Distributed(rank=rank, world=world, local_rank=local_rank, device=device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def _loss_kind(config: TrainerConfig) -> str:
    return config.vlm.loss if config.vlm is not None else "bradley_terry"


def _target(pair: PairRecord, config: TrainerConfig) -> float:
    """label_0, or the vote share where the config asks for soft labels and the pair has one."""
    if config.vlm is not None and config.vlm.soft_labels and pair.soft_label_0 is not None:
        return pair.soft_label_0
    return pair.label_0


def _state_copy(net: RewardNet, config: TrainerConfig) -> dict[str, torch.Tensor]:
    """The weights to restore as the best epoch's: all of them, or for the vlm backbone only
    the trained ones (LoRA and head; the frozen base never changes)."""
    if config.vlm is None:
        return copy.deepcopy(net.state_dict())
    _resharded(net)
    return {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}


def _resharded(net: RewardNet) -> RewardNet:
    """An FSDP2-sharded network back to its shards (FSDP leaves the root unit gathered after a
    forward pass), so its weights are copied and restored as shards; others as they are."""
    if hasattr(net, "reshard"):
        net.reshard()
    return net


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _batch(
    net: RewardNet, pairs: list[PairRecord], images: DecodedImages, indices: list[int],
    device: torch.device, config: TrainerConfig, mirrored: np.ndarray | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Text (one per pair), pixels (the pairs' image 0s, then their image 1s), text index and
    the targets label_0. Pairs whose index is set in `mirrored` come mirrored left-right,
    images and caption (augment.py)."""
    flip = [bool(mirrored[i]) if mirrored is not None else False for i in indices]
    captions = [
        caption_mirror(pairs[i].caption) if f else pairs[i].caption
        for i, f in zip(indices, flip, strict=True)
    ]
    stacked = np.stack(
        [
            _side(images.get(i, side), f)
            for side in (0, 1)
            for i, f in zip(indices, flip, strict=True)
        ]
    )
    text = net.texts_encode(captions, device)
    pixels = net.pixels(stacked, device)
    count = len(indices)
    text_index = torch.arange(count, device=device).repeat(2)
    targets = torch.tensor([_target(pairs[i], config) for i in indices], device=device)
    return text, pixels, text_index, targets


def _side(image: np.ndarray, mirror: bool) -> np.ndarray:
    return image[:, ::-1] if mirror else image


def _autocast(config: TrainerConfig, device: torch.device):
    if device.type != "cuda" or config.mixed_precision == "no":
        return nullcontext()
    dtype = torch.float16 if config.mixed_precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type="cuda", dtype=dtype)


@torch.no_grad()
def evaluate(
    net: RewardNet, pairs: list[PairRecord], images: DecodedImages, *, config: TrainerConfig,
    device: torch.device,
) -> tuple[list[ScoredPair], float]:  # fmt: skip
    """Scores of every pair and the mean loss, in eval mode."""
    was_training = net.training
    net.eval()
    scored: list[ScoredPair] = []
    loss_total = 0.0
    for indices in _chunks(list(range(len(pairs))), EVAL_BATCH):
        text, pixels, text_index, targets = _batch(net, pairs, images, indices, device, config)
        with _autocast(config, device):
            mean, log_std = net(text, pixels, text_index)
        mean = mean.float()
        count = len(indices)
        ls0 = ls1 = None
        if log_std is not None:
            log_std = log_std.float()
            ls0, ls1 = log_std[:count], log_std[count:]
        loss = pair_loss(
            _loss_kind(config), mean[:count], mean[count:], targets, ls0, ls1, reduction="sum"
        )
        loss_total += float(loss)
        means = mean.cpu().tolist()
        stds = torch.exp(log_std).cpu().tolist() if log_std is not None else None
        for row, index in enumerate(indices):
            pair = pairs[index]
            scored.append(
                ScoredPair(
                    pair_id=pair.pair_id,
                    label_0=pair.label_0,
                    score_0=means[row],
                    score_1=means[count + row],
                    relations=pair.relations,
                    num_perturbations=pair.num_perturbations,
                    config=pair.config,
                    std_0=stds[row] if stds else None,
                    std_1=stds[count + row] if stds else None,
                )
            )
    net.train(was_training)
    return scored, loss_total / max(1, len(pairs))


def _report_values(prefix: str, report: AccuracyReport, loss: float, scored: list[ScoredPair]):
    values = report.metric_values(prefix)
    values[f"{prefix}/loss"] = loss
    stds = [s for pair in scored for s in (pair.std_0, pair.std_1) if s is not None]
    if stds:
        values[f"{prefix}/mean_std"] = sum(stds) / len(stds)
    return values


class _EarlyStopping:
    def __init__(self, config: TrainerConfig) -> None:
        self.rule = config.early_stopping
        self.best: float | None = None
        self.best_epoch = 0
        self.bad_epochs = 0

    def improved(self, value: float | None, epoch: int) -> bool:
        """Whether this epoch is the best so far (always, without a validation figure)."""
        if value is None:
            self.best_epoch = epoch
            return True
        maximise = self.rule.maximise if self.rule else True
        min_delta = self.rule.min_delta if self.rule else 0.0
        better = (
            self.best is None
            or (maximise and value > self.best + min_delta)
            or (not maximise and value < self.best - min_delta)
        )
        if better:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return better

    def should_stop(self) -> bool:
        return self.rule is not None and self.bad_epochs >= self.rule.patience


def _lr_lambda(total_steps: int):
    warmup = max(1, int(total_steps * WARMUP_FRACTION))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _stop_check(events: Events, dist: Distributed) -> None:
    reason = events.stop_reason()
    if dist.world > 1:
        flag = torch.tensor([1 if reason else 0], device=dist.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() and reason is None:
            reason = "another process was stopped"
    if reason:
        raise Stopped(reason)


def train(
    config: TrainerConfig, *, dataset_dir: Path, output_dir: Path, events: Events
) -> dict[str, Any]:
    """Train, validate each epoch, test the best weights, save everything into `output_dir`.

    Returns the summary (also written to summary.json). Raises `Stopped` when cancelled.
    """
    started = time.monotonic()
    dist = distributed_setup(config)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    seed_everything(config.seed)
    splits = dataset_read(dataset_dir, fmt=config.dataset_format)
    net = model_build(config, train_captions=[pair.caption for pair in splits["train"]])
    sharded = dist.world > 1 and config.vlm is not None and config.vlm.distributed == "fsdp"
    if sharded:  # each rank moves only its shards to its device
        net.shard(dist.device)
    else:
        net.to(dist.device)
    transform = net.transform()
    budget = IMAGE_CACHE_BYTES // 3
    images = {name: DecodedImages(pairs, transform, budget) for name, pairs in splits.items()}
    model: torch.nn.Module = net
    if dist.world > 1 and not sharded:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
        )
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
    accumulate = config.vlm.grad_accum_steps if config.vlm is not None else 1
    train_pairs = splits["train"]
    per_rank = math.ceil(len(train_pairs) / dist.world)
    steps_per_epoch = math.ceil(per_rank / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer_steps = math.ceil(steps_per_epoch / accumulate) * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(optimizer_steps))
    scaler = torch.amp.GradScaler(
        "cuda", enabled=dist.device.type == "cuda" and config.mixed_precision == "fp16"
    )
    log.info(
        "trainer.start backbone=%s head=%s train=%d val=%d test=%d steps=%d device=%s world=%d",
        config.backbone, config.head, len(train_pairs), len(splits["val"]), len(splits["test"]),
        total_steps, dist.device, dist.world,
    )  # fmt: skip
    stopping = _EarlyStopping(config)
    best_state = _state_copy(net, config)
    step = 0
    epochs_run = 0
    val_summary: dict[str, float] = {}
    model.train()
    for epoch in range(1, config.epochs + 1):
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        order = torch.randperm(len(train_pairs), generator=generator).tolist()
        order = (order + order[: per_rank * dist.world - len(order)])[dist.rank :: dist.world]
        mirrored = mirror_mask(
            len(train_pairs), probability=config.hflip, seed=config.seed, epoch=epoch
        )
        if dist.main:
            events.progress(step=step, total_steps=total_steps, epoch=epoch, epochs=config.epochs)
        epoch_loss, epoch_count = 0.0, 0
        batches = list(_chunks(order, config.batch_size))
        optimizer.zero_grad(set_to_none=True)
        for position, indices in enumerate(batches):
            _stop_check(events, dist)
            text, pixels, text_index, targets = _batch(
                net, train_pairs, images["train"], indices, dist.device, config, mirrored
            )
            count = len(indices)
            # accumulation: an optimizer step every `accumulate` batches and at the epoch's
            # end, each batch's loss divided by its group's size; DDP all-reduces only on the
            # group's last backward
            group_start = position - position % accumulate
            group = min(accumulate, len(batches) - group_start)
            last = position == group_start + group - 1
            if sharded:
                net.set_requires_gradient_sync(last)
            sync = nullcontext() if last or dist.world == 1 or sharded else model.no_sync()
            with sync:
                with _autocast(config, dist.device):
                    mean, log_std = model(text, pixels, text_index)
                ls0, ls1 = (
                    (log_std[:count], log_std[count:]) if log_std is not None else (None, None)
                )
                loss = pair_loss(_loss_kind(config), mean[:count], mean[count:], targets, ls0, ls1)
                extra = net.auxiliary_loss_pop()
                total = loss if extra is None else loss + extra
                scaler.scale(total / group).backward()
            if last:
                if config.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(trained, config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            step += 1
            value = loss.detach()
            if dist.world > 1:
                torch.distributed.all_reduce(value)
                value = value / dist.world
            value = float(value)
            epoch_loss += value * count
            epoch_count += count
            if dist.main and step % config.log_every_steps == 0:
                events.metric("train/loss", value, step=step, epoch=epoch)
                if extra is not None:
                    events.metric("train/match_loss", float(extra), step=step, epoch=epoch)
                events.progress(
                    step=step, total_steps=total_steps, epoch=epoch, epochs=config.epochs
                )
        epochs_run = epoch
        stop_now = is_best = False
        if dist.main or sharded:  # sharded: every rank's shard takes part in the forward passes
            events.metric(
                "train/epoch_loss", epoch_loss / max(1, epoch_count), step=step, epoch=epoch
            )
            figure = None
            if splits["val"]:
                scored, val_loss = evaluate(
                    net, splits["val"], images["val"], config=config, device=dist.device
                )
                report = accuracy_report(scored, tie_margin=config.tie_margin)
                values = _report_values("val", report, val_loss, scored)
                events.metrics(values, step=step, epoch=epoch)
                metric = config.early_stopping.metric if config.early_stopping else "val/accuracy"
                figure = values.get(metric)
                log.info(
                    "trainer.epoch.done epoch=%d step=%d val_accuracy=%.4f val_loss=%.4f",
                    epoch, step, report.accuracy or 0.0, val_loss,
                )  # fmt: skip
                if stopping.improved(figure, epoch):
                    val_summary = {"val/accuracy": report.accuracy, "val/loss": val_loss}
            else:
                stopping.improved(None, epoch)
            is_best = stopping.best_epoch == epoch
            stop_now = stopping.should_stop()
        if dist.world > 1:  # rank 0 decides
            flag = torch.tensor([int(stop_now), int(is_best)], device=dist.device)
            torch.distributed.broadcast(flag, src=0)
            stop_now, is_best = bool(flag[0].item()), bool(flag[1].item())
        if is_best and (dist.main or sharded):
            best_state = _state_copy(net, config)
        if stop_now:
            log.info("trainer.early_stop epoch=%d best_epoch=%d", epoch, stopping.best_epoch)
            break
    summary: dict[str, Any] = {}
    if dist.main or sharded:
        _resharded(net).load_state_dict(best_state, strict=config.vlm is None)
        summary = _finish(
            net, splits, images, config=config, device=dist.device, output_dir=output_dir,
            events=events, step=step, epochs_run=epochs_run, best_epoch=stopping.best_epoch,
            val_summary=val_summary, seconds=time.monotonic() - started,
        )  # fmt: skip
    if dist.world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return summary


def _finish(
    net: RewardNet, splits: dict[str, list[PairRecord]], images: dict[str, DecodedImages], *,
    config: TrainerConfig, device: torch.device, output_dir: Path, events: Events, step: int,
    epochs_run: int, best_epoch: int, val_summary: dict[str, float], seconds: float,
) -> dict[str, Any]:  # fmt: skip
    """The test report of the best weights, the checkpoint, the config and the summary."""
    scored, test_loss = evaluate(net, splits["test"], images["test"], config=config, device=device)
    report = accuracy_report(scored, tie_margin=config.tie_margin)
    if scored:
        events.metrics(_report_values("test", report, test_loss, scored), step=step)
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        net.save_gather()  # sharded: this rank's part of the gathered weights, nothing written
        return {}
    net.save(output_dir / CHECKPOINT_DIR)
    (output_dir / CONFIG_FILE).write_text(json.dumps(config.as_json(), indent=1, sort_keys=True))
    evaluation = {
        "split": "test",
        "tie_margin": config.tie_margin,
        "pairs": len(scored),
        "loss": test_loss if scored else None,
        **report.as_json(),
        "scores": [
            {
                "pair_id": pair.pair_id,
                "label_0": pair.label_0,
                "score_0": pair.score_0,
                "score_1": pair.score_1,
                "std_0": pair.std_0,
                "std_1": pair.std_1,
            }
            for pair in scored
        ],
    }
    (output_dir / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=1))
    summary = {
        "backbone": config.backbone,
        "head": config.head,
        "parameters": sum(p.numel() for p in net.parameters()),
        "trainable_parameters": sum(p.numel() for p in net.parameters() if p.requires_grad),
        "train_pairs": len(splits["train"]),
        "val_pairs": len(splits["val"]),
        "test_pairs": len(splits["test"]),
        "steps": step,
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "stopped_early": epochs_run < config.epochs,
        **val_summary,
        "test/accuracy": report.accuracy,
        "seconds": round(seconds, 3),
    }
    (output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, sort_keys=True))
    log.info("trainer.done steps=%d test_accuracy=%s seconds=%.1f", step, report.accuracy, seconds)
    return summary
