"""A real PostgreSQL 15 server for tests and benches: `initdb` into a temporary folder, `pg_ctl start` on
127.0.0.1 (a free port) and a unix socket in that folder, stopped by its PID afterwards.

    with pg_server() as pg:                      # skips (pytest) / raises (bench) without the binaries
        url = pg.url(pg.create_database())       # postgresql://ga:PASSWORD@127.0.0.1:PORT/db_xxxx

PostgreSQL refuses to run as root: as root, the server runs as the `postgres` system user (`runuser`), its
folder owned by that user; as anyone else, as that user. Logins over TCP need the password (scram-sha-256,
so a wrong one is refused for real); the unix socket trusts local users (the Ray test's network namespace
reaches the server through it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "ga"


def available() -> str:
    """'' when a server can be started here, else why not."""
    if not (BIN / "initdb").is_file():
        return f"PostgreSQL 15 is not installed ({BIN}/initdb missing; apt-get install postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: cannot start PostgreSQL as an unprivileged user"
    return ""


@dataclass(frozen=True)
class PgServer:
    folder: Path  # the data folder's parent: data/, the socket and the log
    port: int
    password: str
    pid: int

    @property
    def socket_dir(self) -> Path:
        return self.folder

    def url(self, db: str = "postgres", password: str | None = None, port: int | None = None) -> str:
        """A TCP URL with the password (give `password` to log in with another one)."""
        pw = self.password if password is None else password
        return f"postgresql://{USER}:{pw}@127.0.0.1:{port or self.port}/{db}"

    def socket_url(self, db: str) -> str:
        """A URL through the unix socket (trusted: no password)."""
        return f"postgresql://{USER}@/{db}?host={self.socket_dir}&port={self.port}"

    def sql(self, statement: str, db: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(db), autocommit=True) as conn:
            conn.execute(statement)

    def create_database(self) -> str:
        name = f"db_{uuid.uuid4().hex[:10]}"
        self.sql(f"CREATE DATABASE {name}")
        return name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def pg_server(timeout_s: float = 60) -> Iterator[PgServer]:
    """Start a server (see the module doc), yield it, stop it by PID and remove its folder."""
    why = available()
    if why:
        raise RuntimeError(why)
    folder = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))  # short: the socket path has a length limit
    password = secrets.token_hex(12)
    pid = 0
    try:
        (folder / "pw").write_text(password)
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
            shutil.chown(folder / "pw", "postgres", "postgres")
        port = _free_port()
        subprocess.run(
            _as_server_user([str(BIN / "initdb"), "-D", str(folder / "data"), "-U", USER, f"--pwfile={folder / 'pw'}",
                             "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8"]),
            check=True, capture_output=True, timeout=timeout_s,
        )  # fmt: skip
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")  # fmt: skip
        subprocess.run(
            _as_server_user([str(BIN / "pg_ctl"), "start", "-w", "-t", str(int(timeout_s)), "-D",
                             str(folder / "data"), "-l", str(folder / "server.log"), "-o", options]),
            check=True, capture_output=True, timeout=timeout_s + 10,
        )  # fmt: skip
        pid = int((folder / "data" / "postmaster.pid").read_text().split()[0])
        yield PgServer(folder, port, password, pid)
    finally:
        if pid:
            _stop(pid, timeout_s)
        shutil.rmtree(folder, ignore_errors=True)


def _stop(pid: int, timeout_s: float) -> None:
    """Fast shutdown (SIGINT: clients disconnected, no waiting for them), then SIGKILL if it hangs."""
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
