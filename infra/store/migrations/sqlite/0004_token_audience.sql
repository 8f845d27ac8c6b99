ALTER TABLE main.tokens ADD COLUMN audience TEXT;
