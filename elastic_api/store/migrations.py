"""Versioned schema migrations: PRAGMA user_version counts the ones applied; append, never edit.
A migration is SQL, or a Python step for a conversion SQL cannot write; each runs in one
transaction with the version it brings."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from elastic_api.store import legacy_server_rows, server_rows


def _typed_server_rows(db: sqlite3.Connection) -> None:
    """Server rows from props (legacy_server_rows) to the typed JSON of server_rows, with cpu
    and mem as columns so quotas sum them in SQL."""
    db.execute("ALTER TABLE servers ADD COLUMN cpu INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE servers ADD COLUMN mem INTEGER NOT NULL DEFAULT 0")
    for server, text in db.execute("SELECT id, config FROM servers").fetchall():
        data = json.loads(text)
        config = server_rows.load(text) if "v" in data else legacy_server_rows.read(data)
        db.execute(
            "UPDATE servers SET config = ?, cpu = ?, mem = ? WHERE id = ?",
            (server_rows.dump(config), config.cpu, config.mem, server),
        )


Migration = str | Callable[[sqlite3.Connection], None]

MIGRATIONS: tuple[Migration, ...] = (
    # 1: users and drives
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        secret_hash BLOB NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE TABLE drives (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL REFERENCES users(id),
        name TEXT NOT NULL,
        size INTEGER NOT NULL CHECK (size > 0),
        format TEXT NOT NULL CHECK (format IN ('raw', 'qcow2')),
        claim_type TEXT NOT NULL CHECK (claim_type IN ('exclusive', 'shared')),
        encryption TEXT NOT NULL,
        tier TEXT NOT NULL,
        keys TEXT NOT NULL DEFAULT '{}',
        created INTEGER NOT NULL,
        read_bytes INTEGER NOT NULL DEFAULT 0,
        read_requests INTEGER NOT NULL DEFAULT 0,
        write_bytes INTEGER NOT NULL DEFAULT 0,
        write_requests INTEGER NOT NULL DEFAULT 0,
        imaging TEXT,
        imaging_error TEXT
    );
    CREATE INDEX drives_by_owner ON drives(owner, created, id);
    CREATE INDEX drives_by_created ON drives(created, id);
    CREATE TABLE drive_readers (
        drive TEXT NOT NULL REFERENCES drives(id) ON DELETE CASCADE,
        reader TEXT NOT NULL,
        PRIMARY KEY (drive, reader)
    );
    CREATE INDEX drive_readers_by_reader ON drive_readers(reader, drive);
    """,
    # 2: the standard image library and image jobs (queued in order per drive, resumed at start)
    """
    CREATE TABLE images (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE INDEX images_by_created ON images(created, id);
    CREATE TABLE image_jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        drive TEXT NOT NULL REFERENCES drives(id) ON DELETE CASCADE,
        owner TEXT NOT NULL REFERENCES users(id),
        source TEXT NOT NULL,
        conversion TEXT NOT NULL CHECK (conversion IN ('', 'gzip', 'gunzip'))
    );
    CREATE INDEX image_jobs_by_drive ON image_jobs(drive, id);
    """,
    # 3: servers, and the drives active servers claim (rows exist only while a server is active)
    """
    CREATE TABLE servers (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL REFERENCES users(id),
        config TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('stopped', 'active')),
        host TEXT,
        started INTEGER,
        created INTEGER NOT NULL
    );
    CREATE INDEX servers_by_owner ON servers(owner, created, id);
    CREATE TABLE server_claims (
        server TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        device TEXT NOT NULL,
        drive TEXT NOT NULL REFERENCES drives(id),
        PRIMARY KEY (server, device)
    );
    CREATE INDEX server_claims_by_drive ON server_claims(drive, server);
    """,
    # 4: resources (static IPs and VLANs) and the addresses active servers' NICs hold. An address
    # is held by one NIC at most (the lease's primary key), and an `auto` lease never takes an
    # address that is a user's IP resource, nor a new IP resource one an `auto` lease holds.
    """
    CREATE TABLE resources (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL CHECK (type IN ('ip', 'vlan')),
        owner TEXT NOT NULL REFERENCES users(id),
        name TEXT NOT NULL,
        keys TEXT NOT NULL DEFAULT '{}',
        created INTEGER NOT NULL
    );
    CREATE INDEX resources_by_owner ON resources(owner, created, id);
    CREATE TABLE ip_leases (
        ip TEXT PRIMARY KEY,
        server TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        nic INTEGER NOT NULL,
        mac TEXT NOT NULL,
        resource TEXT REFERENCES resources(id),
        CHECK (resource IS NULL OR resource = ip),
        UNIQUE (server, nic)
    );
    CREATE TRIGGER ip_leases_auto_not_a_resource BEFORE INSERT ON ip_leases
    WHEN NEW.resource IS NULL AND EXISTS (SELECT 1 FROM resources WHERE id = NEW.ip)
    BEGIN SELECT RAISE(ABORT, 'address is an IP resource'); END;
    CREATE TRIGGER resources_not_leased BEFORE INSERT ON resources
    WHEN EXISTS (SELECT 1 FROM ip_leases WHERE ip = NEW.id)
    BEGIN SELECT RAISE(ABORT, 'address is leased'); END;
    """,
    # 5: per-user quota overrides (`elastic-api user set-quota`); a NULL limit is unlimited, and a
    # user without a row for a key follows the configured default.
    """
    CREATE TABLE quotas (
        owner TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value INTEGER CHECK (value IS NULL OR value >= 0),
        PRIMARY KEY (owner, key)
    );
    """,
    # 6: encrypted drives: each encrypted drive's key, wrapped by the master key that lives outside
    # the database
    """
    ALTER TABLE drives ADD COLUMN wrapped_key BLOB;
    """,
    # 7: jobs: background work on one resource (image copies into drives first), with progress,
    # times, error and a lease (the node running it, until when). Queued image jobs move here in
    # their order, and each drive's last imaging error becomes a failed job: a drive's imaging
    # state is derived from its jobs from now on, and its old columns are cleared, never read.
    # Rows from before have times of 0 (unknown). A drive's jobs go with it.
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        owner TEXT NOT NULL REFERENCES users(id),
        resource TEXT NOT NULL,
        params TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
        progress INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
        created INTEGER NOT NULL,
        started INTEGER,
        finished INTEGER,
        error TEXT,
        lease_holder TEXT,
        lease_expires INTEGER,
        CHECK ((status = 'running') = (lease_holder IS NOT NULL AND lease_expires IS NOT NULL)),
        CHECK ((status IN ('done', 'failed')) = (finished IS NOT NULL))
    );
    CREATE INDEX jobs_by_resource ON jobs(resource, id);
    CREATE INDEX jobs_unfinished ON jobs(id) WHERE status IN ('queued', 'running');
    INSERT INTO jobs (kind, owner, resource, params, status, created, finished, error)
        SELECT 'image', owner, id, json_object('conversion', '', 'source', ''), 'failed', 0, 0, imaging_error
        FROM drives WHERE imaging_error IS NOT NULL ORDER BY id;
    INSERT INTO jobs (kind, owner, resource, params, status, created)
        SELECT 'image', owner, drive, json_object('conversion', conversion, 'source', source), 'queued', 0
        FROM image_jobs ORDER BY id;
    UPDATE drives SET imaging = NULL, imaging_error = NULL WHERE imaging IS NOT NULL OR imaging_error IS NOT NULL;
    DROP TABLE image_jobs;
    CREATE TRIGGER drives_take_their_jobs AFTER DELETE ON drives
    BEGIN DELETE FROM jobs WHERE resource = OLD.id; END;
    """,
    # 8: the ECS dialect's own rows: API tokens (hashes only), SSH keys (a label unique per owner),
    # groups (numbered from a counter never reused: the number makes the name), and the catalogue
    # number of each standard image, given by a trigger as an image is added (existing images are
    # numbered in the order they were added) and gone with it.
    """
    CREATE TABLE api_tokens (
        digest BLOB PRIMARY KEY,
        owner TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        group_name TEXT,
        created INTEGER NOT NULL,
        hint TEXT NOT NULL
    );
    CREATE INDEX api_tokens_by_owner ON api_tokens(owner, created);
    CREATE TABLE ssh_keys (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        key TEXT NOT NULL,
        created INTEGER NOT NULL,
        UNIQUE (owner, label)
    );
    CREATE TABLE ecs_groups (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        notes TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        password_hash BLOB NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE INDEX ecs_groups_by_owner ON ecs_groups(owner, id);
    CREATE TABLE image_numbers (
        number INTEGER PRIMARY KEY AUTOINCREMENT,
        image TEXT NOT NULL UNIQUE REFERENCES images(id) ON DELETE CASCADE
    );
    INSERT INTO image_numbers (image) SELECT id FROM images ORDER BY created, id;
    CREATE TRIGGER images_numbered AFTER INSERT ON images
    BEGIN INSERT INTO image_numbers (image) VALUES (NEW.id); END;
    """,
    # 9: servers: the configuration as typed JSON (store.server_rows) instead of ElasticHosts props,
    # and cpu and mem as columns. Python: reading the old rows needs their parser.
    _typed_server_rows,
    # 10: servers' sampled counters (service/metrics.py), deleted with their server; by time too, so
    # pruning what is past the retention does not scan every server's rows.
    """
    CREATE TABLE server_samples (
        server TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        at REAL NOT NULL,
        run INTEGER NOT NULL,
        cpu_ns INTEGER NOT NULL,
        vcpus INTEGER NOT NULL,
        read_bytes INTEGER NOT NULL,
        write_bytes INTEGER NOT NULL,
        rx_bytes INTEGER NOT NULL,
        tx_bytes INTEGER NOT NULL,
        PRIMARY KEY (server, at)
    ) WITHOUT ROWID;
    CREATE INDEX server_samples_by_time ON server_samples(at);
    """,
    # 11: the audit trail (every changing call of either dialect: who, what, on what, when, how it
    # ended; never a body or a credential), and servers' support plans and reservations, by the
    # engine's server UUID (the plan's terms copied in: a record keeps what was sold).
    """
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        credential TEXT NOT NULL,
        group_name TEXT,
        dialect TEXT NOT NULL,
        method TEXT NOT NULL,
        route TEXT NOT NULL,
        target TEXT,
        at INTEGER NOT NULL,
        status INTEGER NOT NULL
    );
    CREATE INDEX audit_log_by_owner ON audit_log(owner, id);
    CREATE INDEX audit_log_by_target ON audit_log(owner, target, id);
    CREATE INDEX audit_log_by_time ON audit_log(at);
    CREATE TABLE server_support (
        server TEXT PRIMARY KEY,
        owner TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        code TEXT NOT NULL,
        title TEXT NOT NULL,
        weight INTEGER NOT NULL,
        days INTEGER NOT NULL,
        immutable INTEGER NOT NULL,
        may_downgrade INTEGER NOT NULL,
        monthly_price REAL NOT NULL,
        start INTEGER NOT NULL,
        end_at INTEGER,
        cancelled_at INTEGER
    );
    CREATE TABLE server_reservations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        server TEXT NOT NULL,
        owner TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        term INTEGER NOT NULL,
        months INTEGER NOT NULL,
        plan INTEGER NOT NULL,
        plan_name TEXT NOT NULL,
        discount INTEGER NOT NULL,
        start INTEGER NOT NULL,
        end_at INTEGER NOT NULL
    );
    CREATE INDEX server_reservations_by_server ON server_reservations(server, end_at);
    """,
    # 12: ECS servers: a row per server of that dialect (numbered from a counter never reused: the
    # number makes the `ecNNNNNN` name), naming the engine's drive and server it is made of once
    # they exist, and holding the quota its create was admitted with until its action makes the
    # parts (held_*); isolation pairs, gone with either server.
    """
    CREATE TABLE ecs_servers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        plan TEXT NOT NULL,
        cores INTEGER NOT NULL,
        ram_mb INTEGER NOT NULL,
        disk_gb INTEGER NOT NULL,
        cpu INTEGER NOT NULL,
        image TEXT NOT NULL,
        so TEXT NOT NULL,
        so_label TEXT NOT NULL,
        location TEXT NOT NULL,
        notes TEXT NOT NULL,
        group_id INTEGER REFERENCES ecs_groups(id) ON DELETE SET NULL,
        ssh_key TEXT,
        status TEXT NOT NULL,
        stage TEXT NOT NULL,
        progress INTEGER NOT NULL DEFAULT 0,
        drive TEXT,
        server TEXT,
        ipv4 TEXT NOT NULL DEFAULT '',
        created INTEGER NOT NULL,
        held_drive INTEGER NOT NULL DEFAULT 0,
        held_server INTEGER NOT NULL DEFAULT 0,
        held_run INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX ecs_servers_by_owner ON ecs_servers(owner, id);
    CREATE INDEX ecs_servers_by_drive ON ecs_servers(drive) WHERE drive IS NOT NULL;
    CREATE INDEX ecs_servers_by_server ON ecs_servers(server) WHERE server IS NOT NULL;
    CREATE TABLE ecs_isolations (
        a INTEGER NOT NULL REFERENCES ecs_servers(id) ON DELETE CASCADE,
        b INTEGER NOT NULL REFERENCES ecs_servers(id) ON DELETE CASCADE,
        PRIMARY KEY (a, b)
    );
    CREATE INDEX ecs_isolations_by_b ON ecs_isolations(b);
    """,
    # 13: what an ECS server's guest is given through its cloud-init seed (model.cloudinit's
    # GuestSetup as JSON: the SSH key, the password's hash, never the password, the script), kept
    # from the request until its action makes the engine's server. Older rows: nothing.
    """
    ALTER TABLE ecs_servers ADD COLUMN cloudinit TEXT NOT NULL DEFAULT '{}';
    """,
    # 14: cloud scripts (/scripts): a user's library, numbered from a counter never reused.
    """
    CREATE TABLE cloud_scripts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        title TEXT NOT NULL,
        content TEXT NOT NULL,
        windows INTEGER NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE INDEX cloud_scripts_by_owner ON cloud_scripts(owner, id);
    """,
    # 15: each VLAN's number among its owner's VLANs (model/resource.py `vlan_id`, what the ECS
    # dialect's `networks` name it by): existing VLANs are numbered in the order they were made.
    """
    ALTER TABLE resources ADD COLUMN vlan_id INTEGER CHECK (vlan_id BETWEEN 1 AND 4094);
    UPDATE resources SET vlan_id = (
        SELECT count(*) FROM resources r WHERE r.owner = resources.owner AND r.type = 'vlan'
        AND (r.created, r.id) <= (resources.created, resources.id)
    ) WHERE type = 'vlan';
    CREATE UNIQUE INDEX resources_vlan_ids ON resources(owner, vlan_id) WHERE vlan_id IS NOT NULL;
    """,
    # 16: an ECS server's VLANs (JSON list of VLAN UUIDs, its NICs after NIC 0), from `networks`.
    """
    ALTER TABLE ecs_servers ADD COLUMN vlans TEXT NOT NULL DEFAULT '[]';
    """,
    # 17: ECS servers' snapshots (internal qcow2 snapshots of the boot drive: the rows say what
    # each is; gone with their server) and users' templates (images made from a boot drive, whose
    # UUID names their base in the pool), both numbered from counters never reused.
    """
    CREATE TABLE ecs_snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        server INTEGER NOT NULL REFERENCES ecs_servers(id) ON DELETE CASCADE,
        description TEXT NOT NULL,
        notes TEXT NOT NULL,
        status TEXT NOT NULL,
        created INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        parent INTEGER,
        last_restored INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX ecs_snapshots_by_server ON ecs_snapshots(server, id);
    CREATE TABLE ecs_templates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        uuid TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL,
        notes TEXT NOT NULL,
        status TEXT NOT NULL,
        source TEXT NOT NULL,
        snapshot INTEGER,
        size INTEGER NOT NULL,
        created INTEGER NOT NULL,
        so TEXT NOT NULL
    );
    CREATE INDEX ecs_templates_by_owner ON ecs_templates(owner, id);
    """,
)
