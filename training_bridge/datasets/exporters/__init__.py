"""Exporters: a frozen version's canonical records written in the formats trainers read.

One module per format (`jsonl`, `parquet`, `hps`, `webdataset`), each exposing
`export(records=..., sink=..., images=..., progress=...)`. They import no Django: they read
chunks of canonical JSON lines, fetch image bytes through a callable, and write files through
an `ArtifactSink` (see `interface.py`) that the export service backs with the default storage.
Everything they write is a function of the records alone, so the same version exports to the
same bytes.
"""

import importlib
from types import ModuleType

FORMAT_MODULES = {
    "jsonl": "training_bridge.datasets.exporters.jsonl",
    "parquet": "training_bridge.datasets.exporters.parquet",
    "hps": "training_bridge.datasets.exporters.hps",
    "webdataset": "training_bridge.datasets.exporters.webdataset",
}


def exporter_for(format: str) -> ModuleType:
    """The format's exporter module, imported on first use: pyarrow stays out of the web
    process and of every Django start-up."""
    return importlib.import_module(FORMAT_MODULES[format])
