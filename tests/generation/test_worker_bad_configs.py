"""Bad configs fail their items with a clear message; the worker stays up and goes on."""

import shutil

import pytest

from generation_workers.models import Campaign, Candidate, GeneratorConfig
from generation_workers.services.campaigns import campaign_create, campaign_launch
from generation_workers.services.configs import (
    generator_config_check_request,
    generator_config_create,
)
from tests.generation.conftest import campaign_wait, prompt_set_make

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_missing_folder_and_wrong_pipeline_class_fail_clearly_without_stopping_the_worker(
    tiny_sd_folder, tmp_path, worker_start, own_queue
):
    # given a config whose model folder was removed after it was saved, a config naming a
    # pipeline class the folder is not, and a good procedural config, all on one queue
    gone = tmp_path / "gone-model"
    shutil.copytree(tiny_sd_folder, gone)
    common = {"backend": "diffusers", "width": 64, "height": 64, "queue": own_queue,
              "num_inference_steps": 1}  # fmt: skip
    missing = generator_config_create(name="missing", model_path=str(gone), **common)
    shutil.rmtree(gone)
    wrong = generator_config_create(
        name="wrong-class", model_path=str(tiny_sd_folder), pipeline_class="FluxPipeline", **common
    )
    good = generator_config_create(
        name="good", backend="procedural", width=64, height=64, queue=own_queue
    )
    prompt_set = prompt_set_make(originals=2)
    campaign = campaign_create(
        name="bad", prompt_set_id=prompt_set.pk, config_ids=[missing.pk, wrong.pk, good.pk]
    )
    worker = worker_start(queues=own_queue)

    # when the campaign runs
    campaign_launch(campaign_id=campaign.pk)
    campaign = campaign_wait(campaign, workers=[worker])

    # then the bad configs' items failed with what is wrong, the good ones were made
    assert campaign.status == Campaign.Status.COMPLETED
    by_config = {
        name: list(Candidate.objects.filter(campaign=campaign, config__name=name))
        for name in ("missing", "wrong-class", "good")
    }
    assert {c.status for c in by_config["good"]} == {Candidate.Status.DONE}
    assert len(by_config["good"]) == 4
    for candidate in by_config["missing"]:
        assert candidate.status == Candidate.Status.FAILED
        assert candidate.error == f"{gone} does not exist on this machine"
    for candidate in by_config["wrong-class"]:
        assert candidate.status == Candidate.Status.FAILED
        assert candidate.error.startswith(
            f"could not load {tiny_sd_folder} as FluxPipeline: ValueError: Pipeline "
        )
    # the failing load was tried once, then remembered, not repeated for the next batch
    assert worker.output().count("generation.pipeline.loaded") == 0

    # and the "check" of the wrong config reports the same, while the worker stays up
    generator_config_check_request(config_id=wrong.pk)
    wrong.refresh_from_db()
    for _ in range(300):
        wrong.refresh_from_db()
        if wrong.check_status != GeneratorConfig.CheckStatus.CHECKING:
            break
        import time

        time.sleep(0.1)
    assert wrong.check_status == GeneratorConfig.CheckStatus.FAILED
    assert "as FluxPipeline: ValueError" in wrong.check_message
    assert worker.process.poll() is None
    assert "WorkerLostError" not in worker.output()

    # and a good diffusers config checks fine on the same worker afterwards
    fine = generator_config_create(name="fine", model_path=str(tiny_sd_folder), **common)
    generator_config_check_request(config_id=fine.pk)
    for _ in range(600):
        fine.refresh_from_db()
        if fine.check_status != GeneratorConfig.CheckStatus.CHECKING:
            break
        time.sleep(0.1)
    assert fine.check_status == GeneratorConfig.CheckStatus.OK, fine.check_message
    assert fine.check_message.startswith("loaded StableDiffusionPipeline (DDIMScheduler) on cpu")
