"""The demo: accounts and data that show the whole loop that exists so far.

Each step calls the owning app's services, exactly as the admin and the API do, and is safe to
run again (a second `make demo` reuses what the first one made).
"""

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from config.roles import Role, user_create
from generation_workers.models import PromptSet
from generation_workers.services.prompts import prompt_set_create

log = logging.getLogger(__name__)

DEMO_ACCOUNTS = [("demo-lead", Role.LEAD), ("demo-annotator", Role.ANNOTATOR), ("demo-ml", Role.ML)]


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    role: Role


def demo_logins_ensure(*, logins_file: Path) -> list[Login]:
    """Create the demo accounts; passwords are made once and kept in the (ignored) logins file."""
    known: dict[str, str] = {}
    if logins_file.exists():
        for line in logins_file.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[0] == "login:":
                known[parts[2]] = parts[3]
    logins = []
    for username, role in DEMO_ACCOUNTS:
        password = known.get(username) or secrets.token_urlsafe(9)
        user_create(username=username, password=password, role=role, exist_ok=True)
        logins.append(Login(username=username, password=password, role=role))
    logins_file.parent.mkdir(parents=True, exist_ok=True)
    logins_file.write_text(
        "".join(f"login: {lg.role.value:<10} {lg.username} {lg.password}\n" for lg in logins)
    )
    return logins


DEMO_PROMPT_SPEC = {
    "size": 40,
    "seed": 7,
    "vocabulary": "coco",
    "templates": ["geneval", "compbench"],
    "relations": ["left_of", "right_of", "above", "below", "on_top_of", "next_to"],
    "attributes": {"probability": {"color": 0.4, "size": 0.0}},
    "counts": {"probability": 0.0},
    "tiers": {"single": 0.75, "multi": 0.25},
    "perturbations": {"types": ["swap", "flip", "replace"], "per_prompt": 1},
    "held_out": {"ratios": {"train": 0.7, "val": 0.15, "test": 0.15}},
}


def demo_prompt_set_ensure() -> PromptSet:
    existing = PromptSet.objects.filter(name="demo-prompts", status=PromptSet.Status.READY).first()
    if existing is not None:
        return existing
    return prompt_set_create(name="demo-prompts", spec=DEMO_PROMPT_SPEC)


def demo_seed(*, logins_file: Path) -> list[Login]:
    logins = demo_logins_ensure(logins_file=logins_file)
    prompt_set = demo_prompt_set_ensure()
    log.info("demo.seed.done accounts=%d prompts=%d", len(logins), prompt_set.prompt_count)
    return logins
