"""The SQL migrations, applied in order by ``PostgresMessageStore.migrate``."""
