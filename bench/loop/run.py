"""The loop, measured: procedural prompts with perturbations -> procedural images (original vs
perturbed) -> simulated annotators -> freeze -> train the built-in model on CPU -> validation
pairwise accuracy on held-out prompts.

    .venv/bin/python bench/loop/run.py                       # the default figure, seed 0
    .venv/bin/python bench/loop/run.py --seed 1000 --seeds 5 # seeds 1000-1004: median, min, max
    .venv/bin/python bench/loop/run.py --prompts 120 --epochs 2 --annotators 1   # smoke

Every stage calls the owning app's services, as the platform runs them:
1. prompts: `prompt_set_create` (single-relation prompts, each with `--per-prompt`
   perturbations: swap, flip or replace);
2. images: a procedural generator config and a campaign (`campaign_create`, `campaign_launch`,
   `--images-per-prompt` render seeds per prompt);
   its batches run in this process (Celery eager mode: the same `generation.render_batch`
   task a GPU worker runs), images stored under content-hash keys in local files;
3. pairs: the labeling engine's counterfactual pair builder (original vs perturbed image, same
   seed, judged against the original prompt);
4. judgments: `--annotators` simulated annotators lease pairs and submit through the labeling
   engine, each agreeing with the intended winner with probability `--agree` (drawn per
   annotator and pair, so the labels do not depend on how the threads interleave);
5. freeze and export: `dataset_snapshot` (Parquet with image bytes; splits by prompt group,
   so validation and test prompts, object pairs included, are never trained on);
6. training: `training_run_start` + `training_run_execute_and_register`, the real launcher: the
   trainer runs as a child process reading the export from storage, metrics streamed into the
   database; the succeeded run registers its reward model.

Creates (dropping it first) the PostgreSQL database --database. Prints a Markdown table and
writes <--out>/result.json; with `--seeds N` each seed runs in a child process into
<--out>/seed-<s>/ and the distribution goes to <--out>/seeds.json.

Same seed, same figures (on one machine, trainer thread count fixed by `--threads`): prompts,
renders, pairs, labels, splits, the trainer's shuffles and mirror draws are all functions of the
seed. What a repeat does not reproduce is time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# Objects whose procedural appearance (shape and colour, from the name) is unique among them.
OBJECTS = [
    "person", "bicycle", "car", "airplane", "bus", "train", "truck", "horse", "cow", "elephant",
    "bear", "giraffe", "umbrella", "suitcase", "bottle", "bowl", "banana", "chair", "bird", "cat",
    "dog", "cup", "book", "backpack",
]  # fmt: skip
RELATIONS = ["left_of", "right_of", "above", "below"]


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _database_fresh(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')


def _setup(args: argparse.Namespace) -> None:
    media = Path(args.out) / "media"
    os.environ.update(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{args.database}",
        MEDIA_ROOT=str(media.resolve()),
        STORAGE_BACKEND="local",
        CELERY_BROKER_URL="memory://",
        CELERY_TASK_ALWAYS_EAGER="1",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
        TRAINING_WORK_DIR=str((Path(args.out) / "work").resolve()),
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)


def _distinct_objects(count: int) -> list[str]:
    from generation_workers.backends.procedural.appearance import appearance_for

    seen, chosen = set(), []
    for name in OBJECTS:
        look = appearance_for(name=name, color=None)
        if (look.shape, look.color) not in seen:
            seen.add((look.shape, look.color))
            chosen.append(name)
    if len(chosen) < count:
        raise SystemExit(f"--objects: at most {len(chosen)} objects look distinct, got {count}")
    return chosen[:count]


def stage_prompts(args: argparse.Namespace):
    from generation_workers.services.prompts import prompt_set_create

    spec = {
        "size": args.prompts,
        "seed": args.seed,
        "vocabulary": _distinct_objects(args.objects),
        "templates": ["geneval", "compbench"],
        "relations": RELATIONS,
        "attributes": {"probability": 0.0},
        "counts": {"probability": 0.0},
        "tiers": {"single": 1.0},
        "perturbations": {"types": ["swap", "flip", "replace"], "per_prompt": args.per_prompt},
    }
    return prompt_set_create(name=f"loop-{uuid.uuid4().hex[:6]}", spec=spec)


def stage_images(args: argparse.Namespace, prompt_set):
    from generation_workers.models import Campaign, Candidate
    from generation_workers.services.campaigns import campaign_create, campaign_launch
    from generation_workers.services.configs import generator_config_procedural_ensure

    config = generator_config_procedural_ensure(
        name=f"procedural-{args.size}", width=args.size, height=args.size, batch_size=64
    )
    campaign = campaign_create(
        name=f"loop-{prompt_set.pk}",
        prompt_set_id=prompt_set.pk,
        config_ids=[config.pk],
        seeds_per_prompt=args.images_per_prompt,
    )
    campaign_launch(campaign_id=campaign.pk)  # batches render on commit (eager mode)
    campaign.refresh_from_db()
    done = Candidate.objects.filter(campaign=campaign, status="done").count()
    assert campaign.status == Campaign.Status.COMPLETED, (campaign.status, done)
    return campaign, done


def stage_pairs(args: argparse.Namespace, campaign):
    from annotation.services.annotators import user_create
    from annotation.services.pairs import pairs_build
    from annotation.services.queues import labeling_queue_create
    from config.roles import Role

    raters = [
        user_create(username=f"loop-rater-{i}", password="loop-rater-1", role=Role.ANNOTATOR,
                    exist_ok=True)
        for i in range(args.annotators)
    ]  # fmt: skip
    queue = labeling_queue_create(
        name=f"loop-{campaign.pk}", overlap=args.annotators, allowed_users=raters, prefetch=20
    )
    counts = pairs_build(
        queue_id=queue.pk, campaign_id=campaign.pk, kind="counterfactual", make_thumbnails=False
    )
    return queue, raters, counts.created


def stage_judgments(args: argparse.Namespace, queue, raters) -> tuple[int, float]:
    """Simulated annotators, working at the same time (a thread each, as people would): lease
    pairs, submit the intended winner with probability `agree`, else the other image.

    Whether annotator i agrees on a pair is drawn from (seed, i, the pair's prompt and images),
    not from a stream consumed in lease order: the threads interleave differently on every run,
    and with one stream per annotator the same seed gave other labels (and other accuracies)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from annotation.models import Pair
    from annotation.services.assignment import pairs_next_for_annotator
    from annotation.services.judgments import judgment_submit

    rows = Pair.objects.filter(queue=queue).values_list(
        "pk",
        "prompt__text",
        "intended_winner__content_sha256",
        "candidate_a__content_sha256",
        "candidate_b__content_sha256",
    )
    intended = {pk: winner for pk, _, winner, _, _ in rows}
    # the prompt and the images in their roles: half the pairs show the same two images as
    # another pair (a swap perturbation renders another prompt's original), judged against
    # the other prompt; their votes must be drawn apart, else label errors come in twos
    identity = {pk: f"{text}:{winner}:{b if a == winner else a}" for pk, text, winner, a, b in rows}

    def annotate(index: int) -> tuple[int, int]:
        rater = raters[index]
        stored = agreed = 0
        try:
            while items := pairs_next_for_annotator(user=rater, queue_id=queue.pk, count=20):
                for item in items:
                    left_wins = item.left.content_sha256 == intended[item.pair_id]
                    draw = random.Random(f"{args.seed}:{index}:{identity[item.pair_id]}")
                    agree = draw.random() < args.agree
                    judgment_submit(
                        user=rater,
                        queue_id=queue.pk,
                        pair_id=item.pair_id,
                        client_submission_id=uuid.uuid4(),
                        choice="left" if left_wins == agree else "right",
                    )
                    stored += 1
                    agreed += agree
        finally:
            connection.close()
        return stored, agreed

    with ThreadPoolExecutor(max_workers=len(raters)) as pool:
        done = list(pool.map(annotate, range(len(raters))))
    stored = sum(n for n, _ in done)
    return stored, sum(a for _, a in done) / max(1, stored)


def stage_freeze(args: argparse.Namespace, queue):
    from training_bridge.datasets.services.snapshots import dataset_snapshot

    return dataset_snapshot(
        dataset_name=f"loop-{queue.pk}",
        filter_spec={"queues": [queue.name]},
        split_spec={"seed": args.seed, "ratios": {"train": 0.8, "val": 0.1, "test": 0.1}},
        formats=["parquet"],
        include_images=True,
        run_now=True,
    )


def stage_train(args: argparse.Namespace, version):
    from training_bridge.orchestration import training_run_execute_and_register
    from training_bridge.training.services.training import training_run_start

    config = {
        "backbone": "builtin",
        "head": args.head,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "image_size": args.size,
        "log_every_steps": 5,
        "early_stopping": {"metric": "val/accuracy", "patience": args.patience},
    }
    if args.threads:
        config["num_threads"] = args.threads
    if args.hflip is not None:
        config["hflip"] = args.hflip
    if args.match_loss is not None:
        config["match_loss"] = args.match_loss
    run = training_run_start(version_id=version.pk, config=config, enqueue=False).run
    return training_run_execute_and_register(run_id=run.pk)


def intended_accuracy(run, version) -> dict[str, float | None]:
    """Accuracy of the final model against the intended winner (not the human label) on the
    test pairs, from the run's evaluation report. Score 0 is the image the export shows first:
    candidate b where the export swapped the pair's sides (`exporters.sides`)."""
    from django.core.files.storage import storages

    from annotation.models import Pair
    from training_bridge.datasets.exporters.sides import sides_swapped

    key = next(a["key"] for a in run.artifacts if a["name"] == "evaluation.json")
    with storages["default"].open(key) as handle:
        report = json.loads(handle.read())
    ids = [s["pair_id"] for s in report["scores"]]
    pairs = Pair.objects.in_bulk(ids)
    hits = []
    for score in report["scores"]:
        pair = pairs[score["pair_id"]]
        first = pair.candidate_b_id if sides_swapped(pair.pk) else pair.candidate_a_id
        hits.append((score["score_0"] > score["score_1"]) == (pair.intended_winner_id == first))
    return {"test_vs_intended": sum(hits) / len(hits) if hits else None, "test_pairs": len(hits)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=1200, help="original prompts")
    parser.add_argument("--per-prompt", type=int, default=2, help="perturbations per prompt")
    parser.add_argument("--images-per-prompt", type=int, default=2, help="render seeds each")
    parser.add_argument("--objects", type=int, default=24, help="object vocabulary size")
    parser.add_argument("--size", type=int, default=64, help="image size (px)")
    parser.add_argument("--annotators", type=int, default=3)
    parser.add_argument("--agree", type=float, default=0.9, help="P(annotator = intended)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=10, help="early-stopping epochs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--head", default="gaussian", choices=["scalar", "gaussian"])
    parser.add_argument("--threads", type=int, default=1, help="trainer threads (0: torch's)")
    parser.add_argument(
        "--hflip", type=float, default=None, help="trainer's mirror share (default: its own)"
    )
    parser.add_argument(
        "--match-loss", type=float, default=None,
        help="the built-in network's matching-loss weight (default: the trainer's own)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="the (first) seed")
    parser.add_argument(
        "--seeds", type=int, default=1, help="loops on seeds --seed .. --seed + N - 1, one after "
        "another (a child process each); prints the median, minimum and maximum",
    )  # fmt: skip
    parser.add_argument("--database", default="bench_loop")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "loop"))
    return parser


def loop_once(args: argparse.Namespace) -> dict:
    """One loop on `args.seed`: prints its tables, writes and returns result.json."""
    Path(args.out).mkdir(parents=True, exist_ok=True)

    load_before = _load()
    started = time.perf_counter()
    _database_fresh(args.database)
    _setup(args)
    setup_seconds = time.perf_counter() - started

    timings: dict[str, float] = {}
    counts: dict[str, object] = {}

    def timed(name: str, fn, *fn_args):
        begin = time.perf_counter()
        result = fn(*fn_args)
        timings[name] = time.perf_counter() - begin
        print(f"{name}: {timings[name]:.1f} s (load {_load()})", flush=True)
        return result

    loop_started = time.perf_counter()
    prompt_set = timed("prompts", stage_prompts, args)
    counts["prompts (with perturbations)"] = prompt_set.prompt_count
    campaign, images = timed("images", stage_images, args, prompt_set)
    counts["images"] = images
    queue, raters, pairs = timed("pairs", stage_pairs, args, campaign)
    counts["pairs"] = pairs
    judged, agreed = timed("judgments", stage_judgments, args, queue, raters)
    counts["judgments"] = judged
    counts["annotator agreement with intended"] = round(agreed, 4)
    version = timed("freeze+export", stage_freeze, args, queue)
    counts["records"] = version.record_count
    counts["splits"] = version.manifest.get("counts", {}).get("split")
    run = timed("training", stage_train, args, version)
    loop_seconds = time.perf_counter() - loop_started
    if run.status != "succeeded":
        print(run.error, run.log_tail, sep="\n")
        raise SystemExit(1)
    summary = run.summary
    result = {
        "command": " ".join(sys.argv),
        "seed": args.seed,
        "load_before": load_before,
        "load_after": _load(),
        "setup_seconds (database + migrate)": round(setup_seconds, 1),
        "loop_seconds": round(loop_seconds, 1),
        "stages": {k: round(v, 1) for k, v in timings.items()},
        "counts": counts,
        "val/accuracy (best epoch, human labels)": summary.get("val/accuracy"),
        "test/accuracy (human labels)": summary.get("test/accuracy"),
        **intended_accuracy(run, version),
        "val_pairs": summary.get("val_pairs"),
        "trainer_config": run.config,
        "best_epoch": summary.get("best_epoch"),
        "epochs_run": summary.get("epochs_run"),
        "steps": summary.get("steps"),
        "train_seconds (trainer)": summary.get("seconds"),
        "cpu_seconds (this process + children)": round(
            sum(
                getattr(resource.getrusage(who), field)
                for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                for field in ("ru_utime", "ru_stime")
            ),
            1,
        ),
    }
    (Path(args.out) / "result.json").write_text(json.dumps(result, indent=1))
    print("\n| stage | seconds |\n|---|---|")
    for name, seconds in timings.items():
        print(f"| {name} | {seconds:.1f} |")
    print(f"| **loop total** | **{loop_seconds:.1f}** |")
    print("\n| figure | value |\n|---|---|")
    for key, value in result.items():
        if key not in ("stages",):
            print(f"| {key} | {value} |")

    return result


FIGURES = (
    ("test/accuracy (human labels)", "test accuracy (human labels)"),
    ("test_vs_intended", "test vs intended winner"),
    ("val/accuracy (best epoch, human labels)", "val accuracy (best epoch)"),
    ("loop_seconds", "loop s"),
)


def loop_seeds(args: argparse.Namespace) -> None:
    """`args.seeds` loops, one child process each (a fresh interpreter, database and output
    folder per seed, so no seed's state reaches the next), then their distribution."""
    import statistics

    results = []
    for seed in range(args.seed, args.seed + args.seeds):
        child = [sys.executable, str(Path(__file__).resolve())]
        for key, value in vars(args).items():
            if key not in ("seed", "seeds", "out") and value is not None:
                child += [f"--{key.replace('_', '-')}", str(value)]
        out = Path(args.out) / f"seed-{seed}"
        child += ["--seed", str(seed), "--out", str(out)]
        print(f"== seed {seed}: {' '.join(child[1:])}", flush=True)
        subprocess.run(child, check=True)
        results.append(json.loads((out / "result.json").read_text()))
    print(
        "\n| seed | val / test pairs | val accuracy (best epoch) | test accuracy (human labels)"
        " | test vs intended | best epoch / run | loop s | load (1-min) before -> after |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['seed']} | {r['val_pairs']} / {r['test_pairs']} "
            f"| {r['val/accuracy (best epoch, human labels)']:.3f} "
            f"| {r['test/accuracy (human labels)']:.3f} | {r['test_vs_intended']:.3f} "
            f"| {r['best_epoch']} / {r['epochs_run']} | {r['loop_seconds']:.1f} "
            f"| {r['load_before'].split()[0]} -> {r['load_after'].split()[0]} |"
        )  # fmt: skip
    distribution = {}
    print("\n| figure | median | min | max |\n|---|---|---|---|")
    for key, name in FIGURES:
        values = [r[key] for r in results]
        distribution[key] = {
            "median": statistics.median(values), "min": min(values), "max": max(values)
        }  # fmt: skip
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in distribution[key].values()) + " |")
    summary = {"command": " ".join(sys.argv), "distribution": distribution, "runs": results}
    (Path(args.out) / "seeds.json").write_text(json.dumps(summary, indent=1))


def main() -> None:
    args = _parser().parse_args()
    if args.seeds < 1:
        raise SystemExit("--seeds: must be at least 1")
    if args.seeds == 1:
        loop_once(args)
    else:
        loop_seeds(args)


if __name__ == "__main__":
    main()
