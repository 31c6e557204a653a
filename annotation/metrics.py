"""The labeling engine's metrics (config/metrics.py serves them).

`JUDGMENTS` counts stored judgments in the process that stored them (a counter in memory: the
hot path gains no statement; rate() of it is judgments/s). `LabelingCollector` computes, when
Prometheus scrapes, each active queue's open pairs (counted along the serving indexes up to
OPEN_PAIRS_CAP, as the annotator's progress counts pairs left) and active leases (the partial
index of active leases, as small as the leases held).
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db import connection
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily

JUDGMENTS = Counter("spatialprefs_judgments", "Judgments stored (replays not counted).")

OPEN_PAIRS_CAP = 10_000
QUEUES_MAX = 200  # active queues reported per scrape

# Each queue's open pairs along the two serving indexes (pair_fresh_order_idx,
# pair_open_order_idx: the predicates are theirs), at most OPEN_PAIRS_CAP of each.
OPEN_PAIRS_SQL = """
SELECT q.name,
  (SELECT count(*) FROM (SELECT 1 FROM annotation_pair p
     WHERE p.queue_id = q.id AND p.fresh AND NOT p.is_gold LIMIT %(cap)s) fresh)
  + (SELECT count(*) FROM (SELECT 1 FROM annotation_pair p
     WHERE p.queue_id = q.id AND NOT p.fresh AND NOT p.is_gold
       AND p.judgments_count < p.judgments_needed - p.reserved_count LIMIT %(cap)s) started)
FROM annotation_labelingqueue q
WHERE q.status = 'active'
ORDER BY q.id
LIMIT %(queues)s
"""

# Unexpired active leases by queue: the partial index of active leases by expiry
# (assignment_expiry_idx), joined to their pairs by key.
ACTIVE_LEASES_SQL = """
SELECT q.name, count(*)
FROM annotation_assignment a
JOIN annotation_pair p ON p.id = a.pair_id
JOIN annotation_labelingqueue q ON q.id = p.queue_id
WHERE a.status = 'active' AND a.expires_at > now()
GROUP BY q.name
"""


def judgment_stored() -> None:
    JUDGMENTS.inc()


class LabelingCollector:
    def collect(self) -> Iterator[GaugeMetricFamily]:
        open_pairs = GaugeMetricFamily(
            "spatialprefs_open_pairs",
            f"Pairs of an active queue that can still be served (counted up to "
            f"{OPEN_PAIRS_CAP} fresh plus {OPEN_PAIRS_CAP} started).",
            labels=["queue"],
        )
        leases = GaugeMetricFamily(
            "spatialprefs_active_leases", "Leases held now, by queue.", labels=["queue"]
        )
        with connection.cursor() as cursor:
            cursor.execute(OPEN_PAIRS_SQL, {"cap": OPEN_PAIRS_CAP, "queues": QUEUES_MAX})
            for name, count in cursor.fetchall():
                open_pairs.add_metric([name], count)
            cursor.execute(ACTIVE_LEASES_SQL)
            for name, count in cursor.fetchall():
                leases.add_metric([name], count)
        yield open_pairs
        yield leases
