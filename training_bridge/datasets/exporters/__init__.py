"""Exporters: a frozen version's canonical records written in the formats trainers read.

One module per format (`jsonl`, `parquet`, `hps`, `webdataset`, `openrlhf`, `arena`), each
exposing `export(records=..., sink=..., images=..., progress=..., image_url_prefix=...)`; every
format but the canonical JSONL shows a pair's two images in the order of `sides.py`. They
import no Django: they read chunks of canonical JSON lines, fetch image bytes through a
callable, and write files through an `ArtifactSink` (see `interface.py`) that the export
service backs with the default storage. Everything they write is a function of the records
alone, so the same version exports to the same bytes.
"""

import importlib
from types import ModuleType

FORMAT_MODULES = {
    "jsonl": "training_bridge.datasets.exporters.jsonl",
    "parquet": "training_bridge.datasets.exporters.parquet",
    "hps": "training_bridge.datasets.exporters.hps",
    "webdataset": "training_bridge.datasets.exporters.webdataset",
    "openrlhf": "training_bridge.datasets.exporters.openrlhf",
    "arena": "training_bridge.datasets.exporters.arena",
}


def exporter_for(format: str) -> ModuleType:
    """The format's exporter module, imported on first use: pyarrow stays out of the web
    process and of every Django start-up."""
    return importlib.import_module(FORMAT_MODULES[format])
