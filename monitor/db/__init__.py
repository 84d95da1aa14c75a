"""Storage: SQLAlchemy 2 ORM tables, Alembic migrations and session handling."""
