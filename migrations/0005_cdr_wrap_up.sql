-- What the answering agent recorded in wrap-up: a disposition code from the agents file's
-- [dispositions], free-text notes, and whether the matter was resolved at this first call
-- (1/0; NULL when the agent did not say). Nullable, so earlier rows stay valid.
ALTER TABLE cdr ADD COLUMN wrap_disposition TEXT;
ALTER TABLE cdr ADD COLUMN wrap_notes TEXT;
ALTER TABLE cdr ADD COLUMN resolved INTEGER;
