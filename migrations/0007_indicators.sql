-- What the indicators need beyond the call rows.

-- How long the answering agent's phone rang (ring time before answer). Filled in for the
-- calls already stored from their answered offer.
ALTER TABLE cdr ADD COLUMN ring_ms BIGINT;
UPDATE cdr SET ring_ms = (
    SELECT o.ring_end_ms - o.ring_start_ms FROM cdr_offers o
    WHERE o.call_id = cdr.id AND o.outcome = 'answered'
    ORDER BY o.seq DESC LIMIT 1
) WHERE agent IS NOT NULL;

-- Transfers of the call (IVR containment is "no queue and no transfer"), filled in for the
-- calls already stored.
ALTER TABLE cdr ADD COLUMN transfer_count INTEGER NOT NULL DEFAULT 0;
UPDATE cdr SET transfer_count = (SELECT COUNT(*) FROM cdr_transfers t WHERE t.call_id = cdr.id);

-- The same number's previous call that got in (not blocked) and next call of any kind, kept
-- up to date as calls are stored in whatever order they end: repeat callers, redials and
-- first-call resolution are then a comparison per row, not a search per row. Left NULL for
-- withheld numbers, which cannot be told apart.
ALTER TABLE cdr ADD COLUMN prev_ms BIGINT;
ALTER TABLE cdr ADD COLUMN next_ms BIGINT;
UPDATE cdr SET
    prev_ms = (SELECT MAX(p.start_ms) FROM cdr p WHERE p.caller = cdr.caller
               AND p.start_ms < cdr.start_ms AND p.disposition <> 'blocked'),
    next_ms = (SELECT MIN(n.start_ms) FROM cdr n WHERE n.caller = cdr.caller
               AND n.start_ms > cdr.start_ms)
WHERE caller <> '' AND LOWER(caller) NOT IN
    ('anonymous', 'unknown', 'restricted', 'private', 'unavailable');

-- Reports sum calls per quarter hour (and per queue, agent or team) first: these indexes give
-- the rows in that order, so the database adds them up as it reads instead of sorting them.
CREATE INDEX cdr_cell ON cdr ((start_ms / 900000));
CREATE INDEX cdr_cell_queue ON cdr ((start_ms / 900000), queue);
CREATE INDEX cdr_cell_agent ON cdr ((start_ms / 900000), agent);
CREATE INDEX cdr_cell_team ON cdr ((start_ms / 900000), team);

-- Agents' time per state, rolled up per quarter hour of UTC (every time zone's half hours,
-- hours and days are whole quarter hours, so any local interval is a sum of cells). A
-- cell may have several rows (a restart, a logout and login again), each for a time span no
-- other row covers, so reports add them up. Written once each, keyed by an id hotline
-- chooses, so a replayed insert adds nothing.
CREATE TABLE agent_time (
    id           TEXT   NOT NULL PRIMARY KEY,
    agent        TEXT   NOT NULL,
    team         TEXT,
    cell_ms      BIGINT NOT NULL,
    available_ms BIGINT NOT NULL,
    ringing_ms   BIGINT NOT NULL,
    on_call_ms   BIGINT NOT NULL,
    on_hold_ms   BIGINT NOT NULL,
    wrap_up_ms   BIGINT NOT NULL,
    not_ready_ms BIGINT NOT NULL
);

CREATE INDEX agent_time_cell_ms ON agent_time (cell_ms);

-- Quality monitoring: a supervisor's score of a recorded call, 0-100. One per call and
-- scorer; scoring again replaces it.
CREATE TABLE qa_scores (
    call_id   TEXT    NOT NULL REFERENCES cdr (id) ON DELETE CASCADE,
    scorer    TEXT    NOT NULL,
    score     INTEGER NOT NULL,
    scored_ms BIGINT  NOT NULL,
    notes     TEXT,
    PRIMARY KEY (call_id, scorer)
);
