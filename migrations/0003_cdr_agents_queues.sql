-- Agents and queues. On the call row: the queue it waited in, when it entered and left, the
-- wait, the answering agent and their team, talk, hold and wrap-up, and whether the caller
-- abandoned in the queue. All nullable (abandoned defaults to 0), so rows of IVR-only calls
-- and rows written before this migration stay valid. Booleans are INTEGER 0/1 and times epoch
-- milliseconds, the same on SQLite and PostgreSQL.
ALTER TABLE cdr ADD COLUMN queue TEXT;
ALTER TABLE cdr ADD COLUMN queue_enter_ms BIGINT;
ALTER TABLE cdr ADD COLUMN queue_leave_ms BIGINT;
ALTER TABLE cdr ADD COLUMN wait_ms BIGINT;
ALTER TABLE cdr ADD COLUMN agent TEXT;
ALTER TABLE cdr ADD COLUMN team TEXT;
ALTER TABLE cdr ADD COLUMN talk_ms BIGINT;
ALTER TABLE cdr ADD COLUMN hold_ms BIGINT;
ALTER TABLE cdr ADD COLUMN wrap_up_ms BIGINT;
ALTER TABLE cdr ADD COLUMN abandoned INTEGER NOT NULL DEFAULT 0;

-- Reports per queue and per agent, by interval.
CREATE INDEX cdr_queue_start_ms ON cdr (queue, start_ms);
CREATE INDEX cdr_agent_start_ms ON cdr (agent, start_ms);

-- Every ring of an agent for a call. Keyed by (call, sequence) so a replayed insert adds
-- nothing; written in the same transaction as its call row.
CREATE TABLE cdr_offers (
    call_id       TEXT    NOT NULL REFERENCES cdr (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    agent         TEXT    NOT NULL,
    queue         TEXT,
    ring_start_ms BIGINT  NOT NULL,
    ring_end_ms   BIGINT  NOT NULL,
    -- answered, no_answer, busy, declined, redirected, unreachable, cancelled
    outcome       TEXT    NOT NULL,
    sip_code      INTEGER,
    PRIMARY KEY (call_id, seq)
);

CREATE INDEX cdr_offers_agent ON cdr_offers (agent, ring_start_ms);

-- Every transfer of a call, keyed like the offers.
CREATE TABLE cdr_transfers (
    call_id        TEXT   NOT NULL REFERENCES cdr (id) ON DELETE CASCADE,
    seq            INTEGER NOT NULL,
    at_ms          BIGINT NOT NULL,
    kind           TEXT   NOT NULL, -- blind, attended
    target         TEXT   NOT NULL,
    target_kind    TEXT   NOT NULL, -- agent, queue, number, uri
    transferred_by TEXT   NOT NULL, -- an agent id, or "flow"
    reason         TEXT,
    PRIMARY KEY (call_id, seq)
);

-- Agent state changes, append-only: a state lasts until the agent's next row. The id is
-- chosen by hotline, so a replayed insert adds nothing.
CREATE TABLE agent_states (
    id       TEXT   NOT NULL PRIMARY KEY,
    agent    TEXT   NOT NULL,
    -- logged_out, available, ringing, on_call, on_hold, wrap_up, not_ready
    state    TEXT   NOT NULL,
    reason   TEXT,
    start_ms BIGINT NOT NULL
);

CREATE INDEX agent_states_agent_start_ms ON agent_states (agent, start_ms);
CREATE INDEX agent_states_start_ms ON agent_states (start_ms);
