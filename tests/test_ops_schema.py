"""Models and migrations agree: autogenerate against a database at head finds nothing.

If someone edits monitor/db/tables.py without a migration (or the reverse), IT's
`policywatch db upgrade` would build a different schema than the code expects.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from monitor.db.session import (
    current_revision,
    head_revision,
    make_engine,
    session_factory,
    upgrade,
)
from monitor.db.tables import AuditHead, Base


def test_autogenerate_against_head_finds_no_difference(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine) == "0003"
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    with session_factory(engine)() as session:  # the chain's genesis row is seeded
        head = session.scalars(select(AuditHead)).one()
        assert (head.id, head.last_id, head.last_hash) == (1, 0, "0" * 64)
    engine.dispose()


def test_later_migrations_downgrade_and_upgrade_again(db_url: str) -> None:
    from alembic import command

    from monitor.db.session import alembic_config

    engine = make_engine(db_url)
    upgrade(engine)
    for revision in ("0002", "0001"):
        command.downgrade(alembic_config(engine), revision)
        assert current_revision(engine) == revision
    upgrade(engine)
    assert current_revision(engine) == "0003"
    engine.dispose()
