"""Planted bad annotators: does the auto-pause find them, and only them?

    .venv/bin/python bench/qc/planted.py --seeds 10 --label defaults
    .venv/bin/python bench/qc/planted.py --seeds 10 --pause-accuracy 0.8 --label pause-0.8

For each seed: a fresh queue of counterfactual pairs with a gold rate (0.1) and gold pairs, and
10 bots through the real next/submit (annotation.services.simulation, sequential, seeded): 8
good ones (90-95% right) and 2 bad ones (55% right; always "left"). Each bot answers until it
has given --max-gold gold answers (30), is paused, or runs out of pairs. The queue's pause rule
is the engine's with its defaults unless --pause-accuracy / --pause-min-gold say otherwise.

Reports recall (bad bots paused / bad bots), false pauses (good bots paused), the gold answers
a bad bot had given when paused, and each bot kind's gold accuracy; writes
bench/out/qc-planted-<label>.json. Runs at nice 19 (world.polite).
"""

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from world import OUT, counterfactual_queue, database_ready, polite  # noqa: E402

BOTS = "2:good:0.90,2:good:0.92,2:good:0.93,2:good:0.95,1:random:0.55,1:left"
BAD = ("random", "left")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--bots", default=BOTS, help="simulate_annotators' --bots format")
    parser.add_argument("--max-gold", type=int, default=30)
    parser.add_argument("--gold-rate", type=float, default=0.1)
    parser.add_argument("--pause-accuracy", type=float, help="default: the engine's")
    parser.add_argument("--pause-min-gold", type=int, help="default: the engine's")
    parser.add_argument("--label", default="defaults")
    parser.add_argument("--db", default="sp_bench_qc")
    parser.add_argument("--fresh", action="store_true", help="drop and remake the database")
    args = parser.parse_args()
    polite()
    database_ready(db=args.db, fresh=args.fresh)

    from annotation.models import AnnotatorQueueState, LabelingQueue
    from annotation.services.simulation import bot_specs_parse, bots_ensure, simulation_run

    settings = {"gold_rate": args.gold_rate, "overlap": 10}  # every bot may judge every pair
    if args.pause_accuracy is not None:
        settings["pause_accuracy"] = args.pause_accuracy
    if args.pause_min_gold is not None:
        settings["pause_min_gold"] = args.pause_min_gold
    # Enough pairs for a bot to reach --max-gold gold answers (gold comes about every
    # 1/gold_rate items, give or take half of that).
    pairs = math.ceil(args.max_gold / args.gold_rate * 1.3)
    specs = bot_specs_parse(args.bots)
    runs = []
    started = time.monotonic()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        queue = counterfactual_queue(
            name=f"qc-planted-{args.label}-{seed}",
            pairs=pairs,
            gold=args.max_gold + 10,
            seed=seed,
            **settings,
        )
        bots = bots_ensure(queue_id=queue.pk, specs=specs, prefix=f"qc{queue.pk}-")
        report = simulation_run(queue_id=queue.pk, bots=bots, max_gold=args.max_gold, seed=seed)
        states = {
            s.annotator.username: s
            for s in AnnotatorQueueState.objects.filter(queue=queue).select_related("annotator")
        }
        rows = []
        for b in report.bots:
            state = states.get(b.username)
            rows.append(
                {
                    "bot": b.username,
                    "kind": b.profile.label,
                    "accuracy": b.profile.accuracy,
                    "bad": b.profile.label in BAD,
                    "paused": bool(state and state.status == "paused"),
                    "gold_answers": state.gold_answers if state else 0,
                    "gold_correct": state.gold_correct if state else 0,
                    "answers": b.answers,
                    "stopped": b.stopped,
                    "reason": state.reason if state else "",
                }
            )
        runs.append({"seed": seed, "queue": queue.pk, "bots": rows})
        bad = [r for r in rows if r["bad"]]
        good = [r for r in rows if not r["bad"]]
        gold = ", ".join(f"{r['gold_correct']}/{r['gold_answers']}" for r in bad)
        print(
            f"seed {seed}: bad paused {sum(r['paused'] for r in bad)}/{len(bad)} (gold {gold}), "
            f"good paused {sum(r['paused'] for r in good)}/{len(good)}",
            flush=True,
        )
    queue_settings = LabelingQueue.objects.filter(pk=runs[-1]["queue"]).values(
        "gold_rate", "pause_accuracy", "pause_min_gold"
    )[0]
    bad = [r for run in runs for r in run["bots"] if r["bad"]]
    good = [r for run in runs for r in run["bots"] if not r["bad"]]
    caught = [r for r in bad if r["paused"]]
    summary = {
        "label": args.label,
        "seeds": [run["seed"] for run in runs],
        "bots": args.bots,
        "max_gold": args.max_gold,
        "queue": queue_settings,
        "recall": len(caught) / len(bad),
        "bad_paused": len(caught),
        "bad": len(bad),
        "false_pauses": sum(r["paused"] for r in good),
        "good": len(good),
        "gold_to_pause": {
            "median": statistics.median(r["gold_answers"] for r in caught) if caught else None,
            "max": max((r["gold_answers"] for r in caught), default=None),
        },
        "missed": [
            {k: r[k] for k in ("bot", "gold_correct", "gold_answers", "stopped")}
            for r in bad
            if not r["paused"]
        ],
        "gold_accuracy_by_kind": {
            kind: _share(run_rows)
            for kind, run_rows in _by_kind([r for run in runs for r in run["bots"]]).items()
        },
        "seconds": round(time.monotonic() - started, 1),
        "runs": runs,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"qc-planted-{args.label}.json").write_text(json.dumps(summary, indent=1))
    q = queue_settings
    print(
        f"{args.label}: {len(runs)} seeds, gold rate {q['gold_rate']}, pause below "
        f"{q['pause_accuracy']} after {q['pause_min_gold']} gold, at most {args.max_gold} gold "
        f"answers each"
    )
    print(
        f"  recall {summary['recall']:.0%} ({len(caught)}/{len(bad)}), false pauses "
        f"{summary['false_pauses']}/{len(good)}, gold answers to pause median "
        f"{summary['gold_to_pause']['median']} max {summary['gold_to_pause']['max']}"
    )
    for kind, share in summary["gold_accuracy_by_kind"].items():
        print(f"  gold accuracy {kind:<14} {share:.3f}")
    for miss in summary["missed"]:
        print(f"  missed {miss}")
    print(f"  {summary['seconds']} s")


def _by_kind(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(f"{r['kind']}:{r['accuracy']}", []).append(r)
    return out


def _share(rows: list[dict]) -> float:
    answers = sum(r["gold_answers"] for r in rows)
    return sum(r["gold_correct"] for r in rows) / answers if answers else float("nan")


if __name__ == "__main__":
    main()
