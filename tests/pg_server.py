"""A throw-away PostgreSQL server for tests (Debian ``postgresql`` package).

Usage::

    from pg_server import LocalPostgres, PostgresUnavailable

    server = LocalPostgres().start()          # raises PostgresUnavailable: a reason to skip
    try:
        server.create_database("nils")
        with server.admin("nils") as conn: ...               # superuser, local socket
        url = server.url("nils")                             # reader, TCP, no password in it
        env = server.env                                     # PGPASSWORD for the reader
    finally:
        server.stop()

``initdb`` + ``pg_ctl`` in a fresh temporary folder, on a free TCP port of
127.0.0.1 (password authentication, scram-sha-256) and a private Unix socket (trust,
for the superuser). As root the server runs as the ``postgres`` user (PostgreSQL
refuses root). The binaries are installed with apt-get when missing and run as root;
without them (and no way to install them) :class:`PostgresUnavailable` is raised.
``stop()`` stops only the server this object started and deletes its folder.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

READER = "bidsport_reader"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here and no way to install them."""


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _install() -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PostgresUnavailable("PostgreSQL is not installed and this is not root on Debian (apt-get install -y postgresql)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise PostgresUnavailable(f"apt-get install -y postgresql failed: {proc.stderr.strip()[-300:]}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    def __init__(self) -> None:
        self.port = _free_port()
        self.password = secrets.token_urlsafe(18)  # the reader's; only ever in PGPASSWORD
        self.folder: Path | None = None
        self.bindir: Path | None = None
        self.running = False

    # -- lifecycle
    def _as_owner(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(args, capture_output=True, text=True, **kw)

    def start(self) -> "LocalPostgres":
        self.bindir = _bindir()
        if self.bindir is None:
            _install()
            self.bindir = _bindir()
            if self.bindir is None:
                raise PostgresUnavailable("postgresql installed but no initdb found")
        self.folder = Path(tempfile.mkdtemp(prefix="bidsport-pg-"))
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and there is no 'postgres' user to run the server") from None
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
        data = self.folder / "data"
        proc = self._as_owner(
            [str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
             "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"initdb failed: {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.folder} -c fsync=off"
        proc = self._as_owner(
            [str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(self.folder / "server.log"), "-o", options, "-w", "-t", "60", "start"]
        )
        if proc.returncode != 0:
            log = (self.folder / "server.log").read_text(errors="replace")[-2000:] if (self.folder / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {proc.stdout[-1000:]}{proc.stderr[-1000:]}\n{log}")
        self.running = True
        atexit.register(self.stop)
        with self.admin("postgres") as conn:
            conn.execute(f"CREATE ROLE {READER} LOGIN PASSWORD '{self.password}'")
        return self

    def stop(self) -> None:
        if self.running and self.folder:
            self._as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop"])
            self.running = False
        if self.folder and self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- access
    def admin(self, dbname: str):
        """A superuser connection over the private socket (autocommit)."""
        import psycopg

        return psycopg.connect(host=str(self.folder), port=self.port, user="postgres", dbname=dbname, autocommit=True)

    def create_database(self, name: str) -> None:
        with self.admin("postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        with self.admin(name) as conn:
            conn.execute(f"GRANT USAGE ON SCHEMA public TO {READER}")
            conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {READER}")

    def url(self, dbname: str) -> str:
        """libpq URL of the read-only test user (the password goes in ``env``)."""
        return f"postgresql://{READER}@127.0.0.1:{self.port}/{dbname}"

    @property
    def env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.password}
