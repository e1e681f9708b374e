-- A caller's past calls: the agent's screen pop shows them, and repeat callers are counted
-- by number.
CREATE INDEX cdr_caller_start_ms ON cdr (caller, start_ms);
