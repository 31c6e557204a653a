"""The Kubernetes launcher: a run's built-in trainer as a batch/v1 Job (manifests.py renders it,
api.py talks to the API server, jobs.py submits and follows it for launchers.py)."""
