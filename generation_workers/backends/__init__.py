"""Image generator backends, run by the generation workers only.

- `base`: what every backend takes and returns (plain dataclasses), its errors, the batch
  splitting on out-of-memory; no torch.
- `fingerprint`: the revision hash of a model folder and the checks a config gets when saved,
  done without torch so that the web process can run them.
- `diffusion`: the diffusers backend (imports torch and diffusers; workers only).
- `scenes`: the procedural backend, an adapter over the `procedural` renderer (Pillow only).
- `encoding`: PNG / WebP bytes of an image.
- `tiny`: a random-weight Stable Diffusion folder built in code, for tests, benchmarks and
  smoke-testing a worker without downloading weights (imports torch).

Nothing here is imported when Django starts; `base.backend_load` imports a backend on first use.
"""
