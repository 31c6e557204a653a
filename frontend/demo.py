"""The demo: accounts and data that show the whole loop.

prompts -> procedural images (rendered by the background worker) -> counterfactual pairs in a
labeling queue with a gold rate (a tenth of the pairs are gold: procedural renders whose
relations the renderer checked) -> simulated annotators through the labeling services
(annotation/services/simulation.py): three careful ones ("demo-bot-01..03-good", right 92% of
the time) and one careless one ("demo-bot-04-left", always "left", which the gold pairs give
away: the queue auto-pauses it), so the lead's dashboard has agreement, gold accuracy and a
paused annotator to show; they complete all but about a hundred pairs, left to the human demo
annotator -> a frozen, exported dataset version with a test split -> a short reward-model
training run on the worker -> its reward model promoted, so the scoring API serves it. The
prompts use a few objects that the procedural renderer draws distinctly and the four
directional relations, with enough of them that the model beats chance on the test split (see
it in the admin's compare).

Each step calls the owning app's services, exactly as the admin and the API do, and seeds only
what is missing: a second `make demo` reuses what the first one made and never undoes what a
user did since (a changed password or role, a cancelled run, another model promoted, a bot
resumed). The bots' answer bound counts their earlier answers, so seeding again adds none.
"""

import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from annotation.models import LabelingQueue, Pair
from annotation.services.annotators import user_create
from annotation.services.pairs import pairs_build
from annotation.services.queues import labeling_queue_create
from annotation.services.simulation import (
    PRESETS,
    BotSpec,
    SimulationReport,
    bots_ensure,
    simulation_run,
)
from config.errors import DomainError, ValidationFailed
from config.roles import Role
from generation_workers.models import Campaign, PromptSet
from generation_workers.services.campaigns import campaign_ensure_launched
from generation_workers.services.configs import generator_config_procedural_ensure
from generation_workers.services.prompts import prompt_set_create
from training_bridge.datasets.services.snapshots import dataset_snapshot
from training_bridge.models import DatasetExport, DatasetVersion, RewardModel, TrainingRun
from training_bridge.reward_models.services.registry import reward_model_promote
from training_bridge.training.services.training import training_run_demo_start

log = logging.getLogger(__name__)

DEMO_ACCOUNTS = [("demo-lead", Role.LEAD), ("demo-annotator", Role.ANNOTATOR), ("demo-ml", Role.ML)]
DEMO_BOT_PREFIX = "demo-bot-"
DEMO_BOTS = [BotSpec(count=3, profile=PRESETS["good"]), BotSpec(count=1, profile=PRESETS["left"])]
# Pairs the bots leave to the human demo annotator: they fill the others' votes (the queue
# serves pairs closest to completion first, so those stay fresh).
HUMAN_PAIRS = 100
DEMO_QUALITY = {"gold_rate": 0.1}  # the engine's pause rule as it comes
DEMO_GOLD_SHARE = 0.1
DEMO_QUEUE = "Demo: which image follows the prompt?"
DEMO_INSTRUCTIONS = """\
Pick the image that shows **every spatial relation of the prompt** correctly.

- Look at where the objects are: left/right, above/below, on top of, next to.
- Choose **tie** if both are equally right, **both wrong** if neither is.
- Colours and counts matter too; image quality does not.
"""
UNKNOWN_PASSWORD = "(not-set-by-the-demo:manage.py-changepassword-{username})"
TRAINING_FINISHED = (
    TrainingRun.Status.SUCCEEDED,
    TrainingRun.Status.FAILED,
    TrainingRun.Status.CANCELLED,
)

# Objects whose procedural shape and colour differ, so a small model can tell them apart.
DEMO_OBJECTS = [
    "person", "bicycle", "car", "airplane", "bus", "train", "truck", "horse", "cow", "elephant",
]  # fmt: skip
DEMO_PROMPT_SPEC = {
    "size": 300,
    "seed": 7,
    "vocabulary": DEMO_OBJECTS,
    "templates": ["geneval", "compbench"],
    "relations": ["left_of", "right_of", "above", "below"],
    "attributes": {"probability": 0.0},
    "counts": {"probability": 0.0},
    "tiers": {"single": 1.0},
    "perturbations": {"types": ["swap", "flip", "replace"], "per_prompt": 2},
}
DEMO_SEEDS_PER_PROMPT = 2
# By prompt group (an object pair): the test pairs show object pairs never trained on.
DEMO_SPLIT_SPEC = {"seed": 0, "ratios": {"train": 0.7, "val": 0.1, "test": 0.2}}

Say = Callable[[str], None]


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    role: Role


def demo_logins_ensure(*, logins_file: Path) -> list[Login]:
    """Create the demo accounts that are missing; a password is made once and kept in the
    (ignored) logins file. An existing account is left as it is (its password and role may
    have been changed since): the file keeps the password the demo gave it."""
    known: dict[str, str] = {}
    if logins_file.exists():
        for line in logins_file.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[0] == "login:":
                known[parts[2]] = parts[3]
    logins = []
    for username, role in DEMO_ACCOUNTS:
        password = secrets.token_urlsafe(9)
        try:
            user_create(username=username, password=password, role=role)
        except ValidationFailed as exc:
            if exc.field != "username":
                raise
            password = known.get(username, UNKNOWN_PASSWORD.format(username=username))
        logins.append(Login(username=username, password=password, role=role))
    logins_file.parent.mkdir(parents=True, exist_ok=True)
    logins_file.write_text(
        "".join(f"login: {lg.role.value:<10} {lg.username} {lg.password}\n" for lg in logins)
    )
    return logins


def demo_model_promote_once(*, run_id: int) -> str:
    """Promote the demo run's reward model the first time only: while it is a candidate that
    was never promoted and no model of its name is served. A demo model an ML engineer has
    archived, or replaced by promoting another, stays as they left it. Says what it did."""
    run = TrainingRun.objects.get(pk=run_id)
    model = RewardModel.objects.filter(run_id=run_id).first()
    if model is None:
        return f"training run {run.pk} ended {run.status}: no reward model"
    served = RewardModel.objects.filter(name=model.name, status=RewardModel.Status.PROMOTED)
    untouched = model.status == RewardModel.Status.CANDIDATE and model.promoted_at is None
    if not untouched or served.exists():
        return f"reward model {model} is {model.status}: left as it is"
    model = reward_model_promote(model_id=model.pk)
    return f"reward model {model} promoted: POST /api/reward/score serves it"


def demo_prompt_set_ensure() -> PromptSet:
    existing = PromptSet.objects.filter(name="demo-prompts", status=PromptSet.Status.READY).first()
    if existing is not None:
        return existing
    return prompt_set_create(name="demo-prompts", spec=DEMO_PROMPT_SPEC)


def _wait(what: str, done: Callable[[], bool], *, timeout: float, say: Say) -> None:
    if done():
        return
    deadline = time.monotonic() + timeout
    say(f"waiting for the worker: {what}")
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the demo worker did not finish {what} in {timeout:.0f} s")
        time.sleep(0.5)


def demo_bots_judge(*, queue: LabelingQueue, seed: int = 0) -> SimulationReport:
    """The demo's simulated annotators answer through the labeling services (DEMO_BOTS): the
    careful ones between them give every vote of all but HUMAN_PAIRS of the queue's regular
    pairs. A bot's bound counts its earlier answers, so seeding again adds nothing."""
    bots = bots_ensure(queue_id=queue.pk, specs=DEMO_BOTS, prefix=DEMO_BOT_PREFIX)
    careful = sum(spec.count for spec in DEMO_BOTS if spec.profile.label == "good")
    regular = Pair.objects.filter(queue=queue, is_gold=False).count()
    quota = max(1, math.ceil(queue.overlap * max(regular - HUMAN_PAIRS, 0) / careful))
    return simulation_run(queue_id=queue.pk, bots=bots, answers=quota, seed=seed)


def demo_seed(*, logins_file: Path, timeout: float = 600, say: Say = log.info) -> list[Login]:
    logins = demo_logins_ensure(logins_file=logins_file)
    prompt_set = demo_prompt_set_ensure()
    say(f"prompt set {prompt_set}: {prompt_set.prompt_count} prompts")

    config = generator_config_procedural_ensure(name="demo-procedural", width=256, height=256)
    campaign = campaign_ensure_launched(
        name="demo-campaign",
        prompt_set_id=prompt_set.pk,
        config_ids=[config.pk],
        seeds_per_prompt=DEMO_SEEDS_PER_PROMPT,
    )
    finished = (Campaign.Status.COMPLETED, Campaign.Status.FAILED, Campaign.Status.CANCELLED)
    _wait(
        "rendering the demo images",
        lambda: Campaign.objects.get(pk=campaign.pk).status in finished,
        timeout=timeout,
        say=say,
    )

    queue = labeling_queue_create(
        name=DEMO_QUEUE,
        instructions=DEMO_INSTRUCTIONS,
        overlap=3,
        allowed_group_names=[Role.ANNOTATOR.value],
        exist_ok=True,
        quality=DEMO_QUALITY,
    )
    built = pairs_build(
        queue_id=queue.pk,
        campaign_id=campaign.pk,
        kind="counterfactual",
        gold_share=DEMO_GOLD_SHARE,
    )
    say(f"labeling queue {queue.name!r}: pairs {built}")
    bots = demo_bots_judge(queue=queue)
    paused = [b.username for b in bots.bots if b.status == "paused"]
    say(
        f"simulated annotators stored {bots.judgments} judgments"
        + (f"; auto-paused: {', '.join(paused)}" if paused else "")
    )

    version = dataset_snapshot(
        dataset_name="demo", filter_spec={"queues": [queue.name]}, split_spec=DEMO_SPLIT_SPEC
    )
    _wait(
        "freezing and exporting the demo dataset",
        lambda: (
            DatasetVersion.objects.get(pk=version.pk).status == DatasetVersion.Status.FROZEN
            and not DatasetExport.objects.filter(version_id=version.pk)
            .exclude(status__in=[DatasetExport.Status.DONE, DatasetExport.Status.FAILED])
            .exists()
        ),
        timeout=timeout,
        say=say,
    )
    try:
        run = training_run_demo_start(version_id=version.pk)
    except DomainError as exc:
        say(f"training run not started: {exc}")
    else:
        say(f"training run {run.pk} ({run.status}); its curve is in the admin")
        _wait(
            "the demo training run",
            lambda: TrainingRun.objects.get(pk=run.pk).status in TRAINING_FINISHED,
            timeout=timeout,
            say=say,
        )
        say(demo_model_promote_once(run_id=run.pk))
    log.info("demo.seed.done accounts=%d prompts=%d", len(logins), prompt_set.prompt_count)
    return logins
