"""Training: reward-model training runs and the commands that execute them.

- `trainer/` (no Django): the built-in PyTorch trainer
  (`python -m training_bridge.training.trainer`).
- `services/`: runs (start, cancel, sweep), their execution on a worker (launchers), the
  launcher definitions, the recovery of lost run messages.
- `selectors/`, `apis/`, `admin/`, `tasks.py` (the stale-heartbeat sweeper), `urls.py`.

May import `training_bridge.datasets`; never `training_bridge.reward_models`. Importing this
package imports nothing else: the trainer runs without Django."""
