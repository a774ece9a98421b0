-- The content digest of the national registry a full or delta import left
-- (SHA-256 over its numbers, hex; NULL for other targets and for imports
-- recorded before it was kept). Every node compares its own saved copy
-- with the latest one: a node whose copy differs does not dial the
-- country's numbers until the registry is imported there too.
ALTER TABLE dnd_imports ADD COLUMN digest TEXT;
