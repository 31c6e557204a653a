"""factory_boy factories for every model."""

import hashlib
import uuid

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from annotation.models import Assignment, Judgment, LabelingQueue, Pair
from generation_workers.models import Campaign, Candidate, GeneratorConfig, Prompt, PromptSet
from training_bridge.models import Dataset, DatasetVersion, RewardModel, TrainingRun


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")


class PromptSetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PromptSet

    name = factory.Sequence(lambda n: f"set-{n}")
    source = PromptSet.Source.TEMPLATE
    status = PromptSet.Status.READY


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    prompt_set = factory.SubFactory(PromptSetFactory)
    text = factory.Sequence(lambda n: f"a photo of a cat to the left of a dog number {n}")
    normalized_text = factory.LazyAttribute(lambda o: o.text.lower())
    structure = factory.LazyFunction(
        lambda: {
            "objects": [
                {"id": "o1", "name": "cat", "count": 1, "attributes": {}},
                {"id": "o2", "name": "dog", "count": 1, "attributes": {}},
            ],
            "relations": [{"subject": "o1", "relation": "left_of", "objects": ["o2"]}],
            "scene": None,
        }
    )
    relation_keys = "|left_of|"
    object_keys = "|cat|dog|"
    group_key = factory.Sequence(lambda n: f"group-{n}")


class GeneratorConfigFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GeneratorConfig

    name = factory.Sequence(lambda n: f"config-{n}")
    backend = GeneratorConfig.Backend.PROCEDURAL
    width = 64
    height = 64


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"campaign-{n}")
    prompt_set = factory.SubFactory(PromptSetFactory)


class CandidateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Candidate

    campaign = factory.SubFactory(CampaignFactory)
    prompt = factory.SubFactory(
        PromptFactory, prompt_set=factory.SelfAttribute("..campaign.prompt_set")
    )
    config = factory.SubFactory(GeneratorConfigFactory)
    seed = factory.Sequence(lambda n: n)
    params_hash = "p" * 64
    status = Candidate.Status.DONE
    content_sha256 = factory.Sequence(lambda n: hashlib.sha256(str(n).encode()).hexdigest())
    storage_key = factory.LazyAttribute(
        lambda o: f"candidates/{o.content_sha256[:2]}/{o.content_sha256}.png"
    )
    width = 64
    height = 64


class LabelingQueueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LabelingQueue

    name = factory.Sequence(lambda n: f"queue-{n}")


class PairFactory(factory.django.DjangoModelFactory):
    """A same-prompt pair of two fresh candidates, stored with a < b."""

    class Meta:
        model = Pair

    queue = factory.SubFactory(LabelingQueueFactory)
    candidate_a = factory.SubFactory(CandidateFactory)
    candidate_b = factory.SubFactory(
        CandidateFactory,
        campaign=factory.SelfAttribute("..candidate_a.campaign"),
        prompt=factory.SelfAttribute("..candidate_a.prompt"),
        config=factory.SelfAttribute("..candidate_a.config"),
    )
    kind = Pair.Kind.SAME_PROMPT
    prompt = factory.SelfAttribute("candidate_a.prompt")
    judgments_needed = 3


class AssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Assignment

    pair = factory.SubFactory(PairFactory)
    annotator = factory.SubFactory(UserFactory)
    left_candidate = factory.SelfAttribute("pair.candidate_a")
    leased_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda o: o.leased_at + timezone.timedelta(minutes=10))


class JudgmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Judgment

    pair = factory.SubFactory(PairFactory)
    annotator = factory.SubFactory(UserFactory)
    client_submission_id = factory.LazyFunction(uuid.uuid4)
    left_candidate = factory.SelfAttribute("pair.candidate_a")
    choice = Judgment.Choice.LEFT
    winner = factory.SelfAttribute("pair.candidate_a")


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    name = factory.Sequence(lambda n: f"dataset-{n}")


class DatasetVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DatasetVersion

    dataset = factory.SubFactory(DatasetFactory)
    number = factory.Sequence(lambda n: n + 1)


class TrainingRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrainingRun

    dataset_version = factory.SubFactory(DatasetVersionFactory)
    config = factory.LazyFunction(lambda: {"backbone": "builtin"})
    config_hash = "c" * 64


class RewardModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RewardModel

    name = "spatial-rm"
    version = factory.Sequence(lambda n: n + 1)
    artifact_key = factory.Sequence(lambda n: f"models/rm/{n}/model.safetensors")
