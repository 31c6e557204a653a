"""manage.py simulate_annotators: simulated annotators label a queue through the real services.

    manage.py simulate_annotators --queue 3 --bots "8:good:0.92,1:random:0.55,1:left" \
        --answers 200 --seed 1
    manage.py simulate_annotators --queue "Demo: which image follows the prompt?" \
        --bots bots.yaml --max-gold 30 --speed 10 --mode threads

--bots is COUNT:PRESET[:ACCURACY][:NAME=VALUE...] groups (presets: good, random, left, right;
NAME: a profile field) or a JSON (.json) / YAML (.yaml, .yml) file holding a list of
{count, preset, label, accuracy, left_preference, tie_rate, skip_rate, seconds_mean,
seconds_spread}. See annotation/services/simulation.py for what each means.
"""

import json
from pathlib import Path

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import LabelingQueue
from annotation.services.simulation import (
    MODES,
    SimulationReport,
    bot_specs_from_data,
    bot_specs_parse,
    bots_ensure,
    simulation_run,
)
from config.errors import DomainError, NotFound, ValidationFailed

# The services' field names -> this command's options.
OPTIONS = {
    "queue": "--queue",
    "bots": "--bots",
    "answers": "--answers",
    "max_gold": "--max-gold",
    "budget": "--budget",
    "seed": "--seed",
    "speed": "--speed",
    "mode": "--mode",
    "username": "--prefix",
}
FILE_SUFFIXES = (".json", ".yaml", ".yml")


class Command(BaseCommand):
    help = "Run simulated annotators (bots with a set accuracy, bias and speed) on a queue."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queue", required=True, help="the queue's id or name")
        parser.add_argument(
            "--bots",
            required=True,
            help='groups like "8:good:0.92,1:random:0.55,1:left", or a .json/.yaml file',
        )
        parser.add_argument(
            "--answers",
            type=int,
            help="answers per bot in the queue at most, earlier runs' included (a second run "
            "with the same number adds nothing)",
        )
        parser.add_argument(
            "--max-gold", type=int, help="gold answers per bot in the queue at most (as --answers)"
        )
        parser.add_argument(
            "--budget", type=int, help="answers of this run, all bots together, at most"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--speed",
            type=float,
            default=0.0,
            help="0: no waiting (default); 1: the bots' answer times in real time; 10: ten "
            "times faster",
        )
        parser.add_argument("--mode", choices=MODES, default="sequential")
        parser.add_argument(
            "--prefix", help="bot usernames start with this (default: sim<queue id>-)"
        )
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **options) -> None:
        try:
            queue = _queue(options["queue"])
            specs = _specs(options["bots"])
            bots = bots_ensure(queue_id=queue.pk, specs=specs, prefix=options["prefix"])
            report = simulation_run(
                queue_id=queue.pk,
                bots=bots,
                answers=options["answers"],
                max_gold=options["max_gold"],
                budget=options["budget"],
                seed=options["seed"],
                speed=options["speed"],
                mode=options["mode"],
            )
        except DomainError as exc:
            option = OPTIONS.get(exc.field or "", exc.field or "")
            raise CommandError(f"{option}: {exc.detail}" if option else exc.detail) from exc
        if options["json"]:
            self.stdout.write(json.dumps(_report_json(report), indent=1))
        else:
            self.stdout.write(_report_table(queue, report))


def _queue(value: str) -> LabelingQueue:
    queue = None
    if value.isdigit():
        queue = LabelingQueue.objects.filter(pk=int(value)).first()
    queue = queue or LabelingQueue.objects.filter(name=value).first()
    if queue is None:
        raise NotFound(f"no labeling queue has the id or name {value!r}", field="queue")
    return queue


def _specs(value: str):
    if not value.endswith(FILE_SUFFIXES):
        return bot_specs_parse(value)
    path = Path(value)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValidationFailed(f"cannot read {value}: {exc.strerror}", field="bots") from None
    try:
        data = json.loads(text) if value.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = path.suffix[1:].upper()
        raise ValidationFailed(f"{value} is not valid {kind}: {exc}", field="bots") from None
    return bot_specs_from_data(data)


def _report_json(report: SimulationReport) -> dict:
    return {
        "queue": report.queue_id,
        "seed": report.seed,
        "mode": report.mode,
        "judgments": report.judgments,
        "wall_seconds": round(report.wall_seconds, 2),
        "bots": [b.as_dict() for b in report.bots],
    }


def _report_table(queue: LabelingQueue, report: SimulationReport) -> str:
    lines = [
        f"queue {queue.pk} ({queue.name}): {report.judgments} judgments by {len(report.bots)} "
        f"bots in {report.wall_seconds:.1f} s ({report.mode}, seed {report.seed})",
        f"{'bot':<28} {'answers':>7} {'right':>11} {'gold':>9} {'left':>5} {'tie':>4} "
        f"{'skip':>4} {'status':<10} stopped",
    ]
    for b in report.bots:
        sided = b.choices["left"] + b.choices["right"]
        right = f"{b.correct}/{b.with_truth}" if b.with_truth else "-"
        gold = f"{b.gold_correct}/{b.gold_answers}" if b.gold_answers else "-"
        left = f"{b.choices['left'] / sided:.2f}" if sided else "-"
        lines.append(
            f"{b.username:<28} {b.answers:>7} {right:>11} {gold:>9} {left:>5} "
            f"{b.choices['tie']:>4} {b.choices['skip']:>4} {b.status or '-':<10} {b.stopped}"
        )
    return "\n".join(lines)
