"""API of reward models in use (`/api/reward/...`), one module per purpose.

- `scoring.py`: `POST /api/reward/score` for RL trainers (token auth, ML role): a batch of
  (prompt, image) or groups of them, JSON with base64 images or candidate ids, or multipart;
  size-limited, never pickle.
- `registry.py`: list, register, detail, the promoted model of a name, promote, archive,
  compare two models on a version's test split.
- `active_learning.py`: queue the pairs of a campaign the model is least sure of.
"""
