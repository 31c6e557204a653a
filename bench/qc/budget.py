"""Same labeling budget, two ways to spend it: fixed overlap 3 + majority, against adaptive
overlap (2 votes, up to 5 while the leader leads by fewer than 2) + trust-weighted votes or
Dawid-Skene.

    .venv/bin/python bench/qc/budget.py --seeds 5

For each seed, two fresh queues of the same counterfactual pairs (original prompt's image vs
perturbed prompt's image: the intended winner is known) with the same gold pairs and gold rate
(0.1, the engine's pause rule), labeled by the same mixed-quality bots (annotation.services.
simulation, sequential, seeded) through the real next/submit:
- fixed: overlap 3, until every pair has its 3 votes; its answers, gold ones included, are the
  budget;
- adaptive: overlap 2, overlap_max 5, adaptive_margin 2, until done or the same budget is spent.
Each regular pair's label then comes from the datasets' aggregation module, called directly
(training_bridge.datasets.aggregation: aggregator_options_parse / aggregator_build, a VoteTable
for the fitted label models; votes read from the judgments as the dataset selection maps them:
left/right through the presentation order to a/b, skips not counted): majority on both, and
trust_weighted (each annotator's gold posterior in the queue, AnnotatorQueueState.trust) and
trust_weighted with log-odds weights, and dawid_skene (gold pairs' answers given to the model
as known) on both. Reported: the share of
regular pairs whose label is the intended winner (unlabelled pairs and ties count as not), the
share labelled, and the answers spent. Writes bench/out/qc-budget-<label>.json.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from world import OUT, counterfactual_queue, database_ready, polite  # noqa: E402

BOTS = [
    {"count": 3, "preset": "good", "accuracy": 0.95, "label": "expert"},
    {"count": 3, "preset": "good", "accuracy": 0.85, "label": "fair"},
    {"count": 2, "preset": "good", "accuracy": 0.7, "label": "weak"},
    {"count": 1, "preset": "random", "accuracy": 0.55},
    {"count": 1, "preset": "left"},
]
ARMS = {
    "fixed": {"overlap": 3},
    "adaptive": {"overlap": 2, "overlap_max": 5, "adaptive_margin": 2},
}
# (name in the report, aggregator, its options as a filter spec gives them)
AGGREGATORS = {
    "majority": ("majority", None),
    "trust_weighted": ("trust_weighted", None),
    "trust_log_odds": ("trust_weighted", {"weighting": "log_odds"}),
    "dawid_skene": ("dawid_skene", None),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--gold", type=int, default=60)
    parser.add_argument("--gold-rate", type=float, default=0.1)
    parser.add_argument("--bots", help="a JSON list of bot groups (default: BOTS)")
    parser.add_argument("--label", default="default")
    parser.add_argument("--db", default="sp_bench_qc")
    parser.add_argument("--fresh", action="store_true", help="drop and remake the database")
    args = parser.parse_args()
    polite()
    database_ready(db=args.db, fresh=args.fresh)

    from annotation.services.simulation import bot_specs_from_data, bots_ensure, simulation_run

    specs = bot_specs_from_data(json.loads(args.bots) if args.bots else BOTS)
    started = time.monotonic()
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        run = {"seed": seed}
        budget = None
        for arm, settings in ARMS.items():
            queue = counterfactual_queue(
                name=f"qc-budget-{args.label}-{seed}-{arm}",
                pairs=args.pairs,
                gold=args.gold,
                seed=seed,
                gold_rate=args.gold_rate,
                **settings,
            )
            bots = bots_ensure(queue_id=queue.pk, specs=specs, prefix=f"qc{queue.pk}-")
            report = simulation_run(queue_id=queue.pk, bots=bots, seed=seed, budget=budget)
            spent = report.judgments
            if budget is None:
                budget = spent
            run[arm] = {
                "queue": queue.pk,
                "answers": spent,
                "paused": [b.username for b in report.bots if b.status == "paused"],
                "labels": labels_scored(queue.pk),
            }
        runs.append(run)
        line = ", ".join(
            f"{arm} ({run[arm]['answers']} answers) "
            + " ".join(f"{n} {run[arm]['labels'][n]['correct']:.3f}" for n in AGGREGATORS)
            for arm in ARMS
        )
        print(f"seed {seed}: {line}", flush=True)
    summary = {
        "label": args.label,
        "seeds": [r["seed"] for r in runs],
        "pairs": args.pairs,
        "gold": args.gold,
        "gold_rate": args.gold_rate,
        "bots": [vars(s.profile) | {"count": s.count} for s in specs],
        "arms": ARMS,
        "mean": {
            arm: {
                "answers": statistics.mean(r[arm]["answers"] for r in runs),
                **{
                    name: {
                        key: statistics.mean(r[arm]["labels"][name][key] for r in runs)
                        for key in ("correct", "labelled")
                    }
                    for name in AGGREGATORS
                },
            }
            for arm in ARMS
        },
        "seconds": round(time.monotonic() - started, 1),
        "runs": runs,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"qc-budget-{args.label}.json").write_text(json.dumps(summary, indent=1))
    print(
        f"{args.label}: {len(runs)} seeds, {args.pairs} pairs + {args.gold} gold, gold rate "
        f"{args.gold_rate}; share of pairs labelled with the intended winner (labelled share):"
    )
    for arm in ARMS:
        m = summary["mean"][arm]
        cells = "  ".join(
            f"{name} {m[name]['correct']:.3f} ({m[name]['labelled']:.3f})" for name in AGGREGATORS
        )
        print(f"  {arm:<9} {m['answers']:>7.0f} answers   {cells}")
    print(f"  {summary['seconds']} s")


def labels_scored(queue_id: int) -> dict[str, dict[str, float]]:
    """Per aggregator: the share of the queue's regular pairs labelled with their intended
    winner, and the share labelled at all (a or b: a tie or no label is no answer here)."""
    from annotation.models import AnnotatorQueueState, Judgment, Pair
    from training_bridge.datasets.aggregation.aggregators import (
        aggregator_build,
        aggregator_options_parse,
    )
    from training_bridge.datasets.aggregation.labels import PairVotes
    from training_bridge.datasets.aggregation.votes import VoteTable

    pairs = {
        pk: (prompt, a, b, gold, "a" if winner == a else "b", gold_winner)
        for pk, prompt, a, b, gold, winner, gold_winner in Pair.objects.filter(
            queue_id=queue_id
        ).values_list(
            "pk",
            "prompt_id",
            "candidate_a_id",
            "candidate_b_id",
            "is_gold",
            "intended_winner_id",
            "gold_winner_id",
        )
    }
    trust = dict(
        AnnotatorQueueState.objects.filter(queue_id=queue_id, trust__isnull=False).values_list(
            "annotator_id", "trust"
        )
    )
    votes: dict[int, list[tuple[str, int, bool]]] = {}
    rows = (
        Judgment.objects.filter(pair__queue_id=queue_id)
        .exclude(choice="skip")
        .order_by("pair_id", "id")
        .values_list("pair_id", "choice", "left_candidate_id", "annotator_id")
    )
    for pair_id, choice, left, annotator in rows:
        a = pairs[pair_id][1]
        left_is_a = left == a
        vote = choice
        if choice in ("left", "right"):
            vote = "a" if (choice == "left") == left_is_a else "b"
        votes.setdefault(pair_id, []).append((vote, annotator, left_is_a))
    table = VoteTable()
    for pk, (prompt, a, b, gold, _, gold_winner) in sorted(pairs.items()):
        known = ("a" if gold_winner == a else "b") if gold else None
        table.pair_add(pair_id=pk, prompt_id=prompt, candidate_a=a, candidate_b=b, known=known)
        for kind, annotator, left_is_a in votes.get(pk, []):
            table.vote_add(pair_id=pk, annotator_id=annotator, vote=kind, left_is_a=left_is_a)
    regular = [pk for pk, row in pairs.items() if not row[3]]
    scored = {}
    for name, (kind, options) in AGGREGATORS.items():
        aggregator = aggregator_build(*aggregator_options_parse(kind, options))
        if aggregator.fitted:
            aggregator.fit(table)
        correct = labelled = 0
        for pk in regular:
            given = votes.get(pk, [])
            result = aggregator.aggregate(
                PairVotes(
                    pair_id=pk,
                    votes=tuple(v[0] for v in given),
                    annotators=tuple(v[1] for v in given),
                    trust=trust,
                )
            )
            labelled += result.label in ("a", "b")
            correct += result.label == pairs[pk][4]
        scored[name] = {"correct": correct / len(regular), "labelled": labelled / len(regular)}
    return scored


if __name__ == "__main__":
    main()
