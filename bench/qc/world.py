"""The quality-control benches' database and queues (imported by planted.py and budget.py).

`database_ready` makes (or with fresh=True remakes) a PostgreSQL database, migrates it and sets
Django up on it. `counterfactual_queue` makes a queue of counterfactual pairs (an original
prompt's image against its perturbed prompt's image, distinct content hashes, the intended
winner on either candidate slot) in bulk, some of them gold (marked as a lead marks them:
`quality.pair_gold_mark`), with the queue's quality settings (a lead's choices).
"""

import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out"
BASE = "postgres://postgres@127.0.0.1:5432"


def polite() -> None:
    """This process and its children at nice 19, and their autogroup too (the machine is
    shared; a scheduler with autogroups otherwise gives each session an equal share)."""
    os.nice(19 - os.nice(0))
    try:
        Path("/proc/self/autogroup").write_text("19")
    except OSError:
        pass  # no autogroup scheduling here


def database_ready(*, db: str, base: str = BASE, fresh: bool = False) -> None:
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone()
        if fresh and exists:
            conn.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
        if fresh or not exists:
            conn.execute(f'CREATE DATABASE "{db}"')
    url = f"{base}/{db}"
    env = {**os.environ, "DATABASE_URL": url}
    env.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    os.environ.update({"DATABASE_URL": url, "SECRET_KEY": env["SECRET_KEY"]})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    # Bots are made by the dozen; the password hash is not what these benches measure.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def counterfactual_queue(*, name: str, pairs: int, gold: int, seed: int, **settings):
    """A new queue (an existing one of that name is deleted first, with its pairs' data) of
    `pairs` counterfactual pairs plus `gold` gold ones, open to the annotator group; `settings`:
    `overlap` and the queue's quality settings (labeling_queue_create's `quality`)."""
    from annotation.models import Judgment, LabelingQueue, Pair
    from annotation.services.quality import pair_gold_mark
    from annotation.services.queues import labeling_queue_create
    from generation_workers.models import (
        Campaign,
        Candidate,
        GeneratorConfig,
        Prompt,
        PromptSet,
    )

    old = LabelingQueue.objects.filter(name=name).first()
    if old is not None:
        Judgment.objects.filter(pair__queue=old).delete()
        old.delete()
    queue = labeling_queue_create(
        name=name,
        overlap=settings.pop("overlap", 3),
        allowed_group_names=["annotator"],
        quality=settings,
    )
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:12]  # names and hashes only: the pairs' order follows `seed`
    pset = PromptSet.objects.create(
        name=f"qc-{tag}",
        source=PromptSet.Source.TEMPLATE,
        status=PromptSet.Status.READY,
    )
    config, _ = GeneratorConfig.objects.get_or_create(name="qc-bench", backend="procedural")
    campaign = Campaign.objects.create(name=f"qc {tag}", prompt_set=pset)
    n = pairs + gold
    structure = {"objects": [], "relations": [], "scene": None}
    originals = Prompt.objects.bulk_create(
        Prompt(
            prompt_set=pset,
            text=f"original {i}",
            normalized_text=f"original {i}",
            structure=structure,
            group_key=f"g{i}",
        )
        for i in range(n)
    )
    perturbed = Prompt.objects.bulk_create(
        Prompt(
            prompt_set=pset,
            text=f"perturbed {i}",
            normalized_text=f"perturbed {i}",
            structure=structure,
            group_key=f"g{i}",
            parent=p,
            perturbation_type="swap",
            num_perturbations=1,
        )
        for i, p in enumerate(originals)
    )

    def candidate(prompt, i: int, side: str) -> Candidate:
        sha = f"{tag}-{side}-{i}".encode().hex()[:64].ljust(64, "0")
        return Candidate(
            campaign=campaign,
            prompt=prompt,
            config=config,
            seed=0,
            params_hash="p" * 64,
            status="done",
            storage_key=f"candidates/{sha[:2]}/{sha}.png",
            content_sha256=sha,
        )

    made = []
    for i, (o, p) in enumerate(zip(originals, perturbed, strict=True)):
        # Either order, so the winner is candidate a of some pairs and b of others.
        made += [candidate(o, i, "o"), candidate(p, i, "p")][:: rng.choice((1, -1))]
    made = Candidate.objects.bulk_create(made)
    winners = {c.prompt_id: c for c in made if c.prompt_id in {o.pk for o in originals}}
    by_prompt = {}
    for c in made:
        by_prompt.setdefault(c.prompt.parent_id or c.prompt_id, []).append(c)
    rows = []
    for o in originals:
        a, b = sorted(by_prompt[o.pk], key=lambda c: c.pk)
        rows.append(
            Pair(
                queue=queue,
                candidate_a=a,
                candidate_b=b,
                kind=Pair.Kind.COUNTERFACTUAL,
                prompt=o,
                intended_winner=winners[o.pk],
                judgments_needed=queue.overlap,
            )
        )
    made_pairs = Pair.objects.bulk_create(rows)
    random.seed(seed)  # marking draws each gold pair's place in the gold index from it
    for pair in rng.sample(made_pairs, gold):
        pair_gold_mark(pair_id=pair.pk, winner_id=pair.intended_winner_id, by=None)
    return LabelingQueue.objects.get(pk=queue.pk)
