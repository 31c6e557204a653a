"""Steps that cross the sub-packages, for the callers that may import all of them (the app's
Celery tasks, management commands, the demo).

A training run that succeeds registers its reward model. `training` may not import
`reward_models` (training_bridge/datasets <- training <- reward_models), so the launcher takes
the registration as a callback: it calls it inside the transaction that marks the run
succeeded, so a run is never seen succeeded without its model, and a registration that fails
rolls the success back (the run ends failed with the message). Registering is idempotent per
run (`reward_model_register_run`): a second delivery of the same message, or
`POST /api/reward/models/` with the run's id afterwards, returns the one model.
"""

from __future__ import annotations

from training_bridge.models import TrainingRun
from training_bridge.reward_models.services.registry import reward_model_register_run
from training_bridge.training.services.launchers import training_run_execute


def training_run_model_register(run_id: int) -> None:
    """The launcher's `on_succeeded`: the run's reward model, registered once."""
    reward_model_register_run(run_id=run_id)


def training_run_execute_and_register(*, run_id: int, worker: str = "") -> TrainingRun | None:
    """Execute a queued run in this process; when it succeeds its reward model is registered
    in the same transaction. A run that is not queued is left alone, as by the launcher."""
    return training_run_execute(
        run_id=run_id, worker=worker, on_succeeded=training_run_model_register
    )
