"""The engine's own bounds (app.db): through a TCP proxy, a PostgreSQL that refuses or hangs makes a
database call fail, never wait forever, and the error says "unreachable"; once the database is back
the same engine works again. PostgreSQL only (SQLite has no network in between)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError

from app.db import database_unreachable, make_engine
from tests.fixtures.service_process import with_port
from tests.fixtures.tcp_proxy import Mode, TcpProxy, tcp_proxy

# Safety net for a call that should fail within about 5 s (ping 2 s + connect 3 s); without the
# bounds it never returns.
HANG_S = 30.0


@pytest.fixture
def proxied(pg_server_url: str) -> Iterator[tuple[Engine, TcpProxy]]:
    target = make_url(pg_server_url)
    with tcp_proxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
        engine = make_engine(with_port(pg_server_url, proxy.port), pool_size=2)
        try:
            yield engine, proxy
        finally:
            proxy.set_mode("refuse")  # dispose must not wait on a held connection
            engine.dispose()


def _select_one(engine: Engine) -> BaseException | int:
    """SELECT 1 in a thread: its result, or the error it raised. Fails the test if it hangs."""
    outcome: list[BaseException | int] = []

    def run() -> None:
        try:
            with engine.connect() as conn:
                outcome.append(int(conn.execute(text("SELECT 1")).scalar_one()))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_S)
    assert outcome, f"the database call still waits after {HANG_S:g} s"
    return outcome[0]


@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
def test_unreachable_database_fails_fast_and_recovers(proxied: tuple[Engine, TcpProxy], mode: Mode) -> None:
    engine, proxy = proxied
    assert _select_one(engine) == 1  # a pooled connection exists when the database goes away
    proxy.set_mode(mode)
    for _ in range(2):  # the pooled connection, then a new one
        error = _select_one(engine)
        assert isinstance(error, Exception), error
        assert database_unreachable(error), repr(error)
    proxy.set_mode("forward")
    assert _select_one(engine) == 1


def test_sql_errors_are_not_unreachable(proxied: tuple[Engine, TcpProxy]) -> None:
    engine, _ = proxied
    with engine.connect() as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(text("SELECT 1 / 0"))
    assert not database_unreachable(caught.value)
