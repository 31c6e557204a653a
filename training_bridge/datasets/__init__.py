"""Datasets: what a frozen version contains and the files trainers read.

- `aggregation/` (no Django): filter and split specs, label aggregation, splits, canonical records.
- `exporters/` (no Django): a frozen version's records written as JSONL, Parquet, HPS, WebDataset.
- `services/`: datasets and versions, specs, freezing, manifests, snapshots, exports, artifact
  storage, the recovery of lost freezes and exports.
- `selectors/`: versions and their diff; the selection of judged pairs a version takes.
- `apis/`, `admin/`, `tasks.py` (freeze, export), `urls.py`.

Imports neither `training_bridge.training` nor `training_bridge.reward_models`."""
