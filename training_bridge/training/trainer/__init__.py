"""The built-in reward-model trainer (PyTorch). No Django: it reads an exported dataset folder
and writes a checkpoint, metrics and reports into an output folder.

- `config.py` (no torch): the training config, checked and normalised; errors name the key.
- `metrics.py` (no torch): pairwise accuracy with the Pick-a-Pic tie rule and its breakdowns.
- `data.py`: the exported Parquet shards or WebDataset tars of a split, read into pairs.
- `models/`: the two backbones (a CLIP-style model from a local transformers folder, and a small
  convolutional image encoder with a GRU text encoder trained from scratch) and their heads.
- `losses.py`: Bradley-Terry over (preferred, other) with ties as 0.5, and its Gaussian form.
- `loop.py`: training, per-epoch validation, early stopping, the test report; DDP and mixed
  precision on GPUs; deterministic on CPU for a seed.
- `checkpoint.py`: save and load (`reward_model_load(folder).score(...)`).
- `events.py`: the metrics JSONL the launcher tails, and the stop checks (cancel, parent gone).
- `tracking.py`: the same metrics to TensorBoard event files (always) and to MLflow or W&B
  (when the environment configures them).

Run it as
`python -m training_bridge.training.trainer --dataset-dir D --output-dir O --config C.json`
(or under `torchrun`). torch is imported only by the modules that need it; importing this
package, `config` or `metrics` does not import torch.
"""
