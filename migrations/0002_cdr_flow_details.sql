-- What the flow language added to a call: the language it ended in, survey answers (a JSON
-- object of question id to key) and recordings (a JSON array of WAV paths). Nullable, so rows
-- written before this migration stay valid.
ALTER TABLE cdr ADD COLUMN language TEXT;
ALTER TABLE cdr ADD COLUMN survey TEXT;
ALTER TABLE cdr ADD COLUMN recordings TEXT;
