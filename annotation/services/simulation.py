"""Simulated annotators (bots): accounts with a set accuracy, position bias, tie and skip rates
and speed that label a queue through the real labeling services, so quality control can be
shown (the demo) and tested (tests/labeling/test_simulation.py, bench/qc).

A bot's answer to a pair (`bot_answer`), one draw each, in this order:
- skip with probability `skip_rate`, else tie with probability `tie_rate`;
- else it *knows* the answer with probability |2 * accuracy - 1| and gives the true side
  (the wrong one when accuracy < 0.5); otherwise it guesses, left with probability
  `left_preference` (1.0: always "left"). Presentation sides are random, so on pairs with a
  known answer a bot is right on a share `accuracy` of its left/right answers whatever its
  left preference.
A pair's known answer is its gold winner (gold pairs), else its intended winner
(counterfactual pairs); the bot finds which side shows it by the images' content hashes, as
the items give them. A pair without either (same-prompt), or whose two images are identical,
gets a guess. Each answer takes a time drawn from the profile (normal, mean/spread, at least
`MIN_SECONDS`): reported as `duration_ms` and, with `speed` > 0, slept (divided by `speed`).

`simulation_run` runs bots against a queue in one of two modes:
- `sequential` (default): one thread and one database connection; the bots take turns in the
  order of their simulated clocks (a bot that answers in 2 s answers twice as often as one
  that takes 4 s). Reproducible: the bots' random draws come from `seed`, and the connection's
  SQL random() (presentation sides, gold positions) is seeded from it too, so the same seed on
  the same data gives the same answers.
- `threads`: one thread (and connection) per bot, each sleeping its answer times; concurrent
  like real annotators, not reproducible.
A bot stops at its answer quota, its gold-answer bound, when the queue pauses it
(`annotator_paused`) or the queue is paused, or after `EMPTY_LIMIT` empty `next`s in a row (in
threads, once every other bot is also stopped or finding nothing: another's skip or expired
lease can free a pair for it).
"""

import heapq
import logging
import math
import random
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Count

from annotation.models import AnnotatorQueueState, Judgment, LabelingQueue, Pair
from annotation.services.annotators import user_create
from annotation.services.assignment import pairs_next_for_annotator
from annotation.services.judgments import judgment_submit
from annotation.services.results import LeasedItem
from config.errors import Conflict, NotFound, ValidationFailed
from config.roles import Role

log = logging.getLogger(__name__)

MIN_SECONDS = 0.3
# An empty `next` is asked again after this many simulated seconds (pairs come back when
# leases expire or, with adaptive overlap, when a split pair wants another vote), at most
# EMPTY_LIMIT times in a row.
EMPTY_RECHECK_SECONDS = 20.0
EMPTY_LIMIT = 3
# In threads without waiting (speed 0): the pause before asking again, in real seconds.
EMPTY_WAIT_SECONDS = 0.05
MAX_BOTS = 1000
MODES = ("sequential", "threads")
PROFILE_FIELDS = (
    "accuracy",
    "left_preference",
    "tie_rate",
    "skip_rate",
    "seconds_mean",
    "seconds_spread",
)


@dataclass(frozen=True)
class BotProfile:
    """How a bot answers; `label` names it in reports and usernames."""

    label: str = "good"
    accuracy: float = 0.92
    left_preference: float = 0.5
    tie_rate: float = 0.0
    skip_rate: float = 0.0
    seconds_mean: float = 4.0
    seconds_spread: float = 1.5


PRESETS = {
    "good": BotProfile(label="good", accuracy=0.92, tie_rate=0.02, skip_rate=0.01),
    "random": BotProfile(label="random", accuracy=0.5, seconds_mean=2.0, seconds_spread=0.8),
    # Always "left" (accuracy given: left whenever unsure).
    "left": BotProfile(label="left", accuracy=0.5, left_preference=1.0, seconds_mean=1.5),
    "right": BotProfile(label="right", accuracy=0.5, left_preference=0.0, seconds_mean=1.5),
}


@dataclass(frozen=True)
class BotSpec:
    count: int
    profile: BotProfile


@dataclass(frozen=True)
class Bot:
    user: AbstractBaseUser
    profile: BotProfile


@dataclass
class BotReport:
    username: str
    profile: BotProfile
    answers: int = 0
    choices: Counter = field(default_factory=Counter)
    # Left/right answers on pairs with a known answer, and how many were right.
    with_truth: int = 0
    correct: int = 0
    gold_answers: int = 0
    gold_correct: int = 0
    refused: int = 0  # submits the engine turned down (lease gone, pair full)
    seconds: float = 0.0  # the simulated time of its answers
    stopped: str = ""
    # The engine's view at the end (AnnotatorQueueState), when it keeps one.
    status: str = ""
    reason: str = ""

    def as_dict(self) -> dict:
        out = asdict(self)
        out["choices"] = dict(self.choices)
        return out


@dataclass(frozen=True)
class SimulationReport:
    queue_id: int
    seed: int
    mode: str
    bots: list[BotReport]
    wall_seconds: float

    @property
    def judgments(self) -> int:
        return sum(b.answers for b in self.bots)


def bot_profile_check(profile: BotProfile, *, field_name: str = "bots") -> BotProfile:
    """The profile if its numbers are in range; a ValidationFailed naming `field_name`."""
    for name in ("accuracy", "left_preference", "tie_rate", "skip_rate"):
        value = getattr(profile, name)
        if not _number(value) or not 0.0 <= value <= 1.0:
            raise ValidationFailed(
                f"{profile.label}: {name} must be a number from 0 to 1 (got {value!r})",
                field=field_name,
            )
    if profile.tie_rate + profile.skip_rate > 1.0:
        raise ValidationFailed(
            f"{profile.label}: tie_rate + skip_rate must not exceed 1", field=field_name
        )
    for name in ("seconds_mean", "seconds_spread"):
        value = getattr(profile, name)
        if not _number(value) or not 0.0 <= value <= 3600:
            raise ValidationFailed(
                f"{profile.label}: {name} must be a number of seconds from 0 to 3600 "
                f"(got {value!r})",
                field=field_name,
            )
    if not profile.label or not profile.label.replace("-", "").replace("_", "").isalnum():
        raise ValidationFailed(
            f"a bot label must be letters, digits, - or _ (got {profile.label!r})",
            field=field_name,
        )
    return profile


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def bot_specs_parse(text: str) -> list[BotSpec]:
    """Bots from a compact spec: comma-separated `COUNT:PRESET[:ACCURACY][:NAME=VALUE...]`,
    e.g. "8:good:0.92,1:random:0.55,1:left" or "2:good:tie_rate=0.1". Presets: good, random,
    left, right; NAME is a BotProfile field. Errors name `bots`."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed("give at least one COUNT:PRESET", field="bots")
    specs = []
    for part in text.split(","):
        bits = [b.strip() for b in part.strip().split(":")]
        if len(bits) < 2 or not bits[0].isdigit():
            raise ValidationFailed(
                f"{part.strip()!r} is not COUNT:PRESET[:ACCURACY][:NAME=VALUE...]", field="bots"
            )
        data: dict = {"count": int(bits[0]), "preset": bits[1]}
        for i, bit in enumerate(bits[2:]):
            name, eq, value = bit.partition("=")
            if not eq:
                if i:
                    raise ValidationFailed(
                        f"{part.strip()!r}: only the first value after the preset may go "
                        "without NAME=",
                        field="bots",
                    )
                name, value = "accuracy", bit
            try:
                data[name] = float(value)
            except ValueError:
                raise ValidationFailed(
                    f"{part.strip()!r}: {name} must be a number (got {value!r})", field="bots"
                ) from None
        specs.append(data)
    return bot_specs_from_data(specs)


def bot_specs_from_data(data: object) -> list[BotSpec]:
    """Bots from a list of {"count", "preset" (optional), "label" (optional), profile fields}
    (a JSON or YAML file's content). Errors name `bots`."""
    if not isinstance(data, list) or not data:
        raise ValidationFailed("bots must be a non-empty list of bot groups", field="bots")
    specs = []
    for entry in data:
        if not isinstance(entry, dict):
            raise ValidationFailed(f"a bot group must be a mapping (got {entry!r})", field="bots")
        entry = dict(entry)
        count = entry.pop("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_BOTS:
            raise ValidationFailed(
                f"count must be a whole number from 1 to {MAX_BOTS} (got {count!r})", field="bots"
            )
        preset_name = entry.pop("preset", None)
        if preset_name is None:
            base = BotProfile(label="custom")
        elif preset_name in PRESETS:
            base = PRESETS[preset_name]
        else:
            raise ValidationFailed(
                f"unknown preset {preset_name!r}; choose one of {', '.join(PRESETS)}",
                field="bots",
            )
        unknown = set(entry) - set(PROFILE_FIELDS) - {"label"}
        if unknown:
            raise ValidationFailed(
                f"unknown bot field(s) {', '.join(sorted(unknown))}; the fields are "
                f"count, preset, label, {', '.join(PROFILE_FIELDS)}",
                field="bots",
            )
        profile = bot_profile_check(replace(base, **entry))
        specs.append(BotSpec(count=count, profile=profile))
    if sum(s.count for s in specs) > MAX_BOTS:
        raise ValidationFailed(f"at most {MAX_BOTS} bots", field="bots")
    return specs


def bot_answer(profile: BotProfile, rng: random.Random, *, truth_left: bool | None) -> str:
    """One answer of a bot: left, right, tie or skip (see the module's docstring).

    Always four draws, whatever the branch, so a bot's later answers do not depend on which
    branch an earlier one took."""
    u_kind, u_knows, u_guess, _ = rng.random(), rng.random(), rng.random(), rng.random()
    if u_kind < profile.skip_rate:
        return "skip"
    if u_kind < profile.skip_rate + profile.tie_rate:
        return "tie"
    if truth_left is not None and u_knows < abs(2 * profile.accuracy - 1):
        right_side = profile.accuracy >= 0.5
        return "left" if truth_left == right_side else "right"
    return "left" if u_guess < profile.left_preference else "right"


def bot_seconds(profile: BotProfile, rng: random.Random) -> float:
    return max(MIN_SECONDS, rng.gauss(profile.seconds_mean, profile.seconds_spread))


def bots_ensure(*, queue_id: int, specs: Iterable[BotSpec], prefix: str | None = None) -> list[Bot]:
    """The bot accounts of these specs (annotators named `<prefix><n>-<label>`, made once and
    reused), with access to the queue: a queue open to the annotator group lets them in
    already; otherwise they join its allowed users."""
    queue = LabelingQueue.objects.filter(pk=queue_id).first()
    if queue is None:
        raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")
    prefix = f"sim{queue_id}-" if prefix is None else prefix
    bots = []
    for spec in specs:
        for _ in range(spec.count):
            username = f"{prefix}{len(bots) + 1:02d}-{spec.profile.label}"
            # Bots never log in: a random password each time is as good as a kept one.
            user = user_create(
                username=username,
                password=secrets.token_urlsafe(12),
                role=Role.ANNOTATOR,
                exist_ok=True,
            )
            bots.append(Bot(user=user, profile=spec.profile))
    open_to_annotators = queue.allowed_groups.filter(name=Role.ANNOTATOR.value).exists()
    if not open_to_annotators:
        queue.allowed_users.add(*(b.user for b in bots))
    return bots


def simulation_check(
    *,
    answers: object,
    max_gold: object,
    budget: object = None,
    seed: object,
    speed: object,
    mode: object,
) -> None:
    """The run's settings; a ValidationFailed names the first bad one."""
    if answers is not None and (
        isinstance(answers, bool) or not isinstance(answers, int) or answers < 1
    ):
        raise ValidationFailed("answers must be a whole number >= 1 (per bot)", field="answers")
    if max_gold is not None and (
        isinstance(max_gold, bool) or not isinstance(max_gold, int) or max_gold < 1
    ):
        raise ValidationFailed("max_gold must be a whole number >= 1 (per bot)", field="max_gold")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, int) or budget < 1
    ):
        raise ValidationFailed(
            "budget must be a whole number >= 1 (answers of the run)", field="budget"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValidationFailed("seed must be a whole number", field="seed")
    if not _number(speed) or speed < 0:
        raise ValidationFailed(
            "speed must be a number >= 0 (0: no waiting; 1: real time; 10: ten times faster)",
            field="speed",
        )
    if mode not in MODES:
        raise ValidationFailed(f"mode must be one of {', '.join(MODES)}", field="mode")


class _Runner:
    """One bot's state and its step: answer the next item it holds, asking `next` for more
    when it holds none."""

    def __init__(
        self,
        *,
        bot: Bot,
        index: int,
        queue_id: int,
        seed: int,
        answers: int | None,
        max_gold: int | None,
    ):
        self.bot = bot
        self.queue_id = queue_id
        self.rng = random.Random(f"{seed}:{index}:{bot.profile.label}")
        # What this run may add (the bounds count what earlier runs stored).
        self.answers = answers
        self.max_gold = max_gold
        self.held: list[LeasedItem] = []
        self.truths: dict[int, tuple[bool, str | None]] = {}
        self.empty = 0
        self.report = BotReport(username=bot.user.get_username(), profile=bot.profile)

    def step(self) -> float | None:
        """Do one thing; the simulated seconds it took, or None when the bot stops."""
        report = self.report
        if self.answers is not None and report.answers >= self.answers:
            return self._stop("answers")
        if self.max_gold is not None and report.gold_answers >= self.max_gold:
            return self._stop("max_gold")
        if not self.held:
            try:
                self.held = pairs_next_for_annotator(user=self.bot.user, queue_id=self.queue_id)
            except Conflict as exc:
                return self._stop(exc.code)
            if not self.held:
                self.empty += 1
                return EMPTY_RECHECK_SECONDS  # the run decides when to give up
            self.empty = 0
            self.truths = _truths([item.pair_id for item in self.held])
        item = self.held.pop(0)
        is_gold, truth_sha = self.truths.get(item.pair_id, (False, None))
        truth_left = _truth_side(item, truth_sha)
        choice = bot_answer(self.bot.profile, self.rng, truth_left=truth_left)
        seconds = bot_seconds(self.bot.profile, self.rng)
        try:
            judgment_submit(
                user=self.bot.user,
                queue_id=self.queue_id,
                pair_id=item.pair_id,
                client_submission_id=uuid.uuid4(),  # unique across runs, unlike a seeded one
                choice=choice,
                duration_ms=round(seconds * 1000),
            )
        except Conflict as exc:
            if exc.code in ("annotator_paused", "queue_paused"):
                return self._stop(exc.code)
            report.refused += 1
            return seconds
        report.answers += 1
        report.seconds += seconds
        report.choices[choice] += 1
        right = truth_left is not None and (choice == "left") == truth_left
        if truth_left is not None and choice in ("left", "right"):
            report.with_truth += 1
            report.correct += right
        if is_gold and choice != "skip":
            report.gold_answers += 1
            report.gold_correct += right and choice in ("left", "right")
        return seconds

    def _stop(self, why: str) -> None:
        self.report.stopped = why
        log.info("labeling.simulation.bot_stopped user=%s why=%s", self.bot.user.pk, why)
        return None


def _truths(pair_ids: list[int]) -> dict[int, tuple[bool, str | None]]:
    """Per pair: whether it is gold, and the content hash of its known winner (None: none)."""
    rows = Pair.objects.filter(pk__in=pair_ids).values_list(
        "pk",
        "is_gold",
        "gold_winner__content_sha256",
        "intended_winner__content_sha256",
    )
    return {
        pk: (gold, (gold_sha if gold else None) or intended)
        for pk, gold, gold_sha, intended in rows
    }


def _truth_side(item: LeasedItem, truth_sha: str | None) -> bool | None:
    """True when the known winner is shown on the left, False on the right, None: unknown."""
    left, right = item.left.content_sha256, item.right.content_sha256
    if truth_sha is None or left == right or truth_sha not in (left, right):
        return None
    return truth_sha == left


def _sql_seed(seed: int) -> float:
    """A seed for PostgreSQL's setseed (a number from -1 to 1) from any whole number."""
    return random.Random(seed).uniform(-1.0, 1.0)


def simulation_run(
    *,
    queue_id: int,
    bots: list[Bot],
    answers: int | None = None,
    max_gold: int | None = None,
    seed: int = 0,
    speed: float = 0.0,
    mode: str = "sequential",
    budget: int | None = None,
) -> SimulationReport:
    """Run `bots` against the queue through `next` and `submit` until each stops (see the
    module's docstring). `answers` and `max_gold` bound each bot's stored answers and gold
    answers in this queue, those of earlier runs included (so a run repeated with the same
    bounds adds nothing). `budget` ends the run once its bots stored that many answers
    between them (in threads, each bot checks before its next answer)."""
    simulation_check(
        answers=answers, max_gold=max_gold, budget=budget, seed=seed, speed=speed, mode=mode
    )
    if not LabelingQueue.objects.filter(pk=queue_id).exists():
        raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")
    users = [b.user.pk for b in bots]
    answered = dict(
        Judgment.objects.filter(pair__queue_id=queue_id, annotator_id__in=users)
        .values_list("annotator_id")
        .annotate(n=Count("id"))
    )
    gold_answered = dict(
        AnnotatorQueueState.objects.filter(queue_id=queue_id, annotator_id__in=users).values_list(
            "annotator_id", "gold_answers"
        )
    )
    runners = [
        _Runner(
            bot=bot,
            index=i,
            queue_id=queue_id,
            seed=seed,
            answers=_left(answers, answered.get(bot.user.pk, 0)),
            max_gold=_left(max_gold, gold_answered.get(bot.user.pk, 0)),
        )
        for i, bot in enumerate(bots)
    ]
    started = time.monotonic()
    log.info(
        "labeling.simulation.start queue=%s bots=%d mode=%s seed=%s",
        queue_id,
        len(bots),
        mode,
        seed,
    )
    if mode == "sequential":
        _run_sequential(runners, seed=seed, speed=speed, budget=budget)
    else:
        _run_threads(runners, speed=speed, budget=budget)
    states = {
        s.annotator_id: s
        for s in AnnotatorQueueState.objects.filter(
            queue_id=queue_id, annotator__in=[b.user for b in bots]
        )
    }
    for runner in runners:
        state = states.get(runner.bot.user.pk)
        if state is not None:
            runner.report.status, runner.report.reason = state.status, state.reason
    report = SimulationReport(
        queue_id=queue_id,
        seed=seed,
        mode=mode,
        bots=[r.report for r in runners],
        wall_seconds=time.monotonic() - started,
    )
    log.info(
        "labeling.simulation.done queue=%s judgments=%d seconds=%.1f",
        queue_id,
        report.judgments,
        report.wall_seconds,
    )
    return report


def _left(bound: int | None, done: int) -> int | None:
    return None if bound is None else max(bound - done, 0)


def _stored(runners: list[_Runner]) -> int:
    return sum(r.report.answers for r in runners)


def _run_sequential(runners: list[_Runner], *, seed: int, speed: float, budget: int | None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [_sql_seed(seed)])
    # Arrivals spread over one mean answer time, from each bot's own draws.
    clock = [(r.rng.random() * r.bot.profile.seconds_mean, i) for i, r in enumerate(runners)]
    heapq.heapify(clock)
    origin = time.monotonic()
    while clock:
        if budget is not None and _stored(runners) >= budget:
            for runner in runners:
                runner.report.stopped = runner.report.stopped or "budget"
            return
        at, i = heapq.heappop(clock)
        if speed > 0:
            time.sleep(max(0.0, origin + at / speed - time.monotonic()))
        runner = runners[i]
        took = runner.step()
        if took is not None and runner.empty >= EMPTY_LIMIT:
            runner._stop("empty")
        elif took is not None:
            heapq.heappush(clock, (at + took, i))


def _run_threads(runners: list[_Runner], *, speed: float, budget: int | None) -> None:
    halt = threading.Event()
    errors: list[BaseException] = []

    def work(runner: _Runner) -> None:
        try:
            halt.wait(runner.rng.random() * runner.bot.profile.seconds_mean / speed if speed else 0)
            while not halt.is_set():
                if budget is not None and _stored(runners) >= budget:
                    runner.report.stopped = "budget"
                    halt.set()
                    return
                took = runner.step()
                if took is None:
                    return
                if runner.empty >= EMPTY_LIMIT and all(
                    other.report.stopped or other.empty for other in runners
                ):
                    runner._stop("empty")  # nobody is answering who could free a pair
                    return
                if speed > 0:
                    halt.wait(took / speed)
                elif runner.empty:
                    halt.wait(EMPTY_WAIT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - raised again once the others stopped
            errors.append(exc)
            halt.set()
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=work, args=(r,), daemon=True) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
