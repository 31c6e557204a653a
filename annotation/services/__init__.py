"""Writes of the labeling stage, one module per purpose.

- queues.py: labeling queues (create, pause, resume) and who may label them;
- pairs.py: building pairs from a campaign's candidates (and the `cpu` task's build records);
- assignment.py: the hot path: leasing pairs (`next`), heartbeats, expiry;
- judgments.py: submit (idempotent) and undo;
- images.py: opaque image URLs and the WebP thumbnails behind them;
- pg_statements.py: the PostgreSQL statements of the hot path, run as prepared statements.
"""
