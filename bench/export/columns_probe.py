"""What reading a version's flat fields as database columns would cost the export process.

    .venv/bin/python bench/export/columns_probe.py --database bench_export --dataset bench-all

The alternative to reading them from the canonical lines (issue 15): store the ~25 fields the
Parquet columns need as columns of the records at freeze time and read them back. This probe
builds that table once from a frozen version (`bench_flat_records`, by SQL from the canonical
lines; minutes per million records), then reads it in the exporter's chunks of 5,000 by
position, as the selector would, and turns each column into an arrow array: psycopg's row
objects, then `pa.array` per column. Prints the CPU seconds per million records, per group of
columns and in all; no Parquet is written, so a real exporter would cost more.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

GROUPS = {
    "integers": "pair_id, prompt_id, num_votes, num_perturbations, num_example_per_prompt",
    "agreement": "agreement",
    "short strings": "split, label, kind, intended, perturbation_type",
    "keys and hashes": "group_key, image_a_key, image_b_key, sha_a, sha_b",
    "model names": "model_a, model_b",
    "caption": "caption",
    "votes (JSON)": "votes",
    "judged_at": "judged_at",
    "relations (text[])": "relations",
    "annotator_ids (bigint[])": "annotator_ids",
}

BUILD = """
CREATE TABLE IF NOT EXISTS bench_flat_records AS
SELECT r.version_id, r.position, r.pair_id, r.split, r.label, r.agreement, r.votes,
  r.group_key, r.image_a_key, r.image_b_key, r.prompt_id,
  j->'prompt'->>'text' AS caption,
  j->'candidates'->0->>'model' AS model_a, j->'candidates'->1->>'model' AS model_b,
  j->'candidates'->0->>'sha256' AS sha_a, j->'candidates'->1->>'sha256' AS sha_b,
  (j->>'judged_at')::timestamptz AS judged_at, j->>'kind' AS kind,
  (j->>'num_votes')::int AS num_votes, j->>'intended_winner' AS intended,
  j->>'perturbation_type' AS perturbation_type,
  (j->>'num_perturbations')::int AS num_perturbations,
  ARRAY(SELECT jsonb_array_elements_text(j->'prompt'->'relations')) AS relations,
  ARRAY(SELECT jsonb_array_elements_text(j->'annotator_ids')::bigint) AS annotator_ids,
  (j->>'num_example_per_prompt')::int AS num_example_per_prompt
FROM (SELECT *, canonical::jsonb AS j FROM training_bridge_datasetrecord
      WHERE version_id = %(version)s) r;
CREATE UNIQUE INDEX IF NOT EXISTS bench_flat_records_position
  ON bench_flat_records (version_id, position);
ANALYZE bench_flat_records;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="bench_export")
    parser.add_argument("--dataset", default="bench-all")
    parser.add_argument("--chunk", type=int, default=5_000)
    args = parser.parse_args()
    os.environ.update({
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.database}",
        "DJANGO_SETTINGS_MODULE": "config.settings", "CELERY_BROKER_URL": "memory://",
        "LOG_LEVEL": "WARNING",
    })  # fmt: skip
    import django

    django.setup()
    import pyarrow as pa
    from django.db import connection

    from training_bridge.models import DatasetVersion

    version = DatasetVersion.objects.get(dataset__name=args.dataset, status="frozen").pk
    with connection.cursor() as cursor:
        cursor.execute(BUILD, {"version": version})
        cursor.execute("SELECT count(*) FROM bench_flat_records WHERE version_id = %s", [version])
        (count,) = cursor.fetchone()
    total = 0.0
    for label, columns in GROUPS.items():
        started, start = time.process_time(), 0
        with connection.cursor() as cursor:
            while start < count:
                cursor.execute(
                    f"SELECT {columns} FROM bench_flat_records WHERE version_id = %s "
                    "AND position >= %s AND position < %s ORDER BY position",
                    [version, start, start + args.chunk],
                )
                rows = cursor.fetchall()
                start += args.chunk
                for values in zip(*rows, strict=True):
                    if label.startswith("votes"):  # what a JSONField's from_db_value does
                        values = [json.loads(value) for value in values]
                        for name in ("a", "b", "tie", "both_wrong", "skip"):
                            pa.array([value[name] for value in values], pa.int64())
                    else:
                        pa.array(values)
        seconds = (time.process_time() - started) * 1_000_000 / count
        total += seconds
        print(f"{label}: {seconds:.2f} CPU-s per million records", flush=True)
    print(f"all columns: {total:.2f} CPU-s per million records ({count:,} records)")


if __name__ == "__main__":
    main()
