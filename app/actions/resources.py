"""The engines and threads the workflow action runs on, built and closed by the entry points.

The app's lifespan and `python -m app.worker` build one `ActionResources` next to the app's engine,
hand it to the `ActionService` and close it on stop, after the service has drained: the service
uses these, it never creates or disposes them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from app.db import make_engine

# SQLite: connections of the action's own writer engine and of its read-only engine.
SQLITE_WRITE_POOL_SIZE = 8
SQLITE_READ_POOL_SIZE = 4
# Threads for the request path's database calls.
DB_THREADS = 8


@dataclass(frozen=True)
class ActionResources:
    # Writes of executions (request path and completer).
    engine: Engine
    # The request path's lookup: never takes SQLite's write lock.
    read_engine: Engine
    # The request path's own threads: the shared default pool is busy with worker and dispatcher
    # rounds, and a request waiting for a free thread there waited longer than for the database.
    executor: ThreadPoolExecutor
    # The engines built for the action alone (SQLite); the app's engine is not closed here.
    owned_engines: tuple[Engine, ...] = ()

    def close(self) -> None:
        """After the service drained and the completer stopped: threads first, then engines."""
        self.executor.shutdown(wait=True)
        for engine in self.owned_engines:
            engine.dispose()


def build_action_resources(app_engine: Engine) -> ActionResources:
    """On SQLite the action gets engines of its own, on PostgreSQL it shares the app's engine.

    SQLite has one write lock. The action's writes use an `eager_writer` engine that retries the
    lock in short steps: a BLOCK answer waits for its write, SQLite's busy handler let it wait for
    seconds under load, and it must not queue behind the inbox writer's connections. Its lookup
    reads through a `read_only` engine, which never takes the write lock.
    """
    executor = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="action-db")
    if app_engine.dialect.name != "sqlite":
        return ActionResources(engine=app_engine, read_engine=app_engine, executor=executor)
    url = app_engine.url.render_as_string(hide_password=False)
    read_engine = make_engine(url, pool_size=SQLITE_READ_POOL_SIZE, read_only=True)
    engine = make_engine(url, pool_size=SQLITE_WRITE_POOL_SIZE, eager_writer=True)
    return ActionResources(
        engine=engine, read_engine=read_engine, executor=executor, owned_engines=(read_engine, engine)
    )
