#!/usr/bin/env bash
# Labeling at 10,000,000 pairs (issue 19): the human-pace farm of issue 15 on ten times the pairs.
#
#     bash bench/scale/labeling.sh            # load (COPY) + VACUUM ANALYZE, then the farm
#     SKIP_LOAD=1 bash bench/scale/labeling.sh  # the farm again on the loaded database
#
# load.py prints the database size and how long each load step took; farm.py writes
# bench/out/labeling-scale-10m.json. Results: bench/RESULTS.md ("labeling at 10M pairs").
set -euo pipefail
cd "$(dirname "$0")/../.."
DB=${DB:-sp_scale_10m}
PAIRS=${PAIRS:-10000000}
if [ -z "${SKIP_LOAD:-}" ]; then
    .venv/bin/python bench/labeling/load.py --pairs "$PAIRS" --annotators 600 --db "$DB"
fi
psql "postgres://postgres@127.0.0.1:5432/$DB" -Atc \
    "SELECT 'database size ' || pg_size_pretty(pg_database_size(current_database()))"
.venv/bin/python bench/labeling/farm.py --db "$DB" --annotators 600 --label "scale-10m"
