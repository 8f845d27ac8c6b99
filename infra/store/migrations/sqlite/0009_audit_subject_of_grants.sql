-- A grant's audit rows name its subject once the grant has one: a device
-- grant learns it when a person approves, after its first events were
-- indexed. The projector fills those rows as the subject arrives, finding
-- them by aggregate; rows indexed before this version are filled here.
CREATE INDEX main.audit_by_aggregate ON audit_index (aggregate_id);
UPDATE main.audit_index
   SET subject = (SELECT g.sub FROM main.grants g WHERE g.gid = audit_index.aggregate_id)
 WHERE aggregate_type = 'Grant' AND subject IS NULL
   AND EXISTS (SELECT 1 FROM main.grants g WHERE g.gid = audit_index.aggregate_id AND g.sub IS NOT NULL);
