-- One row per call. Portable between SQLite and PostgreSQL: TEXT, BIGINT and INTEGER only,
-- no generated keys (the id is hotline's own call id, which is what makes inserts idempotent).
CREATE TABLE cdr (
    id          TEXT    NOT NULL PRIMARY KEY,
    sip_call_id TEXT    NOT NULL,
    caller      TEXT    NOT NULL,
    dialled     TEXT    NOT NULL,
    start_ms    BIGINT  NOT NULL,
    answer_ms   BIGINT,
    end_ms      BIGINT  NOT NULL,
    flow        TEXT,
    ivr_path    TEXT    NOT NULL, -- JSON array of node names
    digits      TEXT    NOT NULL,
    disposition TEXT    NOT NULL,
    hangup_by   TEXT    NOT NULL,
    sip_code    INTEGER NOT NULL,
    end_reason  TEXT    NOT NULL
);

-- Reports read by time range and "the last N calls".
CREATE INDEX cdr_start_ms ON cdr (start_ms);

-- Operators correlate a CDR with a SIP trace by Call-ID.
CREATE INDEX cdr_sip_call_id ON cdr (sip_call_id);
