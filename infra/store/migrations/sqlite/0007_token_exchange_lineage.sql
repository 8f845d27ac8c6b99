ALTER TABLE main.grants ADD COLUMN parent_gid TEXT;
ALTER TABLE main.grants ADD COLUMN ancestors TEXT;
ALTER TABLE main.grants ADD COLUMN act TEXT;
CREATE INDEX main.grants_by_parent ON grants (parent_gid);
