"""Durable storage: the PostgreSQL pool, migrations, and one module per table family."""
