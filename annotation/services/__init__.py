"""Writes of the labeling stage, one module per purpose.

- queues.py: labeling queues (create, pause, resume) and who may label them;
- pairs.py: building pairs from a campaign's candidates (and the `cpu` task's build records);
- assignment.py: the hot path: leasing pairs (`next`), heartbeats, expiry;
- judgments.py: submit (idempotent); undo.py: taking back the last answer;
- results.py: what they return; images.py: opaque image URLs and the thumbnails behind them;
- statements.py: the hot path's SQL (next, submit, heartbeat, the expiry sweep), each request
  one prepared statement: the only hand-written SQL of this stage.
"""
