"""Build, dedupe and save a large prompt set into PostgreSQL; report wall time and peak memory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sp_bench_prompts \
        .venv/bin/python bench/prompts/bench_prompts.py --size 1000000 --variant single

The database is created if missing and migrated; the set is deleted afterwards. It runs the
same path as `manage.py build_prompts` (prompt_set_create, then prompt_set_populate).
"""

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

VARIANTS = {
    # GenEval-style one-relation prompts over the 80 COCO classes, no perturbations.
    "single": {
        "templates": ["geneval", "compbench", "visor"],
        "relations": ["left_of", "right_of", "above", "below", "in_front_of", "behind",
                      "on_top_of", "under", "next_to", "near"],
        "tiers": {"single": 1.0},
        "perturbations": {"per_prompt": 0},
    },
    # The same with one perturbed copy per prompt (about 1.9 rows per original).
    "single+perturbed": {
        "templates": ["geneval", "compbench", "visor"],
        "relations": ["left_of", "right_of", "above", "below", "in_front_of", "behind",
                      "on_top_of", "under", "next_to", "near"],
        "tiers": {"single": 1.0},
        "perturbations": {"types": ["swap", "replace", "flip"], "per_prompt": 1},
    },
    # The default tier mix (0.8 single, 0.15 multi, 0.05 scenes of 4-16 relations) + 1 child.
    "mixed+perturbed": {"perturbations": {"per_prompt": 1}},
}  # fmt: skip


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="single")
    parser.add_argument("--keep", action="store_true", help="keep the set afterwards")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database (it is created if missing)")
    ensure_database(url)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from generation_workers.models import Prompt, PromptSet
    from generation_workers.services.prompts import prompt_set_create, prompt_set_populate

    spec = {"size": args.size, "seed": 2026, "vocabulary": "coco", **VARIANTS[args.variant]}
    started = time.perf_counter()
    cpu_started = time.process_time()
    prompt_set = prompt_set_create(name=f"bench-{args.variant}", spec=spec)
    if prompt_set.status == PromptSet.Status.BUILDING:
        prompt_set = prompt_set_populate(prompt_set_id=prompt_set.pk)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    rows = Prompt.objects.filter(prompt_set=prompt_set).count()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"variant={args.variant} originals={args.size} rows={rows} status={prompt_set.status}")
    print(f"wall={wall:.1f}s python_cpu={cpu:.1f}s rows_per_s={rows / wall:,.0f} "
          f"peak_rss={peak_mb:.0f}MB load={os.getloadavg()[0]:.2f}")  # fmt: skip
    if not args.keep:
        Prompt.objects.filter(prompt_set=prompt_set).delete()
        prompt_set.delete()


if __name__ == "__main__":
    main()
