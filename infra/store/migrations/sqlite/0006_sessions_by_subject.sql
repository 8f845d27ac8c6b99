CREATE INDEX main.sessions_by_sub ON sessions (sub);
