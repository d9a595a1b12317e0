"""Drives: ownership, metadata changes and the volume each drive owns in the pool."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from elastic_api.config import Config
from elastic_api.errors import BusyError, FailedError, FullError, MissingError, UsageError
from elastic_api.model import drive as model
from elastic_api.model.drive import Checksum, Drive, DriveChanges, DriveSpec, IoCounts
from elastic_api.model.ids import new_id, parse_id
from elastic_api.model.pages import Page
from elastic_api.service.counters import IoCounters
from elastic_api.service.jobs import JobRunner
from elastic_api.service.keyring import Keyring
from elastic_api.service.locks import DriveUse, NodeLocks, UploadSlots
from elastic_api.service.quotas import QuotaService
from elastic_api.storage import Storage, Volume
from elastic_api.storage.fileops import open_to_send
from elastic_api.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriveRead:
    drive: Drive
    offset: int
    length: int  # already cut at the drive's end
    file: str | None  # the raw volume's path, when its bytes can be sent as they are


class Reading:
    """A read's bytes going out: `bytes` is what went, counted when the block ends."""

    __slots__ = ("_drive", "_drives", "bytes")

    def __init__(self, drives: DriveService, drive: str) -> None:
        self._drives, self._drive, self.bytes = drives, drive, 0

    def __enter__(self) -> Reading:
        self._drives.use.begin_io(self._drive)
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self._drives.use.end_io(self._drive)
        finally:
            self._drives.counters.add(self._drive, IoCounts(read_bytes=self.bytes, read_requests=1))


class DriveService:
    def __init__(
        self,
        config: Config,
        store: Store,
        storage: Storage,
        clock: Callable[[], int] = time.time_ns,
        quotas: QuotaService | None = None,
        jobs: JobRunner | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.storage = storage
        self.clock = clock
        self.quotas = quotas or QuotaService(config, store)
        self.locks = NodeLocks(store, "drive")
        self.use = DriveUse()
        self.uploads = UploadSlots(per_user=config.max_uploads_per_user, total=config.max_uploads)
        self.keys = Keyring(config.master_key_path, may_create=not config.master_key_file)
        # The jobs on drives (image copies): what runs here now, with its live progress.
        self.counters = IoCounters(store, config.io_counter_flush_seconds)
        self.jobs = jobs or JobRunner(
            store,
            "local",
            lease_seconds=config.job_lease_seconds,
            heartbeat_seconds=config.job_heartbeat_seconds,
            progress_seconds=config.job_progress_seconds,
        )

    async def open_keys(self) -> None:
        """At start-up, before any drive is touched: the master key, or a ConfigError."""
        await self.keys.open(await self.store.some_wrapped_key())

    def volume(self, drive: Drive) -> Volume:
        """The drive's volume for the pool, with its passphrase unwrapped when it is encrypted."""
        if not drive.encrypted:
            return Volume(drive.drive, drive.format, drive.size)
        if drive.wrapped_key is None:
            raise FailedError(f"drive {drive.drive} is encrypted but has no key")
        return Volume(drive.drive, drive.format, drive.size, self.keys.passphrase(drive.drive, drive.wrapped_key))

    def _live(self, drive: Drive) -> Drive:
        """The stored drive with its image job's live progress (the stored one lags behind) and
        the I/O counted since the counters were last stored."""
        pending = self.counters.pending(drive.drive)
        if pending.read_requests or pending.write_requests:
            drive = dataclasses.replace(
                drive,
                read_bytes=drive.read_bytes + pending.read_bytes,
                read_requests=drive.read_requests + pending.read_requests,
                write_bytes=drive.write_bytes + pending.write_bytes,
                write_requests=drive.write_requests + pending.write_requests,
            )
        if drive.image_job is None:
            return drive
        return dataclasses.replace(drive, image_job=self.jobs.live(drive.image_job))

    async def get(self, user: str, drive_id: str) -> Drive:
        """A drive the user may see (owned or shared through readers); 404 alike for all others."""
        return self._live(await self._stored(user, drive_id))

    async def _stored(self, user: str, drive_id: str) -> Drive:
        """As get, without the live progress and counters: for work that needs neither."""
        canonical = parse_id(drive_id)
        found = await self.store.get_drive(user, canonical) if canonical else None
        if found is None:
            raise MissingError(f"no such drive: {drive_id[:40]}")
        return found

    async def owned(self, user: str, drive_id: str) -> Drive:
        """A drive the user owns. A reader asking to change one gets the same 404 as a stranger:
        readers' drives are read-only to them and no one else's drive may be changed."""
        found = await self.get(user, drive_id)
        if found.owner != user:
            raise MissingError(f"no such drive: {drive_id[:40]}")
        return found

    @asynccontextmanager
    async def _held(self, user: str, drive_id: str) -> AsyncIterator[Drive]:
        """A drive the user owns, under its lock and read once the lock is held. The lock's key
        is the canonical ID, so no read is needed to find it: every read is a queue on the
        store's thread, behind the sync of whatever commit is in progress."""
        async with self.locks.hold(parse_id(drive_id) or drive_id):
            yield await self.owned(user, drive_id)

    async def visible(self, user: str, page: Page) -> list[Drive]:
        return [self._live(d) for d in await self.store.list_drives(user, page.limit, page.marker)]

    async def visible_ids(self, user: str, page: Page) -> list[str]:
        return await self.store.list_drive_ids(user, page.limit, page.marker)

    async def create(self, user: str, spec: DriveSpec) -> Drive:
        model.check_spec(spec, self.config.max_drive_size)
        drive = model.new_drive(
            new_id(),
            user,
            spec,
            default_format=self.config.default_format,
            default_cipher=self.config.default_cipher,
            created=self.clock(),
        )
        if drive.encrypted:
            drive = dataclasses.replace(drive, wrapped_key=self.keys.new_wrapped_key(drive.drive))
        async with self.quotas.drives(user, count=1, size=drive.size):
            # The volume comes first: a crash between the two leaves an orphan file that the
            # start-up sweep removes, never a drive row without its bytes.
            await self.storage.create(self.volume(drive))
            try:
                await self.store.insert_drive(drive)
            except BaseException:
                await self.storage.destroy(_keyless(drive))
                raise
        return drive

    async def set(self, user: str, drive_id: str, changes: DriveChanges) -> Drive:
        model.check_changes(changes, self.config.max_drive_size)
        async with self._held(user, drive_id) as drive:
            changed = model.apply_changes(drive, changes)
            if changed.size < drive.size:
                raise UsageError("size cannot shrink: that would discard the drive's data")
            async with self.quotas.drives(user, size=changed.size - drive.size):
                if changed.size > drive.size:
                    await self.storage.resize(self.volume(drive), changed.size)
                if not await self.store.update_drive(user, changed):
                    raise MissingError(f"no such drive: {drive_id[:40]}")
            return changed

    def _check_exportable(self, drive: Drive) -> None:
        """Reads of a qcow2 or encrypted drive go through an export of our own, which a running
        guest's lock on the file forbids (and qcow2 metadata may change under a reader anyway)."""
        if (drive.format == "qcow2" or drive.encrypted) and drive.claimed:
            raise BusyError(f"drive {drive.drive} is in use by a running server")

    def check_unclaimed(self, drive: Drive) -> None:
        if drive.claimed:
            raise BusyError(f"drive {drive.drive} is claimed by {' '.join(drive.claimed)}")

    def check_writable(self, drive: Drive) -> None:
        """Bytes may change only when no image job is pending on the drive (its jobs, as the
        store read them with the drive) and no active server holds it."""
        if drive.image_job is not None:
            raise BusyError(f"drive {drive.drive} is being imaged")
        self.check_unclaimed(drive)

    async def destroy(self, user: str, drive_id: str, *, manager: bool = False) -> None:
        """Forget a drive and its volume. A boot drive of an ECS server is that dialect's to
        destroy (`manager`): Busy for anyone else."""
        async with self._held(user, drive_id) as drive:
            if not manager and (name := await self.store.ecs_manager_of(drive.drive)) is not None:
                raise BusyError(f"{drive.drive} is managed by the ECS API as the boot drive of {name}: delete it there")
            self.check_writable(drive)
            if self.jobs.running_on(drive.drive) is not None:  # one that started since the read
                raise BusyError(f"drive {drive.drive} is being imaged")
            if self.use.in_use(drive.drive):
                raise BusyError(f"drive {drive.drive} has reads or writes in progress")
            # Row first: once it is gone no request can reach the volume, and a crash before the
            # file is removed leaves an orphan the start-up sweep deletes.
            if not await self.store.delete_drive(user, drive.drive):
                raise MissingError(f"no such drive: {drive_id[:40]}")
            await self.storage.destroy(_keyless(drive))

    async def write(
        self, user: str, drive_id: str, offset: int, body: AsyncIterator[bytes], *, gzip: bool, length: int | None
    ) -> int:
        """Write a request body at an offset; returns the uncompressed bytes written."""
        drive = await self.owned(user, drive_id)
        _check_offset(offset)
        self.check_writable(drive)
        if offset > drive.size or (length is not None and not gzip and offset + length > drive.size):
            raise FullError(f"write past the end of drive {drive.drive} ({drive.size} bytes)")
        # A slot first (503 when all are taken), so a refused upload never touches the drive.
        with self.uploads.take(user), self.use.io(drive.drive):
            # Checked again inside: an image job may have started while this request waited.
            if self.jobs.running_on(drive.drive) is not None:
                raise BusyError(f"drive {drive.drive} is being imaged")
            written = await self.storage.write(
                self.volume(drive), offset, body, gzip=gzip, max_decompressed=self.config.max_write_decompressed
            )
        # Counted in memory, stored in batches (service/counters.py): a full metadata disk (or
        # any store failure) never turns a done write or read into an error.
        self.counters.add(drive.drive, IoCounts(write_bytes=written, write_requests=1))
        return written

    async def read(self, user: str, drive_id: str, offset: int, size: int) -> DriveRead:
        """What a read returns: the range, cut at the drive's end, and the file to send it from
        when the volume holds guest bytes as they are."""
        drive = await self._stored(user, drive_id)
        _check_offset(offset)
        if offset >= drive.size:
            raise UsageError(f"offset {offset} is at or past the end of the drive ({drive.size} bytes)")
        self._check_exportable(drive)
        if not 0 < size <= self.config.max_read_size:
            raise UsageError(f"read size must be between 1 and {self.config.max_read_size} bytes")
        return DriveRead(drive, offset, min(size, drive.size - offset), self.storage.plain_file(self.volume(drive)))

    def reading(self, read: DriveRead) -> Reading:
        """Holds the drive in use for the `with` block, while its bytes go out, and counts what
        went (a plain context manager, as DriveUse.io)."""
        return Reading(self, read.drive.drive)

    def opener(self, read: DriveRead) -> Callable[[], int]:
        """Opens the volume's file, a descriptor (blocking: call it in a thread), to send read's range from with
        sendfile (only when read.file is set)."""
        assert read.file is not None
        return functools.partial(open_to_send, read.file, read.offset, read.length)

    def chunks(self, read: DriveRead) -> AsyncGenerator[bytes, None]:
        return self.storage.read(self.volume(read.drive), read.offset, read.length)

    async def checksum(self, user: str, drive_id: str, offset: int | None, size: int | None) -> Checksum:
        """SHA-256 of the guest-visible bytes [offset, offset+size), cut at the drive's end like a
        read; None for the offset is the start, for the size the rest of the drive."""
        drive = await self.get(user, drive_id)
        offset = 0 if offset is None else _check_offset(offset)
        size = drive.size - offset if size is None else size
        if offset >= drive.size or size <= 0:
            raise UsageError(f"offset {offset} is at or past the end of the drive ({drive.size} bytes)")
        length = min(size, drive.size - offset)
        if length > self.config.max_checksum_size:
            raise UsageError(f"a checksum covers at most {self.config.max_checksum_size} bytes; ask for ranges")
        self._check_exportable(drive)
        digest = hashlib.sha256()
        with self.use.io(drive.drive):
            async for chunk in self.storage.read(self.volume(drive), offset, length):
                await asyncio.to_thread(digest.update, chunk)  # hashlib drops the GIL on large buffers
        return Checksum(drive.drive, offset, length, digest.hexdigest())

    async def sweep_orphans(self) -> list[str]:
        """Remove pool files that no drive owns (left by a crash between file and row), and the
        temporary files of operations a crash cut short."""
        for name in await self.storage.sweep_temporaries():
            log.warning("removing %s, left by an operation that did not finish", name)
        orphans = sorted(await self.storage.volumes() - await self.store.all_drive_ids())
        for orphan in orphans:
            log.warning("removing orphan volume %s", orphan)
            for fmt in model.FORMATS:
                await self.storage.destroy(Volume(orphan, fmt, 0))
        return orphans


def _check_offset(offset: int) -> int:
    """A dialect parses offsets from its own text; a negative one is no place in any drive."""
    if offset < 0:
        raise UsageError("offset out of range")
    return offset


def _keyless(drive: Drive) -> Volume:
    """Enough of a volume to remove its file: no key needed, so a drive always can be destroyed."""
    return Volume(drive.drive, drive.format, drive.size)
