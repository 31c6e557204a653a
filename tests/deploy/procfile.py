"""deploy/Procfile's process kinds and commands, the reference every deployment file follows."""

import re
import shlex
from pathlib import Path

PROCFILE = Path(__file__).resolve().parents[2] / "deploy" / "Procfile"


def procfile_commands() -> dict[str, list[str]]:
    """deploy/Procfile's commands, split, without their leading VAR=value assignments."""
    kinds = {}
    for line in PROCFILE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        kind, command = line.split(":", 1)
        words = shlex.split(command, posix=True)
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words.pop(0)
        kinds[kind] = words
    return kinds
