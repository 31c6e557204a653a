"""Serving reward models: what a scoring process holds and how requests become forward passes.

- `payloads.py` (no torch): the scoring request's limits and checks: content types (never
  pickle), sizes, base64 and uploaded images opened safely; errors name the field.
- `checkpoints.py`: a registered model's checkpoint folder fetched from the default storage
  into a local cache (once per machine, atomically), then loaded with the trainer's own
  `reward_model_load`.
- `engine.py`: the per-process engine: models loaded once and kept (a few, least recently
  used first out), one batching thread per process that merges concurrent requests for the
  same model into one forward pass.
- `ranking.py` (no torch): rankings within a group (GRPO top-k filtering), the uncertainty of
  a pair's preference (|mean difference| over the combined std) for active learning.
- `tables.py` (no torch): the side-by-side comparison of two models' evaluations.

The HTTP side (request forms, the view) is `training_bridge/reward_models/apis/scoring.py`; the
service that resolves the model to serve and candidate images is `services/scoring.py`.

torch is imported only when a model is loaded, never when Django starts.
"""
