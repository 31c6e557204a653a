"""The vlm reward model on one GPU: LoRA training and scoring at Qwen2.5-VL-3B's and -7B's shapes.

    bash bench/gpu/run.sh                                   # on the lent GPU machine (README.md)
    python3 bench/gpu/vlm.py --shape all                    # the same, without run.sh's set-up
    .venv/bin/python bench/gpu/vlm.py --shape tiny          # CPU, seconds: the script's own check

For each shape (`7b` first, as its fit is the figure that matters most, then `3b`; `tiny` is the
tests' 2-layer model):

1. build: `vlm_tiny_build(folder, **QWEN_SHAPES[...], dtype="bfloat16", device="cuda")`, random
   weights in the published shapes, saved as a local folder (nothing downloads);
2. train: the trainer's own `train()` (the `vlm` backbone, LoRA r=32 alpha 64 on the language
   model's attention and MLP, bf16 weights, gradient checkpointing, the uncertainty loss) on a
   Parquet export of procedural pairs written here; pairs/s from the steps' own metric events
   after the first few, the peak GPU memory (`torch.cuda.max_memory_allocated`) at the last step;
   a CUDA out-of-memory error is recorded as `fits: false`;
3. score: the checkpoint loaded as the serving process loads it (the scoring engine's
   `ScoringEngine`, which calls the trainer's `reward_model_load`), then per batch size (32, 64):
   the bare forward pass on tensors already on the GPU, the trainer's scorer
   (`RewardScorer.score` on PNG bytes: decode, resize, tokenise, forward) and the engine (one
   client, and 2 client threads at once: PNG bytes handed over, prepared in the request
   threads, batched by the engine's thread), as images/s, and each one's overhead over the bare
   forward pass.

Every stage has a time limit inside `--budget-s` (default 460 s from the script's start: with
Python's start-up the run stays under 8 minutes on one H100); a stage that would not fit in
what is left is skipped and named in `skipped`; a training stage that reaches its limit stops
there (its steps are counted; its scoring then uses a checkpoint of the untrained adapter,
written by the trainer's own `save`). The figures go to stdout as ONE JSON line (the last
line), and to `<out>/result.json`; everything written goes under `--out` (default
bench/out/gpu-vlm), and the model folders are deleted after their shape unless `--keep`.

What differs from a real model: the tokenizer is `vlm_tiny_build`'s byte-level one (one token per
byte), so the instruction and prompt take about 4x the tokens Qwen's tokenizer gives them (a
448 px image is 256 tokens, the text about 330 here against about 80): sequences are ~1.7x as
long as the real model's, and the figures err on the slow, large side.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import logging
import math
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from memory_estimate import TEXT_TOKENS, estimate  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from training_bridge.training.trainer.config import config_parse  # noqa: E402
from training_bridge.training.trainer.events import Events, Stopped  # noqa: E402
from training_bridge.training.trainer.models.vlm_tiny import QWEN_SHAPES  # noqa: E402

log = logging.getLogger("bench.gpu.vlm")

LORA_RANK = 32
WARMUP_STEPS = 3
ENGINE_CLIENTS = 2
# Per shape: planned training steps and batch (pairs), and the stages' time limits in seconds
# (build_s: the least time worth starting the shape with, besides a few steps). The steps are
# planned to end inside train_s (model load and hashing included) on an H100 by the estimate
# in README.md; the limit only guards a slower machine.
PLANS: dict[str, dict[str, Any]] = {
    "7b": {"name": "qwen2.5-vl-7b", "steps": 64, "batch": 8, "image_size": 448,
           "train_s": 150.0, "score_s": 80.0, "build_s": 60.0},
    "3b": {"name": "qwen2.5-vl-3b", "steps": 120, "batch": 8, "image_size": 448,
           "train_s": 100.0, "score_s": 45.0, "build_s": 35.0},
    "tiny": {"name": "tiny", "steps": 6, "batch": 4, "image_size": 56,
             "train_s": 60.0, "score_s": 30.0, "build_s": 5.0},
}  # fmt: skip
SUBJECTS = ("cat", "dog", "cup", "lamp", "book", "vase", "chair", "clock")
RELATIONS = ("to the left of", "to the right of", "above", "below", "in front of", "behind")


class BenchEvents(Events):
    """The trainer's events, plus the time of every step and the peak GPU memory so far; stops
    the run (the trainer's own stop check) once the stage's deadline has passed."""

    def __init__(self, output_dir: Path, *, deadline: float, cuda: bool) -> None:
        super().__init__(output_dir)
        self.deadline = deadline
        self.cuda = cuda
        self.step_times: list[float] = []
        self.peak_bytes: int | None = None
        self.budget_hit = False

    def metric(self, name: str, value: float, *, step: int, epoch: int | None = None) -> None:
        super().metric(name, value, step=step, epoch=epoch)
        if name == "train/loss":  # after the step's optimizer update and loss read-back
            self.step_times.append(time.monotonic())
            if self.cuda:
                self.peak_bytes = torch.cuda.max_memory_allocated()

    def stop_reason(self) -> str | None:
        if time.monotonic() > self.deadline:
            self.budget_hit = True
            return "the bench's time limit for this stage"
        return super().stop_reason()


def _gib(value: int | None) -> float | None:
    return None if value is None else round(value / 1024**3, 2)


def _png(rng: np.random.Generator, size: int) -> bytes:
    """A procedural scene: a plain background and a few coloured boxes and discs."""
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 5))):
        x0, y0 = (int(v) for v in rng.integers(0, size * 3 // 4, 2))
        w, h = (int(v) for v in rng.integers(size // 8, size // 3, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x0 + w, y0 + h), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _caption(rng: np.random.Generator) -> str:
    a, b = rng.choice(len(SUBJECTS), 2, replace=False)
    relation = RELATIONS[int(rng.integers(len(RELATIONS)))]
    return f"a photo of a {SUBJECTS[a]} {relation} a {SUBJECTS[b]}"


def dataset_write(folder: Path, *, train: int, test: int, image_px: int, seed: int) -> Path:
    """A Parquet export (the columns the trainer reads) of `train` and `test` labelled pairs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    (folder / "parquet").mkdir(parents=True, exist_ok=True)
    pair_id = 0
    for split, count in (("train", train), ("test", test)):
        rows: dict[str, list[Any]] = {key: [] for key in (
            "caption", "jpg_0", "jpg_1", "label_0", "has_label", "pair_id", "relations",
            "num_perturbations", "model_0", "model_1")}  # fmt: skip
        for _ in range(count):
            pair_id += 1
            rows["caption"].append(_caption(rng))
            rows["jpg_0"].append(_png(rng, image_px))
            rows["jpg_1"].append(_png(rng, image_px))
            rows["label_0"].append(float(rng.choice([1.0, 0.0, 0.5], p=[0.45, 0.45, 0.1])))
            rows["has_label"].append(True)
            rows["pair_id"].append(pair_id)
            rows["relations"].append(["left_of"])
            rows["num_perturbations"].append(int(rng.integers(0, 3)))
            rows["model_0"].append("procedural")
            rows["model_1"].append("procedural")
        pq.write_table(pa.table(rows), folder / "parquet" / f"{split}-0.parquet")
    return folder


def model_build(shape: str, folder: Path, *, cuda: bool) -> Path:
    from training_bridge.training.trainer.models.vlm_tiny import vlm_tiny_build

    if shape == "tiny":
        return vlm_tiny_build(folder, seed=0)
    return vlm_tiny_build(
        folder, **QWEN_SHAPES[PLANS[shape]["name"]], dtype="bfloat16", seed=0,
        device="cuda" if cuda else "cpu",
    )  # fmt: skip


def train_config(model: Path, plan: dict[str, Any], *, cuda: bool, epochs: int) -> dict:
    return {
        "backbone": "vlm", "model_path": str(model), "lora_rank": LORA_RANK,
        "lora_alpha": 2.0 * LORA_RANK, "mixed_precision": "bf16", "gradient_checkpointing": True,
        "batch_size": plan["batch"], "epochs": epochs, "image_size": plan["image_size"],
        "device": "auto", "seed": 0, "log_every_steps": 1,
        "num_threads": None if cuda else 1,
    }  # fmt: skip


def train_stage(
    model: Path, dataset: Path, out: Path, plan: dict[str, Any], *, cuda: bool, limit_s: float
) -> dict[str, Any]:  # fmt: skip
    """The trainer's `train()` for `plan["steps"]` steps (or until `limit_s`); its figures."""
    from training_bridge.training.trainer.loop import train

    steps_per_epoch = plan["train_pairs"] // plan["batch"]
    epochs = math.ceil(plan["steps"] / steps_per_epoch)
    config = config_parse(train_config(model, plan, cuda=cuda, epochs=epochs))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.monotonic()
    events = BenchEvents(out, deadline=started + limit_s, cuda=cuda)
    result: dict[str, Any] = {"batch_pairs": plan["batch"], "steps_planned": epochs *
                              steps_per_epoch, "lora_rank": LORA_RANK}  # fmt: skip
    summary: dict[str, Any] = {}
    try:
        summary = train(config, dataset_dir=dataset, output_dir=out, events=events)
        result["fits"] = True
    except Stopped:
        result["fits"] = True
    except torch.OutOfMemoryError as exc:
        result["fits"] = False
        result["error"] = str(exc).splitlines()[0][:300]
    finally:
        events.close()
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    times = events.step_times
    result.update(
        steps=len(times),
        stopped_at_limit=events.budget_hit,
        seconds=round(time.monotonic() - started, 1),
        to_first_step_s=round(times[0] - started, 1) if times else None,
        peak_gpu_memory_gib=_gib(events.peak_bytes),
        trainable_parameters=summary.get("trainable_parameters"),
        parameters=summary.get("parameters"),
        checkpoint=(out / "checkpoint" / "reward_model.json").is_file(),
    )
    warm = min(WARMUP_STEPS, max(0, len(times) - 2))
    if len(times) - warm >= 2:
        span = times[-1] - times[warm]
        result["s_per_step"] = round(span / (len(times) - 1 - warm), 4)
        result["pairs_per_s"] = round(plan["batch"] * (len(times) - 1 - warm) / span, 2)
    return result


def checkpoint_fresh(model: Path, out: Path, plan: dict[str, Any], *, cuda: bool) -> Path:
    """A checkpoint of the untrained adapter and head (the trainer's `model_build` and `save`),
    for scoring when training stopped before writing its own."""
    from training_bridge.training.trainer.models import model_build as trainer_model_build

    config = config_parse(train_config(model, plan, cuda=cuda, epochs=1))
    net = trainer_model_build(config, train_captions=[])
    folder = out / "checkpoint"
    net.save(folder)
    del net
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return folder


def _sync(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


def _rate(fn, images: int, *, cuda: bool, deadline: float, repeats: int) -> float | None:
    """Images/s of `fn` (median of up to `repeats` timed calls after one warm-up call)."""
    if time.monotonic() > deadline:
        return None
    fn()
    _sync(cuda)
    times = []
    for _ in range(repeats):
        if times and time.monotonic() > deadline:
            break
        started = time.perf_counter()
        fn()
        _sync(cuda)
        times.append(time.perf_counter() - started)
    return round(images / statistics.median(times), 2)


def _overhead(rate: float | None, bare: float | None) -> float | None:
    return None if rate is None or not bare else round(100.0 * (1.0 - rate / bare), 2)


def score_stage(
    checkpoint: Path, batches: list[int], *, cuda: bool, limit_s: float, image_px: int, seed: int
) -> dict[str, Any]:  # fmt: skip
    deadline = time.monotonic() + limit_s
    device = "cuda" if cuda else "cpu"
    result: dict[str, Any] = {}
    started = time.monotonic()
    try:
        from training_bridge.reward_models.scoring.engine import ModelRef, ScoringEngine
    except ImportError as exc:  # the engine imports the project's Django and Celery
        engine = loaded = None
        result["engine_skipped"] = f"the scoring engine does not import here: {exc}"
        from training_bridge.training.trainer.checkpoint import reward_model_load

        scorer = reward_model_load(checkpoint, device=device)
    else:
        engine = ScoringEngine(fetch=lambda ref: checkpoint, device=device, max_batch=max(batches))
        loaded = engine.model(ModelRef(id=1, name="bench", version=1, artifact_key="local"))
        scorer = loaded.scorer
    result["load_s"] = round(time.monotonic() - started, 1)
    net = scorer.net
    rng = np.random.default_rng(seed)
    most = max(batches)
    pngs = [_png(rng, image_px) for _ in range(most * ENGINE_CLIENTS)]
    captions = [_caption(rng) for _ in range(8)]
    captions = [captions[i % len(captions)] for i in range(len(pngs))]
    for batch in batches:
        if time.monotonic() > deadline:
            result[str(batch)] = {"skipped": "the stage's time limit"}
            continue
        try:
            result[str(batch)] = _score_batch(
                batch, net=net, scorer=scorer, engine=engine, loaded=loaded, pngs=pngs,
                captions=captions, cuda=cuda, deadline=deadline,
            )  # fmt: skip
        except torch.OutOfMemoryError as exc:
            result[str(batch)] = {"skipped": f"out of GPU memory: {str(exc).splitlines()[0]}"}
            gc.collect()
            torch.cuda.empty_cache()
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def _score_batch(
    batch: int, *, net: Any, scorer: Any, engine: Any, loaded: Any, pngs: list[bytes],
    captions: list[str], cuda: bool, deadline: float,
) -> dict[str, Any]:  # fmt: skip
    """Images/s at `batch`: bare forward, the trainer's scorer, the engine (1 and 2 clients)."""
    repeats = 3 if cuda else 1
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    chunk, texts = pngs[:batch], captions[:batch]
    unique = list(dict.fromkeys(texts))
    position = {caption: i for i, caption in enumerate(unique)}
    with torch.no_grad():
        text = net.texts_encode(unique, scorer.device)
        pixels = net.pixels(np.stack([scorer.transform(p) for p in chunk]), scorer.device)
        index = torch.tensor([position[c] for c in texts], device=scorer.device)

    def bare(text=text, pixels=pixels, index=index) -> None:
        with torch.no_grad():
            net(text, pixels, index)

    figures: dict[str, Any] = {}
    figures["forward_img_s"] = _rate(bare, batch, cuda=cuda, deadline=deadline, repeats=repeats)
    figures["scorer_img_s"] = _rate(
        lambda chunk=chunk, texts=texts, b=batch: scorer.score(texts, chunk, batch_size=b),
        batch, cuda=cuda, deadline=deadline, repeats=repeats,
    )  # fmt: skip
    if engine is not None:
        engine.batcher.max_batch = batch
        figures["engine_img_s"] = _rate(
            lambda chunk=chunk, texts=texts: engine.score(loaded, texts, chunk),
            batch, cuda=cuda, deadline=deadline, repeats=repeats,
        )  # fmt: skip

        def clients(batch=batch) -> None:
            errors: list[BaseException] = []

            def one(k: int) -> None:
                part = slice(k * batch, (k + 1) * batch)
                try:
                    engine.score(loaded, captions[part], pngs[part])
                except BaseException as exc:  # noqa: BLE001 - raised again below
                    errors.append(exc)

            threads = [threading.Thread(target=one, args=(k,)) for k in range(ENGINE_CLIENTS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if errors:  # a client's failure is the measurement's, not a silent fast round
                raise errors[0]

        figures[f"engine_{ENGINE_CLIENTS}_clients_img_s"] = _rate(
            clients, batch * ENGINE_CLIENTS, cuda=cuda, deadline=deadline, repeats=repeats
        )
    bare_rate = figures["forward_img_s"]
    for key in list(figures):
        if key != "forward_img_s" and key.endswith("_img_s"):
            figures[key.removesuffix("_img_s") + "_overhead_pct"] = _overhead(
                figures[key], bare_rate
            )
    figures["peak_gpu_memory_gib"] = _gib(torch.cuda.max_memory_allocated()) if cuda else None
    return figures


def shape_run(
    shape: str, out: Path, *, cuda: bool, deadline: float, batches: list[int], keep: bool,
    steps: int | None, batch: int | None,
) -> dict[str, Any]:  # fmt: skip
    plan = dict(PLANS[shape])
    if steps:
        plan["steps"] = steps
    if batch:
        plan["batch"] = batch
    plan["train_pairs"] = plan["batch"] * (8 if shape != "tiny" else 2)
    result: dict[str, Any] = {"shape": plan["name"], "image_size": plan["image_size"],
                              "skipped": []}  # fmt: skip
    if shape != "tiny":
        result["published_shape"] = QWEN_SHAPES[plan["name"]]
        result["estimated_train_gib"] = round(
            estimate(QWEN_SHAPES[plan["name"]], batch_pairs=plan["batch"],
                     text_tokens=TEXT_TOKENS["bench tokenizer"], rank=LORA_RANK)["total"], 1
        )  # fmt: skip
    need = plan["build_s"] + 30.0
    if deadline - time.monotonic() < need:
        left = deadline - time.monotonic()
        result["skipped"].append(
            f"the whole shape: {left:.0f} s left, under the {need:.0f} s a build and a few "
            "steps need"
        )
        return result
    folder = out / shape
    shutil.rmtree(folder, ignore_errors=True)
    image_px = 512 if shape != "tiny" else 64
    try:
        started = time.monotonic()
        model = model_build(shape, folder / "model", cuda=cuda)
        result["build_s"] = round(time.monotonic() - started, 1)
        result["model_gib_on_disk"] = round(
            sum(f.stat().st_size for f in model.iterdir() if f.is_file()) / 1024**3, 2
        )
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        dataset = dataset_write(folder / "dataset", train=plan["train_pairs"], test=plan["batch"],
                                image_px=image_px, seed=1)  # fmt: skip
        left = deadline - time.monotonic()
        train_limit = min(plan["train_s"], left - plan["score_s"])
        run_dir = folder / "run"
        result["train"] = train_stage(model, dataset, run_dir, plan, cuda=cuda,
                                      limit_s=max(train_limit, 10.0))  # fmt: skip
        if not result["train"]["fits"]:
            result["skipped"].append("scoring: the training run did not fit in GPU memory")
            return result
        checkpoint = run_dir / "checkpoint"
        if not result["train"]["checkpoint"]:
            if deadline - time.monotonic() < plan["score_s"] * 0.75:
                result["skipped"].append("scoring: training reached its limit and too little time "
                                         "is left to write an untrained checkpoint")  # fmt: skip
                return result
            result["score_checkpoint"] = "untrained adapter (training reached its time limit)"
            checkpoint = checkpoint_fresh(model, run_dir, plan, cuda=cuda)
        left = deadline - time.monotonic()
        if left < plan["score_s"] * 0.4:
            result["skipped"].append(f"scoring: {left:.0f} s left")
            return result
        result["score"] = score_stage(checkpoint, batches, cuda=cuda,
                                      limit_s=min(plan["score_s"], left), image_px=image_px,
                                      seed=2)  # fmt: skip
    except torch.OutOfMemoryError as exc:
        result["skipped"].append(f"out of GPU memory: {str(exc).splitlines()[0][:300]}")
    finally:
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        if not keep:
            shutil.rmtree(folder / "model", ignore_errors=True)
    return result


def _versions() -> dict[str, str | None]:
    import importlib.metadata

    found: dict[str, str | None] = {}
    for name in ("torch", "transformers", "peft", "accelerate"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=("all", "7b", "3b", "tiny"), default="all")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=460.0,
        help="the whole run's limit; stages that do not fit are skipped",
    )
    parser.add_argument("--batches", default="32,64", help="scoring batch sizes")
    parser.add_argument("--steps", type=int, default=None, help="training steps (per shape)")
    parser.add_argument("--batch", type=int, default=None, help="training batch, in pairs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "gpu-vlm")
    parser.add_argument("--keep", action="store_true", help="keep the model folders")
    args = parser.parse_args(argv)  # fmt: skip
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")  # fmt: skip
    cuda = torch.cuda.is_available()
    if args.shape != "tiny" and not cuda:
        sys.stderr.write("bench/gpu/vlm.py: the 3b and 7b shapes need a CUDA GPU; on a CPU run "
                         "--shape tiny\n")  # fmt: skip
        return 2
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        sys.stderr.write(f"--batches: a comma-separated list of integers, got {args.batches!r}\n")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    deadline = started + args.budget_s
    shapes = ["7b", "3b"] if args.shape == "all" else [args.shape]
    result: dict[str, Any] = {
        "bench": "gpu-vlm",
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "gpu_memory_gib": _gib(torch.cuda.get_device_properties(0).total_memory) if cuda else None,
        "versions": _versions(),
        "budget_s": args.budget_s,
        "shapes": {},
    }
    for shape in shapes:
        log.info("bench.gpu.shape.start shape=%s left=%.0fs", shape, deadline - time.monotonic())
        result["shapes"][shape] = shape_run(
            shape, args.out, cuda=cuda, deadline=deadline, batches=batches, keep=args.keep,
            steps=args.steps, batch=args.batch,
        )  # fmt: skip
    seven = result["shapes"].get("7b", {}).get("train")
    result["fits_7b_one_gpu"] = (
        {"batch_pairs": seven["batch_pairs"], "fits": seven["fits"],
         "peak_gpu_memory_gib": seven["peak_gpu_memory_gib"]} if seven else None
    )  # fmt: skip
    result["wall_s"] = round(time.monotonic() - started, 1)
    line = json.dumps(result, sort_keys=True)
    (args.out / "result.json").write_text(line + "\n")
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
