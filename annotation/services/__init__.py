"""Writes of the labeling stage, one module per purpose.

- queues.py: labeling queues (create, pause, resume) and who may label them;
- pairs.py: building pairs from a campaign's candidates (and the `cpu` task's build records);
- assignment.py: the hot path: leasing pairs (`next`), heartbeats, expiry;
- judgments.py: submit (idempotent); undo.py: taking back the last answer;
- portable.py: the same rules through the ORM (the SQLite demo); results.py: what they return;
- images.py: opaque image URLs and the WebP thumbnails behind them;
- pg_statements.py: the PostgreSQL statements of the hot path, run as prepared statements.
"""
