-- The applied schema version; NULL when docket is not installed.
SELECT CASE WHEN to_regclass('docket.schema_migrations') IS NULL THEN NULL
            ELSE (SELECT max(version) FROM docket.schema_migrations) END
