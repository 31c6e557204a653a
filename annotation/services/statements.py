"""The labeling hot path's statements: the only hand-written SQL of the labeling stage.

Why SQL here and the ORM elsewhere: each request of the annotator's loop (`next`, `submit`,
`heartbeat`) is ONE statement. The access check, the reads, the row locks and the writes are
CTEs of a single statement, so it is its own transaction in autocommit (no BEGIN/COMMIT round
trips, no lock held across a round trip) and is prepared once per connection with a generic
plan (config/db.py `statement_run`), so PostgreSQL plans it once, not on every request. The
ORM would need a transaction and four to six round trips per request; bench/labeling/
RESULTS.md has what that buys at the farm's pace. Undo, queue management and the leads' paths
are rare and use the ORM.

Every statement that may run non-durably ends in `FROM (SELECT 1) AS one` (config.db.ONE), so
that `durable=False` can turn synchronous_commit off inside the statement.

Lock order, everywhere: the pair row first, then assignment rows. NEXT and RECLAIM take pair
rows with SKIP LOCKED (they never wait for a pair); SUBMIT waits for its one pair; HEARTBEAT
takes assignment rows with SKIP LOCKED. No cycle can form.

The partial-index predicates are written exactly as Django writes the indexes' conditions
(annotation/models.py), so the planner can prove they apply.

The statements:
- NEXT (`next_sql`): lease up to `count` pairs to an annotator, held ones first.
- RECLAIM (`reclaim_sql`): give the slots of leases past their expiry back to the pool.
- SUBMIT_SQL: store an answer once per client submission id, against a lease that holds.
- SUBMISSION_SQL: a submission id seen before (reads only).
- HEARTBEAT_SQL: push the expiry of the annotator's leases on the pairs on screen.
- ITEMS_SQL: the items of leases held (reads only; undo returns the pair as NEXT shows it,
  through the same item columns, so what an item shows is written once).
- PROGRESS (`progress_sql`): the annotator's counts of the day and the pairs the queue can
  still lease out (reads only). Every open labeling page asks for it each minute; through the
  ORM it was six round trips per call, and the farm figure of bench/labeling/RESULTS.md showed it.
"""

# The access check shared by the statements: the queue is active and the user is listed in
# it, directly or through a group. Yields one row when the user may label the queue now.
_ACCESS = """
    SELECT q.id, q.lease_seconds, q.prefetch, q.gold_rate, q.qualification_gold
    FROM annotation_labelingqueue q
    WHERE q.id = %(queue)s AND q.status = 'active'
      AND (EXISTS (SELECT 1 FROM annotation_labelingqueue_allowed_users au
                   WHERE au.labelingqueue_id = q.id AND au.user_id = %(user)s)
           OR EXISTS (SELECT 1 FROM annotation_labelingqueue_allowed_groups ag
                      JOIN auth_user_groups ug ON ug.group_id = ag.group_id
                      WHERE ag.labelingqueue_id = q.id AND ug.user_id = %(user)s))
"""

# What an item on screen needs: the prompt judged against and the two images in the order
# shown. Nothing about models, seeds, lineage or the intended winner. A LATERAL block of
# primary-key lookups per item, so its cost never depends on table sizes. The API hands out
# only references to (pair, side) (services/images.py); the images' hashes and keys are for
# the services' callers that act on what was shown (simulated annotators in tests and bench).
_ITEM_COLUMNS = """
    it.text, it.structure, it.l_sha, it.l_key, it.r_sha, it.r_key
"""


def _item_lateral(pair: str, left: str) -> str:
    return f"""
    LEFT JOIN LATERAL (
        SELECT pr.text, pr.structure, ip.priority, ip.judgments_count,
               cl.content_sha256 AS l_sha, cl.storage_key AS l_key,
               cr.content_sha256 AS r_sha, cr.storage_key AS r_key
        FROM annotation_pair ip
        JOIN generation_workers_prompt pr ON pr.id = ip.prompt_id
        JOIN generation_workers_candidate cl ON cl.id = {left}
        JOIN generation_workers_candidate cr ON cr.id = (
            CASE WHEN {left} = ip.candidate_a_id THEN ip.candidate_b_id
                 ELSE ip.candidate_a_id END)
        WHERE ip.id = {pair}
    ) it ON true
"""


# Started pairs with a free slot (pair_open_order_idx): only pairs someone was leased, so the
# annotator's history must be checked against them.
_OPEN = """annotation_pair w
            WHERE w.queue_id = %(queue)s AND NOT w.fresh AND NOT w.is_gold
              AND w.judgments_count < (w.judgments_needed - w.reserved_count)"""


def _gold_walk(side: str, count: int) -> str:
    """Gold pairs this annotator was never leased, walking the gold index (queue, gold_key)
    from the plan's random key (`>=`), then from its start (`<`): a uniform draw from the pool,
    each gold pair at most once to each annotator, one probe of the (pair, annotator) index per
    gold pair passed, whatever the pool's size. OFFSET 0 keeps the probe a per-row lookup
    (pulled up into an anti-join, a plan hashed every lease of the annotator's instead)."""
    return f"""
    SELECT p.id, p.candidate_a_id, p.candidate_b_id
    FROM annotation_pair p
    WHERE p.queue_id = %(queue)s AND p.is_gold AND (SELECT gold_k FROM plan) > 0
      AND p.gold_key {side} (SELECT draw FROM plan)
      AND p.judgments_count < (p.judgments_needed - p.reserved_count)
      AND NOT EXISTS (SELECT 1 FROM annotation_assignment x
                      WHERE x.pair_id = p.id AND x.annotator_id = %(user)s OFFSET 0)
    ORDER BY p.queue_id, p.gold_key
    LIMIT {int(count)}
    FOR UPDATE OF p SKIP LOCKED
"""


def next_sql(*, count: int, window: int | None) -> str:
    """NEXT: lease up to `count` pairs (counting the ones already held) to an annotator.

    Reads two index ranges in serving order (priority, then most judgments, then oldest):
    - started pairs with a free slot (pair_open_order_idx), only the first `window` of them,
      minus the ones this annotator judged, skipped or holds: a probe of the unique
      (pair, annotator) index per row, so the cost does not depend on the history's length;
      `window=None` scans every started pair in serving order until `count` are found (the
      exact answer, for when the window came up short);
    - fresh pairs (pair_fresh_order_idx): nobody was ever leased them, so no history check.
    Locks: the chosen pair rows, FOR UPDATE SKIP LOCKED (concurrent annotators never wait for
    each other and never take the same slot; PostgreSQL re-checks the quals on a locked row's
    newest version), then inserts or revives the lease rows and bumps the pairs' reservations.
    One statement, so the check, the pick and the writes see one snapshot and hold the pair
    locks only while it runs.
    The limits are literals (the number still wanted is applied when choosing): with a limit
    the planner cannot see it assumes a tenth of the table, and at a million pairs the cost
    estimate crosses PostgreSQL's JIT threshold, so every call would compile the plan.
    Held pairs listed in `known` (the client shows them already) come back as ids only.
    Columns: queue_ok, holding (held + newly leased), known_held, lease_due (some lease in any
    queue is past its expiry: the first entry of assignment_expiry_idx, so the caller sweeps
    only when there is something to sweep; written as ORDER BY ... LIMIT 1 because an EXISTS
    let the generic plan filter every live lease through the annotator index instead), then
    one row per item: is_new, pair id, expiry and the item columns.
    """
    count = int(count)
    if window is None:
        # One ordered scan of every started pair, stopping at the first `count` it may take.
        started = "p.queue_id = %(queue)s"
    else:
        # The first `window` started pairs in serving order: a fixed number of probes.
        started = f"""p.id = ANY (ARRAY(
            SELECT w.id FROM {_OPEN}
            ORDER BY w.priority DESC, w.judgments_count DESC, w.id LIMIT {int(window)}))"""
    return f"""
WITH q AS ({_ACCESS}),
st AS (
    SELECT s.status, s.served, s.gold_served, s.next_gold_at
    FROM annotation_annotatorqueuestate s
    WHERE s.queue_id = %(queue)s AND s.annotator_id = %(user)s
),
held AS (
    SELECT a.pair_id, a.left_candidate_id, a.expires_at, a.leased_at
    FROM annotation_assignment a
    JOIN annotation_pair hp ON hp.id = a.pair_id
    WHERE a.annotator_id = %(user)s AND a.status = 'active' AND a.expires_at > statement_timestamp()
      AND hp.queue_id = %(queue)s AND EXISTS (SELECT 1 FROM q)
    ORDER BY a.leased_at, a.pair_id
    LIMIT {count}
),
want AS (SELECT GREATEST({count} - count(*), 0) AS k FROM held),
plan AS (
    -- Where this annotator stands in the queue's stream: paused (nothing new), qualifying
    -- (gold only, up to the queue's qualification count) or active (a gold item when the
    -- stream reaches next_gold_at). Without a state row: qualifying if the queue asks for it,
    -- and the first gold position drawn in 1..B (B = 1 / gold_rate).
    SELECT b.*,
           CASE WHEN b.status IN ('paused', 'disqualified') THEN 0
                WHEN b.status = 'qualifying'
                    THEN LEAST(b.k, GREATEST(b.qualification_gold - b.gold_served, 0))
                WHEN b.block > 0 AND b.next_gold <= b.served + b.k THEN LEAST(b.k, 1)
                ELSE 0 END AS gold_k,
           CASE WHEN b.status IN ('active') THEN b.k ELSE 0 END AS regular_k
    FROM (
        SELECT w.k, q.qualification_gold,
               COALESCE(st.status, CASE WHEN q.qualification_gold > 0 THEN 'qualifying'
                                        ELSE 'active' END) AS status,
               COALESCE(st.served, 0) AS served, COALESCE(st.gold_served, 0) AS gold_served,
               g.block, random() AS draw,
               COALESCE(st.next_gold_at, 1 + floor(random() * g.block)::int) AS next_gold
        FROM q CROSS JOIN want w
        CROSS JOIN LATERAL (SELECT CASE WHEN q.gold_rate > 0
                                        THEN GREATEST(round(1 / q.gold_rate)::int, 2)
                                        ELSE 0 END AS block) g
        LEFT JOIN st ON true
    ) b
),
gold_after AS ({_gold_walk(">=", count)}),
gold_before AS ({_gold_walk("<", count)}),
gold_pick AS (
    -- read lazily: the second walk runs only when the first comes up short
    SELECT u.* FROM (SELECT * FROM gold_after UNION ALL SELECT * FROM gold_before) u
    LIMIT (SELECT gold_k FROM plan)
),
open_pick AS (
    SELECT p.id, p.priority, p.judgments_count, p.candidate_a_id, p.candidate_b_id
    FROM annotation_pair p
    WHERE {started} AND EXISTS (SELECT 1 FROM q)
      AND NOT p.fresh AND NOT p.is_gold
      AND p.judgments_count < (p.judgments_needed - p.reserved_count)
      AND NOT EXISTS (SELECT 1 FROM annotation_assignment x
                      WHERE x.pair_id = p.id AND x.annotator_id = %(user)s
                        AND x.status <> 'expired')
    ORDER BY p.priority DESC, p.judgments_count DESC, p.id
    LIMIT {count}
    FOR UPDATE OF p SKIP LOCKED
),
fresh_pick AS (
    SELECT p.id, p.priority, p.judgments_count, p.candidate_a_id, p.candidate_b_id
    FROM annotation_pair p
    WHERE p.queue_id = %(queue)s AND p.fresh AND NOT p.is_gold AND EXISTS (SELECT 1 FROM q)
    ORDER BY p.priority DESC, p.id
    LIMIT {count}
    FOR UPDATE OF p SKIP LOCKED
),
chosen AS (
    SELECT u.*, row_number() OVER (
               ORDER BY u.priority DESC, u.judgments_count DESC, u.id)::float AS slot
    FROM (SELECT * FROM open_pick UNION ALL SELECT * FROM fresh_pick) u
    ORDER BY u.priority DESC, u.judgments_count DESC, u.id
    LIMIT GREATEST((SELECT LEAST(k, regular_k) FROM plan) - (SELECT count(*) FROM gold_pick), 0)
),
picked AS (
    -- The gold item takes its place in the batch at its stream position: nothing in the
    -- answer's order tells it from the others.
    SELECT c.id, c.candidate_a_id, c.candidate_b_id, c.slot FROM chosen c
    UNION ALL
    SELECT g.id, g.candidate_a_id, g.candidate_b_id,
           (SELECT GREATEST(next_gold - served, 1) - 0.5 FROM plan) FROM gold_pick g
),
leased AS (
    INSERT INTO annotation_assignment
        (pair_id, annotator_id, left_candidate_id, status, leased_at, expires_at)
    SELECT c.id, %(user)s,
           CASE WHEN random() < 0.5 THEN c.candidate_a_id ELSE c.candidate_b_id END,
           'active', statement_timestamp(),
           statement_timestamp() + make_interval(secs => (SELECT lease_seconds FROM q))
    FROM picked c
    ON CONFLICT ON CONSTRAINT assignment_unique_per_annotator DO UPDATE
        SET status = 'active', leased_at = EXCLUDED.leased_at, expires_at = EXCLUDED.expires_at
        WHERE annotation_assignment.status = 'expired'
    RETURNING pair_id, left_candidate_id, expires_at, leased_at
),
bumped AS (
    UPDATE annotation_pair bp SET reserved_count = bp.reserved_count + 1, fresh = false
    FROM leased l WHERE bp.id = l.pair_id
    RETURNING bp.id
),
placed AS (
    -- The annotator's place in the stream, kept only for queues that use gold: items served,
    -- gold among them, and the position of the next gold item. A gold item that was due (or
    -- found none left to serve) moves the next one B - B/2 .. B + B/2 items on: about one in
    -- B, never two in a row, never bunched, and not at a fixed period an annotator could count.
    INSERT INTO annotation_annotatorqueuestate AS s
        (annotator_id, queue_id, status, served, gold_served, next_gold_at, gold_answers,
         gold_correct, window_answers, window_correct, reason)
    SELECT %(user)s, %(queue)s, pl.status, pl.served + n.total, pl.gold_served + n.gold,
           CASE WHEN pl.block = 0 THEN NULL
                WHEN pl.gold_k > 0 OR pl.next_gold <= pl.served + n.total
                    THEN GREATEST(pl.next_gold, pl.served + 1) + pl.block - pl.block / 2
                         + floor(random() * (2 * (pl.block / 2) + 1))::int
                ELSE pl.next_gold END,
           0, 0, 0, 0, ''
    FROM plan pl
    CROSS JOIN (SELECT count(*) AS total,
                       count(*) FILTER (WHERE l.pair_id IN (SELECT id FROM gold_pick)) AS gold
                FROM leased l) n
    WHERE n.total > 0 AND (pl.block > 0 OR pl.qualification_gold > 0)
    ON CONFLICT ON CONSTRAINT annotatorqueuestate_unique DO UPDATE
        SET served = s.served + (EXCLUDED.served - (SELECT served FROM plan)),
            gold_served = s.gold_served + (EXCLUDED.gold_served - (SELECT gold_served FROM plan)),
            next_gold_at = EXCLUDED.next_gold_at
    RETURNING s.id
)
SELECT (SELECT count(*) FROM q) AS queue_ok,
       (SELECT count(*) FROM held) + (SELECT count(*) FROM leased) AS holding,
       (SELECT array_agg(h.pair_id ORDER BY h.leased_at, h.pair_id) FROM held h
        WHERE h.pair_id = ANY(%(known)s)) AS known_held,
       COALESCE((SELECT d.expires_at < statement_timestamp() FROM annotation_assignment d
                 WHERE d.status = 'active' ORDER BY d.expires_at LIMIT 1), false) AS lease_due,
       (SELECT status FROM plan) AS standing,
       (SELECT count(*) FROM placed) AS placed,
       x.is_new, x.pair_id, x.expires_at,
       {_ITEM_COLUMNS}
FROM (SELECT 1) AS one
LEFT JOIN (
    SELECT h.pair_id, h.left_candidate_id, h.expires_at, h.leased_at, false AS is_new,
           0::float AS slot
    FROM held h WHERE NOT h.pair_id = ANY(%(known)s)
    UNION ALL
    SELECT l.pair_id, l.left_candidate_id, l.expires_at, l.leased_at, true, pk.slot
    FROM leased l JOIN picked pk ON pk.id = l.pair_id
) x ON true
{_item_lateral("x.pair_id", "x.left_candidate_id")}
ORDER BY x.is_new, x.leased_at, x.slot, x.pair_id
"""


def reclaim_sql(*, limit: int) -> str:
    """RECLAIM: up to `limit` leases past their expiry (any queue) go back to the pool.

    Locks: their pair rows first, FOR UPDATE SKIP LOCKED (a pair being submitted or leased is
    left for the next sweep), then the leases, marked expired, and the pairs' reservations
    released. One statement, so a lease is never marked expired without its slot coming back.
    The expiry index (assignment_expiry_idx) makes an empty sweep one probe.
    Columns: leases expired, pairs freed.
    """
    return RECLAIM_SQL.replace("LIMIT_LITERAL", str(int(limit)))


RECLAIM_SQL = """
WITH due AS (
    SELECT a.pair_id FROM annotation_assignment a
    WHERE a.status = 'active' AND a.expires_at < statement_timestamp()
    ORDER BY a.expires_at
    LIMIT LIMIT_LITERAL
),
locked AS (
    SELECT p.id FROM annotation_pair p
    WHERE p.id IN (SELECT pair_id FROM due)
    FOR UPDATE OF p SKIP LOCKED
),
expired AS (
    UPDATE annotation_assignment a SET status = 'expired'
    FROM locked l
    WHERE a.pair_id = l.id AND a.status = 'active' AND a.expires_at < statement_timestamp()
    RETURNING a.pair_id
),
freed AS (
    UPDATE annotation_pair p SET reserved_count = p.reserved_count - e.n
    FROM (SELECT pair_id, count(*) AS n FROM expired GROUP BY pair_id) e
    WHERE p.id = e.pair_id
    RETURNING p.id
)
SELECT (SELECT count(*) FROM expired), (SELECT count(*) FROM freed)
FROM (SELECT 1) AS one
"""


# The settle rule (services/quality.py), shared by SUBMIT_SQL and SETTLE_SQL. Given CTEs
# `settling` (the pair at its target: id, judgments_needed, intended_winner_id,
# adaptive_margin, maximum) and `votes` (answer, n: left/right as the candidate, tie, both
# wrong; skips are no votes): the leading answer leads the next by `adaptive_margin` votes (at
# most the target): confident. Else, below the queue's maximum (overlap_max, or overlap): one
# more vote is wanted (extend 1, still collecting). Else: ambiguous. Settled with one answer
# clearly ahead (margin > 0) that is not a counterfactual pair's intended winner: disputed.
# Gives `decided` (id, resolution, extend, disputed).
_SETTLE_RULE = """
ranked AS (
    SELECT answer, n, row_number() OVER (ORDER BY n DESC, answer) AS place FROM votes
),
tally AS (
    SELECT s.*,
           COALESCE((SELECT n FROM ranked WHERE place = 1), 0)
               - COALESCE((SELECT n FROM ranked WHERE place = 2), 0) AS margin,
           (SELECT answer FROM ranked WHERE place = 1) AS leader
    FROM settling s
),
ruled AS (
    SELECT t.id, t.intended_winner_id, t.margin, t.leader,
           CASE WHEN t.margin >= LEAST(t.adaptive_margin, GREATEST(t.judgments_needed, 1))
                    THEN 'confident'
                WHEN t.judgments_needed < t.maximum THEN ''
                ELSE 'ambiguous' END AS resolution
    FROM tally t
),
decided AS (
    SELECT r.id, r.resolution, (CASE WHEN r.resolution = '' THEN 1 ELSE 0 END) AS extend,
           (r.resolution <> '' AND r.intended_winner_id IS NOT NULL AND r.margin > 0
            AND r.leader <> 'w' || r.intended_winner_id) AS disputed
    FROM ruled r
)"""

# A pair's settle facts, joined with its queue `q` (for `settling`).
_SETTLE_FACTS = """p.id, p.judgments_needed, p.intended_winner_id, q.adaptive_margin,
           GREATEST(COALESCE(q.overlap_max, q.overlap), p.judgments_needed) AS maximum"""

# A judgment's vote (for `votes`).
_VOTE = "CASE WHEN j.choice IN ('left', 'right') THEN 'w' || j.winner_id ELSE j.choice END"


# SUBMIT_SQL: store an answer, idempotent by client submission id, against a lease that can
# still be honoured. Locks: the pair row (FOR UPDATE: concurrent submits of one pair queue up
# there), then this annotator's lease row. One statement, so the pair's counters, the judgment
# and the lease's status change together or not at all, with no lock held across a round trip.
# - `prev`: a judgment (or an undone one) with this submission id: nothing is written.
# - `p`: the pair, locked (concurrent submits of one pair queue up here), with the queue's
#   state and whether the user may label it.
# - `a`: this annotator's lease on it, locked. An active lease is honoured even past its
#   expiry until the sweep has released it (its slot is still reserved); a released one is
#   honoured only while the pair has a free slot.
# - `counted` takes the decision on the pair row itself; the judgment row and the lease's
#   status follow from it, so the three change together or not at all. A duplicate
#   submission id raises (unique index): the whole statement is undone and the caller looks
#   the submission up.
# - An answer that brings a pair (not gold, not a review copy) to its target settles it in
#   the same row update (_SETTLE_RULE on the pair's judgments and this answer). The statement
#   sees the judgments committed before it began; one committed while it waited for the pair's
#   lock is missing from them (their count is below the pair's): then `settle_later`, and
#   the caller settles it with SETTLE_SQL.
SUBMIT_SQL = f"""
WITH prev AS (
    SELECT j.id, j.pair_id, j.annotator_id, j.choice, j.reason_tags, j.duration_ms,
           j.created_at, false AS undone
    FROM annotation_judgment j WHERE j.client_submission_id = %(sid)s
    UNION ALL
    SELECT u.id, u.pair_id, u.annotator_id, u.choice, NULL, NULL, u.judged_at, true
    FROM annotation_undonejudgment u WHERE u.client_submission_id = %(sid)s
),
p AS (
    SELECT {_SETTLE_FACTS},
           p.candidate_a_id, p.candidate_b_id, p.judgments_count, p.reserved_count,
           q.status AS queue_status, p.is_gold, p.gold_winner_id, p.review_of_id, p.review,
           q.kind AS queue_kind, q.review_queue_id,
           NOT p.is_gold AND p.review_of_id IS NULL AND %(choice)s::text <> 'skip'
               AND p.judgments_count + 1 >= p.judgments_needed AS settles,
           EXISTS (SELECT 1 FROM ({_ACCESS}) acc) AS allowed
    FROM annotation_pair p
    JOIN annotation_labelingqueue q ON q.id = p.queue_id
    WHERE p.id = %(pair)s AND p.queue_id = %(queue)s AND NOT EXISTS (SELECT 1 FROM prev)
    FOR UPDATE OF p
),
a AS (
    SELECT a.id, a.status, a.left_candidate_id, p.candidate_a_id, p.candidate_b_id,
           p.judgments_count, p.reserved_count, p.judgments_needed
    FROM annotation_assignment a
    JOIN p ON a.pair_id = p.id
    -- pair and annotator as parameters: one probe of the unique (pair, annotator) index (a
    -- join on p alone let the generic plan walk the annotator's whole history instead)
    WHERE a.pair_id = %(pair)s AND a.annotator_id = %(user)s
      AND p.allowed AND p.queue_status = 'active'
    FOR UPDATE OF a
),
ok AS (
    SELECT a.*,
           CASE %(choice)s::text
               WHEN 'left' THEN a.left_candidate_id
               WHEN 'right' THEN (CASE WHEN a.left_candidate_id = a.candidate_a_id
                                       THEN a.candidate_b_id ELSE a.candidate_a_id END)
           END AS winner_id
    FROM a WHERE a.status IN ('active', 'expired')
),
seen AS (
    -- the pair's counted judgments, read only when this answer settles it
    SELECT j.choice, j.winner_id FROM annotation_judgment j
    WHERE j.pair_id = %(pair)s AND j.choice <> 'skip' AND (SELECT bool_or(settles) FROM p)
),
settling AS (
    SELECT p.id, p.judgments_needed, p.intended_winner_id, p.adaptive_margin, p.maximum
    FROM p, ok
    WHERE p.settles AND (SELECT count(*) FROM seen) = p.judgments_count
),
votes AS (
    SELECT answer, count(*) AS n FROM (
        SELECT {_VOTE} AS answer FROM seen j
        UNION ALL
        SELECT CASE WHEN %(choice)s::text IN ('left', 'right') THEN 'w' || ok.winner_id
                    ELSE %(choice)s::text END
        FROM ok
    ) v
    WHERE EXISTS (SELECT 1 FROM settling)
    GROUP BY answer
),
{_SETTLE_RULE.strip()},
counted AS (
    -- The decision is taken here, on the pair row's newest version (an UPDATE re-checks its
    -- WHERE on it): an active lease gives back its reserved slot; a released one needs a free
    -- slot. Nothing below is written unless this row is.
    UPDATE annotation_pair cp
    SET judgments_count = cp.judgments_count
            + (CASE WHEN %(choice)s::text = 'skip' THEN 0 ELSE 1 END),
        reserved_count = cp.reserved_count - (CASE WHEN ok.status = 'active' THEN 1 ELSE 0 END),
        judgments_needed = cp.judgments_needed + COALESCE(d.extend, 0),
        resolution = COALESCE(d.resolution, cp.resolution),
        disputed = COALESCE(d.disputed, cp.disputed)
    FROM ok LEFT JOIN decided d ON true
    WHERE cp.id = %(pair)s
      AND ((ok.status = 'active' AND cp.reserved_count >= 1)
           OR (ok.status = 'expired'
               AND cp.judgments_count < (cp.judgments_needed - cp.reserved_count)))
    RETURNING cp.judgments_count, cp.resolution, cp.disputed
),
j AS (
    INSERT INTO annotation_judgment
        (pair_id, annotator_id, client_submission_id, left_candidate_id, choice, winner_id,
         reason_tags, criteria_choices, duration_ms, created_at)
    SELECT %(pair)s, %(user)s, %(sid)s, ok.left_candidate_id, %(choice)s::text, ok.winner_id,
           %(tags)s, %(criteria)s, %(duration)s, statement_timestamp()
    FROM ok, counted
    RETURNING id, created_at, winner_id
),
lease_done AS (
    UPDATE annotation_assignment a SET status = 'submitted'
    FROM ok, j
    WHERE a.id = ok.id
    RETURNING a.id
)
SELECT (SELECT count(*) FROM prev) AS replay,
       (SELECT count(*) FROM p) AS pair_found,
       (SELECT bool_or(allowed) FROM p) AS allowed,
       (SELECT min(queue_status) FROM p) AS queue_status,
       (SELECT min(status) FROM a) AS lease_status,
       (SELECT count(*) FROM ok) AS leases,
       (SELECT min(id) FROM j) AS judgment_id,
       (SELECT min(created_at) FROM j) AS created_at,
       (SELECT min(judgments_count) FROM counted) AS judgments_count,
       (SELECT min(judgments_count) FROM p) AS count_before,
       (SELECT min(judgments_needed) FROM p) AS judgments_needed,
       (SELECT bool_or(is_gold) FROM p) AS is_gold,
       (SELECT min(j.winner_id) = min(p.gold_winner_id) FROM j, p) AS gold_correct,
       (SELECT min(review_of_id) FROM p) AS review_of,
       (SELECT bool_or(settles) FROM p) AND NOT EXISTS (SELECT 1 FROM settling)
           AND EXISTS (SELECT 1 FROM counted) AS settle_later,
       (SELECT bool_or((d.resolution = 'ambiguous' OR d.disputed) AND p.review_queue_id IS NOT NULL
                       AND p.review = '' AND p.queue_kind = 'labeling')
        FROM decided d, p, counted) AS review_due
"""

# SETTLE_SQL: settle a pair at its target (_SETTLE_RULE) when the submit that brought it there
# could not (see SUBMIT_SQL), or again (idempotent: an extended pair is no longer at its
# target; a settled one settles the same way again). Locks: the pair row. Not at its target,
# gold, or a review queue's copy: nothing. Its own statement, after the pair's lock is taken
# by the submit that came before, so it sees every judgment.
# Columns: resolution, judgments_needed, disputed, whether it goes to the review queue.
SETTLE_SQL = f"""
WITH p AS (
    SELECT {_SETTLE_FACTS}, p.review, q.kind AS queue_kind, q.review_queue_id
    FROM annotation_pair p
    JOIN annotation_labelingqueue q ON q.id = p.queue_id
    WHERE p.id = %(pair)s AND NOT p.is_gold AND p.review_of_id IS NULL
      AND p.judgments_count >= p.judgments_needed
    FOR UPDATE OF p
),
settling AS (
    SELECT p.id, p.judgments_needed, p.intended_winner_id, p.adaptive_margin, p.maximum FROM p
),
votes AS (
    SELECT {_VOTE} AS answer, count(*) AS n
    FROM annotation_judgment j
    WHERE j.pair_id = %(pair)s AND j.choice <> 'skip' AND EXISTS (SELECT 1 FROM p)
    GROUP BY 1
),
{_SETTLE_RULE.strip()},
settled AS (
    UPDATE annotation_pair sp
    SET judgments_needed = sp.judgments_needed + d.extend,
        resolution = d.resolution,
        disputed = d.disputed
    FROM decided d
    WHERE sp.id = d.id
    RETURNING sp.resolution, sp.judgments_needed, sp.disputed
)
SELECT s.resolution, s.judgments_needed, s.disputed,
       (s.resolution = 'ambiguous' OR s.disputed) AND p.review_queue_id IS NOT NULL
           AND p.review = '' AND p.queue_kind = 'labeling' AS review_due
FROM settled s, p
"""

# GOLD_SQL: count one gold answer (not a skip) in the annotator's standing in the queue: the
# counters, the queue's trust and the overall one on the profile (the gold posterior
# (correct + 1) / (answers + 2), annotation.stats.posterior_accuracy). Only the first answer to
# a gold pair counts: none of theirs on it was undone (with feedback on, an undo would turn a
# miss into a hit). Locks: the state row; the profile row. The queue's qualification and pause
# rules are applied to the counts it returns (services/quality.py).
# Columns: whether the state exists, whether it counted, the status and counts after it, the
# queue's rule settings (quality.StandingRules), and the missed pair's explanation ('' when it
# has none) when the queue gives feedback, else null.
GOLD_SQL = """
WITH counted AS (
    UPDATE annotation_annotatorqueuestate s
    SET gold_answers = s.gold_answers + 1,
        gold_correct = s.gold_correct + %(correct)s::int,
        window_answers = s.window_answers + 1,
        window_correct = s.window_correct + %(correct)s::int,
        trust = (s.gold_correct + %(correct)s::int + 1)::float8 / (s.gold_answers + 3)
    WHERE s.queue_id = %(queue)s AND s.annotator_id = %(user)s
      AND NOT EXISTS (SELECT 1 FROM annotation_undonejudgment u
                      WHERE u.pair_id = %(pair)s AND u.annotator_id = %(user)s)
    RETURNING s.status, s.gold_answers, s.gold_correct, s.window_answers, s.window_correct
),
elsewhere AS (
    SELECT COALESCE(sum(o.gold_answers), 0) AS answers, COALESCE(sum(o.gold_correct), 0) AS correct
    FROM annotation_annotatorqueuestate o
    WHERE o.annotator_id = %(user)s AND o.queue_id <> %(queue)s AND EXISTS (SELECT 1 FROM counted)
),
profile AS (
    INSERT INTO annotation_annotatorprofile (user_id, quality_score, notes, created_at)
    SELECT %(user)s, (e.correct + c.gold_correct + 1)::float8 / (e.answers + c.gold_answers + 2),
           '', statement_timestamp()
    FROM counted c, elsewhere e
    ON CONFLICT (user_id) DO UPDATE SET quality_score = EXCLUDED.quality_score
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM annotation_annotatorqueuestate s
               WHERE s.queue_id = %(queue)s AND s.annotator_id = %(user)s) AS has_state,
       c.status IS NOT NULL AND (SELECT count(*) FROM profile) = 1 AS counted,
       c.status, c.gold_answers, c.gold_correct, c.window_answers, c.window_correct,
       q.qualification_gold, q.qualification_accuracy, q.pause_accuracy, q.pause_min_gold,
       CASE WHEN NOT %(correct)s AND q.gold_feedback
            THEN (SELECT gp.gold_explanation FROM annotation_pair gp WHERE gp.id = %(pair)s)
       END AS feedback
FROM annotation_labelingqueue q
LEFT JOIN counted c ON true
WHERE q.id = %(queue)s
"""

# SUBMISSION_SQL: a submission id seen before: the stored judgment (or the undone one). Reads
# only; the replay path of a retried submit.
SUBMISSION_SQL = """
SELECT j.pair_id, j.annotator_id, j.choice, j.reason_tags, j.duration_ms, j.created_at, false
FROM annotation_judgment j WHERE j.client_submission_id = %(sid)s
UNION ALL
SELECT u.pair_id, u.annotator_id, u.choice, NULL, NULL, u.judged_at, true
FROM annotation_undonejudgment u WHERE u.client_submission_id = %(sid)s
"""

# HEARTBEAT_SQL: push the expiry of this annotator's active leases on the listed pairs. Locks:
# those lease rows, FOR UPDATE SKIP LOCKED: a lease locked by a concurrent sweep or submit is
# left alone and reported as neither renewed nor lost. One statement with the access check.
HEARTBEAT_SQL = f"""
WITH q AS ({_ACCESS}),
mine AS (
    SELECT a.id, a.pair_id FROM annotation_assignment a
    JOIN annotation_pair p ON p.id = a.pair_id
    WHERE a.annotator_id = %(user)s AND a.pair_id = ANY(%(pairs)s) AND a.status = 'active'
      AND p.queue_id = %(queue)s AND EXISTS (SELECT 1 FROM q)
),
lockable AS (
    SELECT a.id FROM annotation_assignment a
    WHERE a.id IN (SELECT id FROM mine) AND a.status = 'active'
    FOR UPDATE OF a SKIP LOCKED
),
renewed AS (
    UPDATE annotation_assignment a
    SET expires_at = statement_timestamp() + make_interval(secs => (SELECT lease_seconds FROM q))
    FROM lockable l WHERE a.id = l.id
    RETURNING a.pair_id, a.expires_at
)
SELECT (SELECT count(*) FROM q), m.pair_id, r.expires_at
FROM (SELECT 1) AS one
LEFT JOIN mine m ON true
LEFT JOIN renewed r ON r.pair_id = m.pair_id
"""

# ITEMS_SQL: the items (as NEXT returns them) of leases this annotator holds on the given
# pairs. Reads only; undo returns its pair through it, so an item is defined once.
ITEMS_SQL = f"""
SELECT x.pair_id, x.expires_at, {_ITEM_COLUMNS}
FROM annotation_assignment x
{_item_lateral("x.pair_id", "x.left_candidate_id")}
WHERE x.annotator_id = %(user)s AND x.pair_id = ANY(%(pairs)s) AND x.status = 'active'
ORDER BY x.leased_at, x.pair_id
"""


def progress_sql(*, cap: int) -> str:
    """PROGRESS: one row (done and skipped today, leases held, fresh and open pairs counted up
    to `cap` each) when the user may label the queue now; no row otherwise (the caller finds
    out why). Each pair count walks one serving index in its order (pair_fresh_order_idx,
    pair_open_order_idx), so it reads at most `cap` entries; today's judgments come from the
    annotator's own index (judgment_annotator_time_idx)."""
    return f"""
SELECT t.done, t.skipped, h.held, f.fresh, o.open,
       (SELECT pf.daily_target FROM annotation_annotatorprofile pf
        WHERE pf.user_id = %(user)s ORDER BY pf.id LIMIT 1)
FROM ({_ACCESS}) acc
CROSS JOIN LATERAL (
    -- Today's judgments from the annotator's own index, each pair probed by its key
    -- (OFFSET 0 keeps the probe per row: as a join, a generic plan merge-joined them with the
    -- primary key scanned up to the highest pair judged, the whole table once a gold pair
    -- with a high id was among them).
    SELECT count(*) AS done, count(*) FILTER (WHERE j.choice = 'skip') AS skipped
    FROM annotation_judgment j
    WHERE j.annotator_id = %(user)s AND j.created_at >= %(since)s
      AND EXISTS (SELECT 1 FROM annotation_pair jp
                  WHERE jp.id = j.pair_id AND jp.queue_id = acc.id OFFSET 0)
) t
CROSS JOIN LATERAL (
    SELECT count(*) AS held
    FROM annotation_assignment a JOIN annotation_pair ap ON ap.id = a.pair_id
    WHERE a.annotator_id = %(user)s AND a.status = 'active'
      AND a.expires_at > statement_timestamp() AND ap.queue_id = acc.id
) h
CROSS JOIN LATERAL (
    SELECT count(*) AS fresh FROM (
        SELECT 1 FROM annotation_pair w
        WHERE w.queue_id = %(queue)s AND w.fresh AND NOT w.is_gold
        ORDER BY w.priority DESC, w.id LIMIT {int(cap)}) fw
) f
CROSS JOIN LATERAL (
    SELECT count(*) AS open FROM (
        SELECT 1 FROM {_OPEN}
        ORDER BY w.priority DESC, w.judgments_count DESC, w.id LIMIT {int(cap)}) ow
) o
"""
