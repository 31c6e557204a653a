"""Writes of datasets, one module per purpose.

- `datasets`: datasets and versions (create, freeze request, delete a draft)
- `freezing`: the freeze itself (select, aggregate, split, snapshot, hash)
- `exports`: export requests and runs
- `snapshots`: spec -> frozen, exported version in one call (the demo)
- `manifests`: a version's manifest and the manifest.json beside its artifacts
- `artifacts`: artifact files in the default storage (upload, download URL, image reads)
- `specs`: filter and split specs checked against the database
- `recovery`: freezes and exports whose broker messages were lost, published again
"""
