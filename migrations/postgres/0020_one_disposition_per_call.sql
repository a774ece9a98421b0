-- One disposition per call attempt, enforced by the database: a call
-- whose wrap-up is on one node could also be disposed through another
-- node's "pending" route (the check for an existing row and the insert
-- were not atomic across nodes), counting a conversion and its revenue
-- twice. Rows such a race left are reduced to the first recorded.
DELETE FROM dispositions
 WHERE id NOT IN (SELECT MIN(id) FROM dispositions GROUP BY attempt_id);
CREATE UNIQUE INDEX dispositions_one_per_attempt ON dispositions (attempt_id);
