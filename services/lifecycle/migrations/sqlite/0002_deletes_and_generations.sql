-- A delete is recorded before the runtime tears the instance down, and every change
-- counts up a generation so replicas keep the newest copy of a row.
ALTER TABLE instances ADD COLUMN deleting_since_ms INTEGER;
ALTER TABLE instances ADD COLUMN delete_preserve_data INTEGER NOT NULL DEFAULT 1;
ALTER TABLE instances ADD COLUMN generation INTEGER NOT NULL DEFAULT 1;
