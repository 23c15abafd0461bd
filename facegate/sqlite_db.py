"""One SQLite file opened the way facegate opens all of them: the gallery store and the service database.

Durability and concurrency come from SQLite itself rather than from code of ours:

* WAL journal: readers (other threads, other processes: a gate, the CLI, the service) keep
  reading a consistent snapshot while one writer commits, and never block it.
* ``synchronous=FULL``: a transaction is on disk when COMMIT returns, so anything acknowledged
  to a caller survives ``kill -9`` and power loss (``durable=False`` gives ``NORMAL``: it still
  survives a killed process, not a power cut; for bulk benchmarks only).
* ``BEGIN IMMEDIATE`` for every write: the write lock is taken up front, so writers from several
  processes queue on it (``busy_timeout``) instead of failing later on a read-to-write upgrade.
* Numbered migrations, ``<package>/migrations/NNN_name.sql`` applied in order and recorded in
  ``PRAGMA user_version``; a file written by a newer facegate is refused rather than misread.

Each caller keeps its own error type (``error``) and wording (``label``), so a gallery problem is
still a ``GalleryError`` and a service-database problem a ``ServiceDBError``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import ClassVar

from facegate.errors import FacegateError
from facegate.files import create_private, private_dir, restrict

log = logging.getLogger(__name__)


def load_migrations(package: str, label: str, error: type[Exception]) -> list[tuple[int, str, str]]:
    """(number, file name, SQL) of the ``.sql`` files in ``package``'s ``migrations`` folder, in order.

    Files are named ``NNN_what.sql``; the numbers must run 1..N, because ``user_version`` records
    only the last one applied and a gap would be skipped on some databases and not on others.
    """
    folder = resources.files(package).joinpath("migrations")
    out = sorted(
        (int(e.name[:3]), e.name, e.read_text())
        for e in folder.iterdir()
        if e.name.endswith(".sql") and e.name[:3].isdigit()
    )
    numbers = [n for n, _, _ in out]
    if numbers != list(range(1, len(out) + 1)):
        raise error(f"{label} migrations are not numbered 1..N: {numbers}")
    return out


def split_statements(sql: str, error: type[Exception]) -> list[str]:
    """Split a migration into statements: ``executescript`` would COMMIT the migration's transaction."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip() and not all(ln.strip().startswith("--") or not ln.strip() for ln in buf.splitlines()):
        raise error("incomplete SQL statement at the end of a migration")
    return out


def apply_migrations(
    conn: sqlite3.Connection,
    steps: list[tuple[int, str, str]],
    *,
    label: str,
    error: type[Exception],
    logger: logging.Logger = log,
) -> int:
    """Apply the pending ``steps``, each in its own IMMEDIATE transaction, and return the version.

    ``PRAGMA user_version`` is re-read once the write lock is held: when several processes open a
    new file at once, each sees version 0 outside the lock, but only the first to get the lock
    applies a step; the others find it done and commit nothing.
    """
    latest = steps[-1][0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > latest:
        raise error(f"{label} schema version {version} is newer than this facegate knows ({latest}); upgrade facegate")
    for number, name, sql in steps:
        if number <= version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] < number:
                for stmt in split_statements(sql, error):
                    conn.execute(stmt)
                conn.execute(f"PRAGMA user_version = {number}")
                logger.info("%s: applied migration %s", label, name)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = number
    return version


def private_file(path: Path) -> None:
    """Create ``path`` as an empty 0600 file if missing (whatever the umask), and take group and other
    access away from it and its ``-wal``/``-shm`` companions if an older version left them readable."""
    if not create_private(path):
        return  # SQLite reports the real problem (read-only folder, a directory in the way) in its words
    for p in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        restrict(p)


class SqliteDatabase:
    """One connection to one SQLite file, shared by the threads of one process (one re-entrant lock).

    A subclass names where its migrations live (``migrations_package``), how its errors read
    (``label``) and what it raises (``error``). Opening creates the parent folder, sets up WAL and
    the pragmas, and migrates; ``version`` is then the file's schema version.
    """

    migrations_package: ClassVar[str]
    label: ClassVar[str] = "database"
    error: ClassVar[type[Exception]] = FacegateError

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float,
        durable: bool = True,
        pragmas: Mapping[str, str | int] | None = None,
    ) -> None:
        self.path = Path(path)
        private_dir(self.path.parent)
        private_file(self.path)  # before SQLite creates it: its -wal and -shm copy the file's mode
        self._lock = threading.RLock()
        self.conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            self.conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            self._enable_wal(timeout)
            self.conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self.conn.execute("PRAGMA foreign_keys = ON")
            for name, value in (pragmas or {}).items():
                self.conn.execute(f"PRAGMA {name} = {value}")
            self.version = self._migrate()
        except BaseException:
            self.conn.close()
            raise

    def _enable_wal(self, timeout: float) -> None:
        """Switch to WAL, waiting while another process is still creating the file.

        Without WAL a writer would block every reader, so a file that cannot use it (a network
        share, typically) is refused rather than silently slow and unsafe.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise self.error(
                        f"{self.path}: cannot use SQLite WAL mode (got {mode!r}); is it on a network share?"
                    )
                return
            except sqlite3.OperationalError as exc:  # another process is creating the file
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @classmethod
    def migrations(cls) -> list[tuple[int, str, str]]:
        """(number, file name, SQL) of this database's shipped migrations, in order."""
        return load_migrations(cls.migrations_package, cls.label, cls.error)

    def _migrate(self) -> int:
        return apply_migrations(
            self.conn,
            self.migrations(),
            label=self.label,
            error=self.error,
            logger=logging.getLogger(type(self).__module__),
        )

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    # -- transactions ---------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: holds the write lock from the start, commits on success,
        rolls back on any exception (KeyboardInterrupt included)."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees one consistent snapshot (WAL)."""
        with self._lock:
            self.conn.execute("BEGIN")
            try:
                yield self.conn
            finally:
                self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        """All rows of one statement, run under the lock."""
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def pragma(self, name: str, value: str | int) -> None:
        """Set a pragma on this connection after opening (e.g. ``secure_delete`` for a service
        that must not leave erased rows in free pages)."""
        with self._lock:
            self.conn.execute(f"PRAGMA {name} = {value}")

    def checkpoint(self) -> None:
        """Fold the WAL into the main file and truncate it, so erased pages leave no copy behind.
        Best effort: a reader in another process may hold the WAL; that is logged, not raised."""
        try:
            with self._lock:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            logging.getLogger(type(self).__module__).info("%s: checkpoint skipped (%s)", self.label, exc)
