"""The mempool's journal: a client's transactions made durable before they are acknowledged,
appended to segment files in the node's home instead of rows in the block store.

A row in the store cost every transaction an insert at the door and a delete when its block was
written, both into an index of random hashes, and each door write waited for the database's one
write lock while the block writer held it (and held the mempool's lock meanwhile, so the
producer waited too). Here a door's batch is one `write` to the end of a file, and nothing is
deleted per transaction: a segment is removed whole once every transaction in it has been
stored in a block (or dropped as stale).

    segment  pending-<number>.log, numbered in the order they were opened
    record   4-byte big-endian body length | 4-byte CRC-32 of the body | body
    body     the transaction's canonical JSON, as signed

A crash can leave a torn record at a segment's end (its write never returned, so it was never
acknowledged): reading stops there, with a warning. Durability follows the block store's: with
SQLite's `synchronous=NORMAL` a commit survives the process but not a power loss, and so does a
write here; with PostgreSQL, whose commits are flushed to disk, every write is fsynced too.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from chain.errors import StorageError

log = logging.getLogger(__name__)

MEMPOOL_FOLDER = "mempool"  # a node home's folder of its journal
RECORD = struct.Struct(">II")  # body length, CRC-32 of the body
SEGMENT_BYTES = 16 * 1024 * 1024  # a segment takes no more writes past this size
MAX_BODY_BYTES = 1 << 30  # a length past this is damage, not a transaction
_PREFIX, _SUFFIX = "pending-", ".log"
LOCK_FILE = ".lock"


def in_use(folder: Path) -> bool:
    """Whether a node (in any process) holds the journal in `folder`: it does from its start
    (Mempool.restart) until it stops."""
    path = folder / LOCK_FILE
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # the lock, if taken here, goes with it
    return False


class Journal:
    """Append-only segments of pending transactions, each removed once none of its
    transactions is pending any more. Thread-safe."""

    def __init__(self, folder: Path, *, fsync: bool = False) -> None:
        self.folder = folder
        self.fsync = fsync
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._live: dict[int, int] = {}  # segment number -> records still pending in it
        self._where: dict[str, int] = {}  # pending transaction's hash -> its segment
        self._lock_fd: int | None = None  # held while this journal writes (one writer a folder)
        self._fd: int | None = None  # the segment being appended to
        self._active = 0
        self._size = 0
        self._next = max(self._numbers(), default=0) + 1

    def segments(self) -> list[Path]:
        return [self._path(n) for n in sorted(self._numbers())]

    def read(self) -> list[str]:
        """Every intact record's body, oldest first: what was acknowledged and may still be
        pending (the caller checks each again, as it does after any restart)."""
        bodies: list[str] = []
        with self._failing("read"):
            for path in self.segments():
                try:
                    bodies.extend(_records(path))
                except FileNotFoundError:
                    continue  # removed since it was listed: everything in it was stored
        return bodies

    def restart(self, entries: Sequence[tuple[str, str]]) -> None:
        """After a restart: keep exactly `entries` (hash, body), the transactions still
        pending, in one new segment, and remove every segment before it (the new one is on
        disk before the old ones go, so a crash in between only repeats some)."""
        with self._lock, self._failing("rewrite"):
            self._own()
            old = self._numbers()
            self._close_active()
            self._live.clear()
            self._where.clear()
            if entries:
                self._append(entries, sync=True)
            for number in old:
                self._path(number).unlink(missing_ok=True)
            self._sync_folder()

    def write(self, entries: Sequence[tuple[str, str]]) -> None:
        """Append (hash, body) entries; durable (as the store's commits are) on return."""
        if entries:
            with self._lock, self._failing("write"):
                self._own()
                self._append(entries, sync=self.fsync)

    def release(self, hashes: Iterable[str]) -> None:
        """These transactions are no longer pending (stored in a block, or dropped): a
        segment none of whose records is pending is removed."""
        with self._lock, self._failing("remove a segment of"):
            for tx_hash in hashes:
                number = self._where.pop(tx_hash, None)
                if number is not None:
                    self._forget(number)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # the lock goes with it
                self._lock_fd = None

    @contextlib.contextmanager
    def _failing(self, what: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise StorageError(
                f"cannot {what} the mempool journal in {self.folder}: {exc}"
            ) from exc

    # -- inside the lock ---------------------------------------------------------------

    def _own(self) -> None:
        """Take the folder for this journal's writes: a second writer (another process on the
        same home, or a second node on it in this one) would remove the segments the first
        still appends to. Readers (a backup, a restart's read) take no lock."""
        if self._lock_fd is not None:
            return
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.folder / LOCK_FILE, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageError(
                f"the mempool journal in {self.folder} is in use by another node: one node"
                " runs on a home at a time"
            ) from None
        self._lock_fd = fd
        # Numbered after whatever an earlier owner left, now that none can add more
        self._next = max([self._next - 1, *self._numbers()]) + 1

    def _append(self, entries: Sequence[tuple[str, str]], *, sync: bool) -> None:
        latest = dict(entries)  # a hash listed twice is written once, its last body
        if self._fd is None or self._size >= SEGMENT_BYTES:
            self._open_next()
        chunks = []
        for body in latest.values():
            data = body.encode()
            chunks.append(RECORD.pack(len(data), zlib.crc32(data)))
            chunks.append(data)
        data = b"".join(chunks)
        assert self._fd is not None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            if sync:
                os.fsync(self._fd)
        except OSError:
            # Cut what was written of this batch, so the segment ends at a whole record and
            # later batches stay readable; none of it is acknowledged
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            self._size = SEGMENT_BYTES  # the next write starts a new segment all the same
            raise
        self._size += len(data)
        self._live[self._active] = self._live.get(self._active, 0) + len(latest)
        for tx_hash in latest:
            earlier = self._where.get(tx_hash)
            self._where[tx_hash] = self._active
            if earlier is not None:  # written again: the older copy goes once this one is kept
                self._forget(earlier)

    def _forget(self, number: int) -> None:
        left = self._live[number] - 1
        if left:
            self._live[number] = left
            return
        del self._live[number]
        if number == self._active:
            self._close_active()
        self._path(number).unlink(missing_ok=True)

    def _open_next(self) -> None:
        self._close_active()
        self._active, self._next = self._next, self._next + 1
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self._path(self._active), flags, 0o600)
        self._size = 0
        if self.fsync:
            self._sync_folder()  # the new file's name survives a power loss too

    def _close_active(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._active and self._active not in self._live:
            self._path(self._active).unlink(missing_ok=True)  # nothing pending in it
        self._active = 0
        self._size = SEGMENT_BYTES  # the next write opens a new segment

    def _sync_folder(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _numbers(self) -> list[int]:
        numbers = []
        for path in self.folder.glob(f"{_PREFIX}*{_SUFFIX}"):
            digits = path.name[len(_PREFIX) : -len(_SUFFIX)]
            if digits.isascii() and digits.isdigit():  # not "²", which int() refuses
                numbers.append(int(digits))
        return numbers

    def _path(self, number: int) -> Path:
        return self.folder / f"{_PREFIX}{number:08d}{_SUFFIX}"


def _records(path: Path) -> list[str]:
    """A segment's intact records; at a torn or damaged one, a warning and no more."""
    data = path.read_bytes()
    bodies: list[str] = []
    at = 0
    while at < len(data):
        if len(data) - at < RECORD.size:
            log.warning("%s: a torn record at byte %d (a write cut short) ignored", path, at)
            break
        length, crc = RECORD.unpack_from(data, at)
        body = data[at + RECORD.size : at + RECORD.size + length]
        if length > MAX_BODY_BYTES or len(body) < length:
            log.warning("%s: a torn record at byte %d (a write cut short) ignored", path, at)
            break
        if zlib.crc32(body) != crc:
            log.warning(
                "%s: a damaged record at byte %d; its %d bytes onwards are skipped",
                path,
                at,
                len(data) - at,
            )
            break
        try:
            bodies.append(body.decode())
        except UnicodeDecodeError:
            log.warning("%s: a record at byte %d is not UTF-8; skipped", path, at)
        at += RECORD.size + length
    return bodies
