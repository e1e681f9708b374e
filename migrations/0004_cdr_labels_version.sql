-- What a flow says about a call, and which version of the flows said it. flow_version is
-- the content hash of the flow set that served the call (NULL for rows written before this
-- migration, and for calls refused before a flow ran).
ALTER TABLE cdr ADD COLUMN flow_version TEXT;

-- Labels a flow gave the call (call type, VIP tier, complaint class, outcome): one row per
-- label, keyed like the offers so a replayed insert adds nothing. Reports group by value
-- per name.
CREATE TABLE cdr_labels (
    call_id TEXT    NOT NULL REFERENCES cdr (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    name    TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    PRIMARY KEY (call_id, seq)
);

CREATE INDEX cdr_labels_name_value ON cdr_labels (name, value);
