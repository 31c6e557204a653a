"""Build the labeling benchmark's database: PostgreSQL with N pairs bulk-loaded by COPY.

    .venv/bin/python bench/labeling/load.py --pairs 1000000 --history 5000

Creates (dropping it first) the database --db (default sp_bench_labeling), migrates it, then
loads prompts, candidates (10 per prompt, 45 pairs per prompt) and pairs with COPY, makes the
annotators (bench0..bench<N-1>, --annotators, 8 by default, 600 for farm.py, and `veteran`; API
tokens in bench/out/tokens-<db>.json) and one queue open to the annotator group. `veteran` gets
--history judgments on pairs at the FRONT of the serving order that stay open (1 of 3
judgments): the worst case for a history check. Quality control (issue 16): --gold-rate,
--gold-pairs (the last pairs become gold, marked as a lead marks them) and adaptive overlap
(--overlap, --overlap-max, --adaptive-margin); the queue never auto-pauses unless
--pause-accuracy says so (the bench's annotators answer at random).
Prints what it loaded and how long it took. `--drop` removes the database and exits.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out"
PER_PROMPT = 10  # candidates per prompt -> 45 unordered pairs per prompt
PAIRS_PER_PROMPT = PER_PROMPT * (PER_PROMPT - 1) // 2


def admin_url(db: str, base: str) -> str:
    return f"{base}/{db}"


def recreate(base: str, db: str) -> None:
    with psycopg.connect(admin_url("postgres", base), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')


def drop(base: str, db: str) -> None:
    with psycopg.connect(admin_url("postgres", base), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def django_setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def copy_rows(cursor, model, rows, columns: list[str]) -> int:
    """COPY rows into a model's table; the columns not given take the fields' defaults."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    given = set(columns)
    defaults = {}
    for f in fields:
        if f.column in given:
            continue
        if f.has_default() or (f.empty_strings_allowed and not f.null):
            value = f.get_default()
            defaults[f.column] = json.dumps(value) if isinstance(value, (dict, list)) else value
        elif getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False):
            defaults[f.column] = "now"
        elif f.null:
            continue
        else:
            raise SystemExit(f"{model.__name__}.{f.name} needs a value in the bench loader")
    cols = columns + list(defaults)
    sql = f"COPY {model._meta.db_table} ({', '.join(cols)}) FROM STDIN"
    n = 0
    now = None
    with cursor.copy(sql) as copy:
        for row in rows:
            extra = []
            for value in defaults.values():
                if value == "now":
                    now = now or time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())
                    extra.append(now)
                else:
                    extra.append(value)
            copy.write_row(list(row) + extra)
            n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--history", type=int, default=5000, help="veteran's past judgments")
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--db", default="sp_bench_labeling")
    parser.add_argument("--base", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--drop", action="store_true", help="drop the database and exit")
    # Quality control (issue 16): the queue's gold rate and adaptive overlap.
    parser.add_argument("--overlap", type=int, default=3, help="the queue's (and pairs') votes")
    parser.add_argument("--overlap-max", type=int, help="adaptive overlap: at most this many")
    parser.add_argument("--adaptive-margin", type=int, default=2)
    parser.add_argument("--gold-rate", type=float, default=0.0)
    parser.add_argument(
        "--gold-pairs",
        type=int,
        default=0,
        help="pairs (the last ones) a lead marked gold, candidate a the answer",
    )
    parser.add_argument(
        "--pause-accuracy",
        type=float,
        default=0.0,
        help="the queue's auto-pause threshold; 0 (never) by default: the bench's annotators "
        "answer at random and would all be paused",
    )
    parser.add_argument(
        "--started",
        action="store_true",
        help="no fresh pairs: every pair counts as leased before (as once a queue's fresh pairs "
        "ran out), so the veteran's judged pairs fill the front of the serving order",
    )
    args = parser.parse_args()
    if args.drop:
        drop(args.base, args.db)
        print(f"dropped {args.db}")
        return
    if args.history * 1 > args.pairs:
        raise SystemExit("--history cannot exceed --pairs")
    url = admin_url(args.db, args.base)
    t0 = time.monotonic()
    recreate(args.base, args.db)
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    t_migrate = time.monotonic() - t0
    django_setup(url)

    from django.conf import settings
    from django.db import connection

    from accounts.services import api_token_create
    from annotation.models import GOLD_CAPACITY, Assignment, Judgment, LabelingQueue, Pair
    from annotation.services.annotators import user_create
    from annotation.services.queues import labeling_queue_create
    from config.roles import Role
    from generation_workers.models import (
        Campaign,
        Candidate,
        GeneratorConfig,
        Prompt,
        PromptSet,
    )

    # Bench accounts log in with tokens only; the default hasher would spend ~0.3 s of CPU on
    # each of a farm's hundreds of passwords.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    users = [
        user_create(username=f"bench{i}", password="bench-pass-1", role=Role.ANNOTATOR)
        for i in range(args.annotators)
    ]
    veteran = user_create(username="veteran", password="bench-pass-1", role=Role.ANNOTATOR)
    # Annotators get tokens from an admin only (the API issues them to staff roles).
    tokens = {u.username: api_token_create(user=u, name="bench").key for u in [*users, veteran]}
    queue = labeling_queue_create(
        name="bench", overlap=args.overlap, allowed_group_names=["annotator"]
    )
    LabelingQueue.objects.filter(pk=queue.pk).update(
        gold_rate=args.gold_rate,
        overlap_max=args.overlap_max,
        adaptive_margin=args.adaptive_margin,
        pause_accuracy=args.pause_accuracy,
    )
    pset = PromptSet.objects.create(
        name="bench", source=PromptSet.Source.TEMPLATE, status=PromptSet.Status.READY
    )
    config = GeneratorConfig.objects.create(name="bench-config", backend="procedural")
    campaign = Campaign.objects.create(name="bench", prompt_set=pset)

    n_prompts = -(-args.pairs // PAIRS_PER_PROMPT)
    t1 = time.monotonic()
    structure = json.dumps(
        {
            "objects": [
                {"id": "o1", "name": "cat", "count": 1, "attributes": {}},
                {"id": "o2", "name": "dog", "count": 1, "attributes": {}},
            ],
            "relations": [{"subject": "o1", "relation": "left_of", "objects": ["o2"]}],
            "scene": None,
        }
    )
    with connection.cursor() as django_cursor:
        cur = django_cursor.cursor  # the psycopg cursor, for COPY
        copy_rows(
            cur,
            Prompt,
            (
                (
                    pset.pk,
                    f"a photo of a cat to the left of a dog, scene {i}",
                    f"a photo of a cat to the left of a dog, scene {i}",
                    structure,
                    f"g{i}",
                    "|left_of|",
                    "|cat|dog|",
                )
                for i in range(n_prompts)
            ),
            [
                "prompt_set_id",
                "text",
                "normalized_text",
                "structure",
                "group_key",
                "relation_keys",
                "object_keys",
            ],
        )
        cur.execute(
            "SELECT min(id) FROM generation_workers_prompt WHERE prompt_set_id = %s", [pset.pk]
        )
        first_prompt = cur.fetchone()[0]

        def candidates():
            for i in range(n_prompts):
                for s in range(PER_PROMPT):
                    sha = f"{i:010d}{s:02d}".ljust(64, "0")
                    yield (
                        campaign.pk,
                        first_prompt + i,
                        config.pk,
                        s,
                        "p" * 64,
                        "done",
                        f"candidates/{sha[:2]}/{sha}.png",
                        sha,
                    )

        copy_rows(
            cur,
            Candidate,
            candidates(),
            [
                "campaign_id",
                "prompt_id",
                "config_id",
                "seed",
                "params_hash",
                "status",
                "storage_key",
                "content_sha256",
            ],
        )
        cur.execute(
            "SELECT min(id) FROM generation_workers_candidate WHERE campaign_id = %s", [campaign.pk]
        )
        first_cand = cur.fetchone()[0]

        def pairs():
            made = 0
            for i in range(n_prompts):
                base = first_cand + i * PER_PROMPT
                for x in range(PER_PROMPT):
                    for y in range(x + 1, PER_PROMPT):
                        if made == args.pairs:
                            return
                        yield (
                            queue.pk,
                            base + x,
                            base + y,
                            "same_prompt",
                            first_prompt + i,
                            args.overlap,
                        )
                        made += 1

        n_pairs = copy_rows(
            cur,
            Pair,
            pairs(),
            [
                "queue_id",
                "candidate_a_id",
                "candidate_b_id",
                "kind",
                "prompt_id",
                "judgments_needed",
            ],
        )
        if args.gold_pairs:
            # The last pairs, so the veteran's history (the first ones) stays regular; each with
            # its place in the gold index NEXT draws from (as quality.pair_gold_mark gives it).
            cur.execute(
                "UPDATE annotation_pair SET is_gold = true, gold_winner_id = candidate_a_id, "
                "gold_source = 'lead', gold_key = random(), judgments_needed = %s "
                "WHERE id IN (SELECT id FROM annotation_pair WHERE queue_id = %s "
                "ORDER BY id DESC LIMIT %s)",
                [GOLD_CAPACITY, queue.pk, args.gold_pairs],
            )
        t_copy = time.monotonic() - t1

        # The veteran's history: judged, still open, at the front of the serving order.
        t2 = time.monotonic()
        if args.history:
            cur.execute(
                "SELECT id, candidate_a_id FROM annotation_pair WHERE queue_id = %s "
                "ORDER BY id LIMIT %s",
                [queue.pk, args.history],
            )
            judged = cur.fetchall()
            stamp = "2026-01-01 00:00:00+00"
            copy_rows(
                cur,
                Assignment,
                (
                    (pid, veteran.pk, a, "submitted", stamp, "2026-01-01 00:10:00+00")
                    for pid, a in judged
                ),
                [
                    "pair_id",
                    "annotator_id",
                    "left_candidate_id",
                    "status",
                    "leased_at",
                    "expires_at",
                ],
            )
            copy_rows(
                cur,
                Judgment,
                (
                    (pid, veteran.pk, str(uuid.uuid4()), a, "left", a, "[]", stamp)
                    for pid, a in judged
                ),
                [
                    "pair_id",
                    "annotator_id",
                    "client_submission_id",
                    "left_candidate_id",
                    "choice",
                    "winner_id",
                    "reason_tags",
                    "created_at",
                ],
            )
            cur.execute(
                "UPDATE annotation_pair SET judgments_count = 1, fresh = false WHERE id = ANY(%s)",
                [[pid for pid, _ in judged]],
            )
        if args.started:
            cur.execute("UPDATE annotation_pair SET fresh = false WHERE queue_id = %s", [queue.pk])
        t_history = time.monotonic() - t2
    t3 = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    t_vacuum = time.monotonic() - t3
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"tokens-{args.db}.json").write_text(
        json.dumps({"queue": queue.pk, "db": args.db, "tokens": tokens}, indent=1)
    )
    with psycopg.connect(url) as conn:
        size = conn.execute(
            "SELECT pg_size_pretty(pg_database_size(current_database()))"
        ).fetchone()[0]
    print(f"database      {args.db} ({size})")
    print(f"prompts       {n_prompts:>10,}")
    print(f"candidates    {n_prompts * PER_PROMPT:>10,}")
    print(f"pairs         {n_pairs:>10,}   (queue {queue.pk})")
    print(f"history       {args.history:>10,}   (veteran's open judged pairs)")
    print(
        f"quality       gold rate {args.gold_rate}, {args.gold_pairs} gold pairs, overlap "
        f"{args.overlap}..{args.overlap_max or args.overlap} (margin {args.adaptive_margin}), "
        f"pause below {args.pause_accuracy}"
    )
    print(f"migrate       {t_migrate:>9.1f}s")
    print(f"COPY          {t_copy:>9.1f}s")
    print(f"history load  {t_history:>9.1f}s")
    print(f"vacuum        {t_vacuum:>9.1f}s")


if __name__ == "__main__":
    main()
