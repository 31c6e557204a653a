"""Each invariant the schema can hold is refused by PostgreSQL itself, not only by services."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.models import Assignment, Judgment, LabelingQueue, Pair
from generation_workers.models import Campaign, Candidate, GeneratorConfig, Prompt, PromptSet
from tests.factories import (
    AssignmentFactory,
    CandidateFactory,
    DatasetVersionFactory,
    JudgmentFactory,
    PairFactory,
    PromptFactory,
    RewardModelFactory,
    TrainingRunFactory,
)
from training_bridge.models import DatasetRecord, DatasetVersion, RewardModel, TrainingRun

pytestmark = pytest.mark.django_db


def refused(model, fn) -> None:
    """fn() violates a constraint: the database raises and the table keeps its row count."""
    before = model.objects.count()
    with pytest.raises(IntegrityError), transaction.atomic():
        fn()
    assert model.objects.count() == before


def test_candidate_generation_key_is_unique():
    first = CandidateFactory()
    refused(
        Candidate,
        lambda: CandidateFactory(
            campaign=first.campaign, prompt=first.prompt, config=first.config,
            seed=first.seed, params_hash=first.params_hash,
        ),
    )  # fmt: skip


def test_candidate_with_other_seed_is_a_new_key():
    first = CandidateFactory()
    CandidateFactory(
        campaign=first.campaign, prompt=first.prompt, config=first.config, seed=first.seed + 1
    )
    assert Candidate.objects.filter(prompt=first.prompt).count() == 2


def test_done_candidate_needs_a_storage_key():
    refused(Candidate, lambda: CandidateFactory(storage_key="", content_sha256=""))


def test_prompt_text_is_unique_within_a_set():
    prompt = PromptFactory()
    refused(
        Prompt,
        lambda: PromptFactory(
            prompt_set=prompt.prompt_set, text=prompt.text, normalized_text=prompt.normalized_text
        ),
    )


def test_perturbed_prompt_must_record_its_perturbation():
    parent = PromptFactory()
    refused(
        Prompt,
        lambda: PromptFactory(prompt_set=parent.prompt_set, parent=parent, perturbation_type=""),
    )


def test_prompt_set_name_and_version_are_unique():
    PromptSet.objects.create(name="geneval", version=1, source="template")
    refused(
        PromptSet, lambda: PromptSet.objects.create(name="geneval", version=1, source="template")
    )


def test_diffusers_config_needs_a_model_folder():
    refused(GeneratorConfig, lambda: GeneratorConfig.objects.create(name="sd", backend="diffusers"))


def test_campaign_needs_at_least_one_seed():
    prompt_set = PromptSet.objects.create(name="s", source="template")
    refused(
        Campaign,
        lambda: Campaign.objects.create(name="c", prompt_set=prompt_set, seeds_per_prompt=0),
    )


def test_pair_is_stored_once_per_unordered_pair_in_a_queue():
    pair = PairFactory()
    refused(
        Pair,
        lambda: PairFactory(
            queue=pair.queue, candidate_a=pair.candidate_a, candidate_b=pair.candidate_b
        ),
    )


def test_pair_candidates_must_be_ordered_so_b_a_is_not_a_second_row():
    pair = PairFactory()
    refused(
        Pair,
        lambda: PairFactory(
            queue=pair.queue, candidate_a=pair.candidate_b, candidate_b=pair.candidate_a
        ),
    )


def test_same_candidates_may_pair_again_in_another_queue():
    pair = PairFactory()
    other_queue = LabelingQueue.objects.create(name="second")
    PairFactory(queue=other_queue, candidate_a=pair.candidate_a, candidate_b=pair.candidate_b)
    assert Pair.objects.count() == 2


def test_pair_never_counts_more_judgments_than_its_overlap():
    from django.db.models import F

    pair = PairFactory(judgments_needed=1, judgments_count=1)

    def one_more():
        Pair.objects.filter(pk=pair.pk).update(judgments_count=F("judgments_count") + 1)

    refused(Pair, one_more)
    pair.refresh_from_db()
    assert pair.judgments_count == 1


def test_intended_winner_must_be_one_of_the_pair():
    outsider = CandidateFactory()
    refused(Pair, lambda: PairFactory(kind=Pair.Kind.COUNTERFACTUAL, intended_winner=outsider))


def test_counterfactual_pair_needs_an_intended_winner():
    refused(Pair, lambda: PairFactory(kind=Pair.Kind.COUNTERFACTUAL, intended_winner=None))


def test_annotator_judges_a_pair_once():
    judgment = JudgmentFactory()
    refused(Judgment, lambda: JudgmentFactory(pair=judgment.pair, annotator=judgment.annotator))


def test_client_submission_id_is_unique():
    judgment = JudgmentFactory()
    refused(Judgment, lambda: JudgmentFactory(client_submission_id=judgment.client_submission_id))


def test_judgment_winner_follows_the_choice():
    refused(Judgment, lambda: JudgmentFactory(choice=Judgment.Choice.TIE))
    pair = PairFactory()
    refused(Judgment, lambda: JudgmentFactory(pair=pair, choice=Judgment.Choice.LEFT, winner=None))


def test_judgment_choice_outside_the_list_is_refused():
    refused(Judgment, lambda: JudgmentFactory(choice="maybe", winner=None))


def test_annotator_holds_one_lease_per_pair():
    lease = AssignmentFactory()
    refused(Assignment, lambda: AssignmentFactory(pair=lease.pair, annotator=lease.annotator))


def test_lease_must_expire_after_it_starts():
    now = timezone.now()
    refused(Assignment, lambda: AssignmentFactory(leased_at=now, expires_at=now))


def test_dataset_version_numbers_are_unique_per_dataset():
    version = DatasetVersionFactory()
    refused(
        DatasetVersion,
        lambda: DatasetVersionFactory(dataset=version.dataset, number=version.number),
    )


def test_frozen_version_needs_hash_and_time():
    refused(DatasetVersion, lambda: DatasetVersionFactory(status=DatasetVersion.Status.FROZEN))


def test_dataset_record_once_per_pair_and_agreement_in_range():
    version = DatasetVersionFactory()
    pair = PairFactory()
    DatasetRecord.objects.create(
        version=version, pair=pair, split="train", label="a", agreement=1.0
    )
    refused(
        DatasetRecord,
        lambda: DatasetRecord.objects.create(
            version=version, pair=pair, split="val", label="b", agreement=1.0
        ),
    )
    other = PairFactory()
    refused(
        DatasetRecord,
        lambda: DatasetRecord.objects.create(
            version=version, pair=other, split="val", label="b", agreement=1.5
        ),
    )


def test_same_version_and_config_train_once_per_attempt():
    run = TrainingRunFactory()
    refused(
        TrainingRun,
        lambda: TrainingRunFactory(
            dataset_version=run.dataset_version, config_hash=run.config_hash
        ),
    )
    TrainingRunFactory(dataset_version=run.dataset_version, config_hash=run.config_hash, attempt=2)
    assert TrainingRun.objects.count() == 2


def test_one_promoted_reward_model_per_name():
    RewardModelFactory(status=RewardModel.Status.PROMOTED)
    refused(RewardModel, lambda: RewardModelFactory(status=RewardModel.Status.PROMOTED))
    RewardModelFactory(name="other", status=RewardModel.Status.PROMOTED)
    assert RewardModel.objects.filter(status="promoted").count() == 2


def test_reward_model_versions_are_unique_per_name():
    model = RewardModelFactory()
    refused(RewardModel, lambda: RewardModelFactory(name=model.name, version=model.version))


def test_queue_overlap_must_be_positive():
    refused(LabelingQueue, lambda: LabelingQueue.objects.create(name="zero", overlap=0))


def test_gold_pair_needs_its_answer_among_its_two_images():
    outsider = CandidateFactory()
    refused(Pair, lambda: PairFactory(is_gold=True, gold_winner=None))
    refused(Pair, lambda: PairFactory(is_gold=True, gold_winner=outsider))


def test_settled_answer_must_be_one_of_the_pair():
    refused(Pair, lambda: PairFactory(settled_winner=CandidateFactory()))


def test_queue_gold_rate_and_maximum_overlap_stay_in_range():
    refused(LabelingQueue, lambda: LabelingQueue.objects.create(name="g", gold_rate=0.9))
    refused(LabelingQueue, lambda: LabelingQueue.objects.create(name="o", overlap=3, overlap_max=2))


def test_annotator_standing_once_per_queue_and_correct_within_answers():
    from annotation.models import AnnotatorQueueState

    pair = PairFactory()
    user = AssignmentFactory(pair=pair).annotator
    AnnotatorQueueState.objects.create(annotator=user, queue=pair.queue)
    refused(
        AnnotatorQueueState,
        lambda: AnnotatorQueueState.objects.create(annotator=user, queue=pair.queue),
    )
    other = LabelingQueue.objects.create(name="other")
    refused(
        AnnotatorQueueState,
        lambda: AnnotatorQueueState.objects.create(
            annotator=user, queue=other, gold_answers=1, gold_correct=2
        ),
    )
