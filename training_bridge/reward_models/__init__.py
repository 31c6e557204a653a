"""Reward models in use: the registry, the scoring server and active learning.

- `scoring/`: what a scoring process holds (payload checks, checkpoints, the batching engine,
  rankings, comparison tables).
- `services/`: `registry` (register, evaluate, promote, archive, compare), `scoring`,
  `active_learning`.
- `selectors/`, `apis/`, `admin/`, `tasks.py` (evaluate, active learning), `urls.py`.

May import `training_bridge.training` and `training_bridge.datasets`."""
