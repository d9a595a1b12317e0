"""The PostgreSQL schema's migrations: schema_migrations holds the numbers applied; append, never
edit. Each runs in one transaction with its number.

Not a copy of the SQLite history (store/migrations.py): the first migration is the schema SQLite
reached at its migration 11, plus quota holds (SQLite keeps those in memory), written for
PostgreSQL. Times in ns are BIGINT; hashes and wrapped keys BYTEA; the JSON SQLite keeps as text
is JSONB (keys, a server's configuration, a job's parameters), so the resource checks look into
it with PostgreSQL's operators; the global counters (jobs, SSH keys, groups, catalogue numbers,
audit entries, reservations) are identity columns, sequences that never hand a number out
twice. IDs, and every text a page is ordered by, are COLLATE "C": byte order, as SQLite
compares, whatever locale the database was made with. What SQLite's triggers did is done by the
store's own statements in the same transaction (a drive's jobs go with it, an image gets its
catalogue number), and "an address is never both an IP resource and an automatic lease" is
kept under the pool's lock (store/postgres/resources.py)."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: the schema of SQLite's migrations 1-11, and quota holds: what an admitted command may still
    # be making, counted by every node's admissions until the command ends or the hold lapses.
    """
    CREATE TABLE users (
        id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        secret_hash BYTEA NOT NULL,
        created BIGINT NOT NULL
    );
    CREATE TABLE quotas (
        owner TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        key TEXT COLLATE "C" NOT NULL,
        value BIGINT CHECK (value IS NULL OR value >= 0),
        PRIMARY KEY (owner, key)
    );
    CREATE TABLE drives (
        id TEXT COLLATE "C" PRIMARY KEY,
        owner TEXT COLLATE "C" NOT NULL REFERENCES users(id),
        name TEXT NOT NULL,
        size BIGINT NOT NULL CHECK (size > 0),
        format TEXT NOT NULL CHECK (format IN ('raw', 'qcow2')),
        claim_type TEXT NOT NULL CHECK (claim_type IN ('exclusive', 'shared')),
        encryption TEXT NOT NULL,
        tier TEXT NOT NULL,
        keys JSONB NOT NULL DEFAULT '{}',
        created BIGINT NOT NULL,
        read_bytes BIGINT NOT NULL DEFAULT 0,
        read_requests BIGINT NOT NULL DEFAULT 0,
        write_bytes BIGINT NOT NULL DEFAULT 0,
        write_requests BIGINT NOT NULL DEFAULT 0,
        wrapped_key BYTEA
    );
    CREATE INDEX drives_by_owner ON drives(owner, created, id);
    CREATE INDEX drives_by_created ON drives(created, id);
    CREATE INDEX drives_sizes ON drives(owner) INCLUDE (size);
    CREATE INDEX drives_encrypted ON drives(created) WHERE wrapped_key IS NOT NULL;
    CREATE TABLE drive_readers (
        drive TEXT COLLATE "C" NOT NULL REFERENCES drives(id) ON DELETE CASCADE,
        reader TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (drive, reader)
    );
    CREATE INDEX drive_readers_by_reader ON drive_readers(reader, drive);
    CREATE TABLE images (
        id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        size BIGINT NOT NULL,
        created BIGINT NOT NULL
    );
    CREATE INDEX images_by_created ON images(created, id);
    CREATE TABLE image_numbers (
        number BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        image TEXT COLLATE "C" NOT NULL UNIQUE REFERENCES images(id) ON DELETE CASCADE
    );
    CREATE TABLE jobs (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kind TEXT NOT NULL,
        owner TEXT COLLATE "C" NOT NULL REFERENCES users(id),
        resource TEXT COLLATE "C" NOT NULL,
        params JSONB NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
        progress INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
        created BIGINT NOT NULL,
        started BIGINT,
        finished BIGINT,
        error TEXT,
        lease_holder TEXT,
        lease_expires BIGINT,
        CHECK ((status = 'running') = (lease_holder IS NOT NULL AND lease_expires IS NOT NULL)),
        CHECK ((status IN ('done', 'failed')) = (finished IS NOT NULL))
    );
    CREATE INDEX jobs_by_resource ON jobs(resource, id);
    CREATE INDEX jobs_unfinished ON jobs(id) WHERE status IN ('queued', 'running');
    CREATE TABLE servers (
        id TEXT COLLATE "C" PRIMARY KEY,
        owner TEXT COLLATE "C" NOT NULL REFERENCES users(id),
        config JSONB NOT NULL,
        cpu BIGINT NOT NULL DEFAULT 0 CHECK (cpu >= 0),
        mem BIGINT NOT NULL DEFAULT 0 CHECK (mem >= 0),
        status TEXT NOT NULL CHECK (status IN ('stopped', 'active')),
        host TEXT,
        started BIGINT,
        created BIGINT NOT NULL,
        CHECK ((status = 'active') = (host IS NOT NULL AND started IS NOT NULL))
    );
    CREATE INDEX servers_by_owner ON servers(owner, created, id);
    CREATE INDEX servers_active ON servers(id) WHERE status = 'active';
    CREATE TABLE server_claims (
        server TEXT COLLATE "C" NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        device TEXT NOT NULL,
        drive TEXT COLLATE "C" NOT NULL REFERENCES drives(id),
        PRIMARY KEY (server, device)
    );
    CREATE INDEX server_claims_by_drive ON server_claims(drive, server);
    CREATE TABLE resources (
        id TEXT COLLATE "C" PRIMARY KEY,
        type TEXT NOT NULL CHECK (type IN ('ip', 'vlan')),
        owner TEXT COLLATE "C" NOT NULL REFERENCES users(id),
        name TEXT NOT NULL,
        keys JSONB NOT NULL DEFAULT '{}',
        created BIGINT NOT NULL
    );
    CREATE INDEX resources_by_owner ON resources(owner, created, id);
    CREATE TABLE ip_leases (
        ip TEXT COLLATE "C" PRIMARY KEY,
        server TEXT COLLATE "C" NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        nic INTEGER NOT NULL CHECK (nic >= 0),
        mac TEXT NOT NULL,
        resource TEXT COLLATE "C" REFERENCES resources(id),
        CHECK (resource IS NULL OR resource = ip),
        UNIQUE (server, nic)
    );
    CREATE INDEX ip_leases_by_resource ON ip_leases(resource) WHERE resource IS NOT NULL;
    CREATE TABLE api_tokens (
        digest BYTEA PRIMARY KEY,
        owner TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        group_name TEXT COLLATE "C",
        created BIGINT NOT NULL,
        hint TEXT NOT NULL
    );
    CREATE INDEX api_tokens_by_owner ON api_tokens(owner, created);
    CREATE TABLE ssh_keys (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        owner TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        key TEXT NOT NULL,
        created BIGINT NOT NULL,
        UNIQUE (owner, label)
    );
    CREATE TABLE ecs_groups (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        owner TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        notes TEXT NOT NULL,
        enabled BOOLEAN NOT NULL DEFAULT TRUE,
        password_hash BYTEA NOT NULL,
        created BIGINT NOT NULL
    );
    CREATE INDEX ecs_groups_by_owner ON ecs_groups(owner, id);
    CREATE TABLE server_samples (
        server TEXT COLLATE "C" NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        at DOUBLE PRECISION NOT NULL,
        run BIGINT NOT NULL,
        cpu_ns BIGINT NOT NULL,
        vcpus INTEGER NOT NULL,
        read_bytes BIGINT NOT NULL,
        write_bytes BIGINT NOT NULL,
        rx_bytes BIGINT NOT NULL,
        tx_bytes BIGINT NOT NULL,
        PRIMARY KEY (server, at)
    );
    CREATE INDEX server_samples_by_time ON server_samples(at);
    CREATE TABLE audit_log (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        owner TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        credential TEXT NOT NULL,
        group_name TEXT COLLATE "C",
        dialect TEXT NOT NULL,
        method TEXT NOT NULL,
        route TEXT NOT NULL,
        target TEXT COLLATE "C",
        at BIGINT NOT NULL,
        status INTEGER NOT NULL
    );
    CREATE INDEX audit_log_by_owner ON audit_log(owner, id);
    CREATE INDEX audit_log_by_target ON audit_log(owner, target, id);
    CREATE INDEX audit_log_by_time ON audit_log(at);
    CREATE TABLE server_support (
        server TEXT COLLATE "C" PRIMARY KEY,
        owner TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        code TEXT NOT NULL,
        title TEXT NOT NULL,
        weight INTEGER NOT NULL,
        days INTEGER NOT NULL,
        immutable BOOLEAN NOT NULL,
        may_downgrade BOOLEAN NOT NULL,
        monthly_price DOUBLE PRECISION NOT NULL,
        start BIGINT NOT NULL,
        end_at BIGINT,
        cancelled_at BIGINT
    );
    CREATE TABLE server_reservations (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        server TEXT COLLATE "C" NOT NULL,
        owner TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        term INTEGER NOT NULL,
        months INTEGER NOT NULL CHECK (months > 0),
        plan INTEGER NOT NULL,
        plan_name TEXT NOT NULL,
        discount INTEGER NOT NULL,
        start BIGINT NOT NULL,
        end_at BIGINT NOT NULL CHECK (end_at >= start)
    );
    CREATE INDEX server_reservations_by_server ON server_reservations(server, end_at);
    CREATE TABLE quota_holds (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        owner TEXT COLLATE "C" NOT NULL,
        drive_bytes BIGINT NOT NULL DEFAULT 0 CHECK (drive_bytes >= 0),
        drives BIGINT NOT NULL DEFAULT 0 CHECK (drives >= 0),
        servers BIGINT NOT NULL DEFAULT 0 CHECK (servers >= 0),
        cpu BIGINT NOT NULL DEFAULT 0 CHECK (cpu >= 0),
        mem BIGINT NOT NULL DEFAULT 0 CHECK (mem >= 0),
        ips BIGINT NOT NULL DEFAULT 0 CHECK (ips >= 0),
        until BIGINT NOT NULL
    );
    CREATE INDEX quota_holds_by_owner ON quota_holds(owner, until);
    """,
    # 2: ECS servers (SQLite's ecs_servers migration): a row per server of that dialect, numbered
    # from a sequence never reused (the number makes the `ecNNNNNN` name), naming the engine's drive
    # and server once they exist, holding the quota its create was admitted with until its action
    # makes the parts (held_*, 0 or 1); isolation pairs, gone with either server.
    """
    CREATE TABLE ecs_servers (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        owner TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        plan TEXT NOT NULL,
        cores INTEGER NOT NULL CHECK (cores > 0),
        ram_mb BIGINT NOT NULL CHECK (ram_mb > 0),
        disk_gb BIGINT NOT NULL CHECK (disk_gb > 0),
        cpu BIGINT NOT NULL CHECK (cpu >= 0),
        image TEXT COLLATE "C" NOT NULL,
        so TEXT NOT NULL,
        so_label TEXT NOT NULL,
        location TEXT NOT NULL,
        notes TEXT NOT NULL,
        group_id BIGINT REFERENCES ecs_groups(id) ON DELETE SET NULL,
        ssh_key TEXT,
        status TEXT NOT NULL,
        stage TEXT NOT NULL,
        progress INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
        drive TEXT COLLATE "C",
        server TEXT COLLATE "C",
        ipv4 TEXT NOT NULL DEFAULT '',
        created BIGINT NOT NULL,
        held_drive SMALLINT NOT NULL DEFAULT 0 CHECK (held_drive IN (0, 1)),
        held_server SMALLINT NOT NULL DEFAULT 0 CHECK (held_server IN (0, 1)),
        held_run SMALLINT NOT NULL DEFAULT 0 CHECK (held_run IN (0, 1))
    );
    CREATE INDEX ecs_servers_by_owner ON ecs_servers(owner, id);
    CREATE INDEX ecs_servers_by_drive ON ecs_servers(drive) WHERE drive IS NOT NULL;
    CREATE INDEX ecs_servers_by_server ON ecs_servers(server) WHERE server IS NOT NULL;
    CREATE TABLE ecs_isolations (
        a BIGINT NOT NULL REFERENCES ecs_servers(id) ON DELETE CASCADE,
        b BIGINT NOT NULL REFERENCES ecs_servers(id) ON DELETE CASCADE,
        PRIMARY KEY (a, b)
    );
    CREATE INDEX ecs_isolations_by_b ON ecs_isolations(b);
    """,
    # 3: what an ECS server's guest is given through its cloud-init seed (SQLite's migration 13).
    """
    ALTER TABLE ecs_servers ADD COLUMN cloudinit JSONB NOT NULL DEFAULT '{}';
    """,
    # 4: cloud scripts (SQLite's cloud_scripts migration): a user's library, numbered from a
    # sequence never reused.
    """
    CREATE TABLE cloud_scripts (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        owner TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        title TEXT NOT NULL,
        content TEXT NOT NULL,
        windows BOOLEAN NOT NULL,
        created BIGINT NOT NULL
    );
    CREATE INDEX cloud_scripts_by_owner ON cloud_scripts(owner, id);
    """,
    # 5: each VLAN's number among its owner's VLANs (SQLite's migration 15).
    """
    ALTER TABLE resources ADD COLUMN vlan_id INTEGER CHECK (vlan_id BETWEEN 1 AND 4094);
    UPDATE resources r SET vlan_id = n.number FROM (
        SELECT id, row_number() OVER (PARTITION BY owner ORDER BY created, id) AS number
        FROM resources WHERE type = 'vlan'
    ) n WHERE r.id = n.id;
    CREATE UNIQUE INDEX resources_vlan_ids ON resources(owner, vlan_id) WHERE vlan_id IS NOT NULL;
    """,
    # 6: an ECS server's VLANs (SQLite's migration 16).
    """
    ALTER TABLE ecs_servers ADD COLUMN vlans TEXT NOT NULL DEFAULT '[]';
    """,
    # 7: ECS servers' snapshots and users' templates (SQLite's migration 17).
    """
    CREATE TABLE ecs_snapshots (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        owner TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        server BIGINT NOT NULL REFERENCES ecs_servers(id) ON DELETE CASCADE,
        description TEXT NOT NULL,
        notes TEXT NOT NULL,
        status TEXT NOT NULL,
        created BIGINT NOT NULL,
        updated BIGINT NOT NULL,
        parent BIGINT,
        last_restored BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE INDEX ecs_snapshots_by_server ON ecs_snapshots(server, id);
    CREATE TABLE ecs_templates (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        owner TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        uuid TEXT COLLATE "C" NOT NULL UNIQUE,
        description TEXT NOT NULL,
        notes TEXT NOT NULL,
        status TEXT NOT NULL,
        source TEXT NOT NULL,
        snapshot BIGINT,
        size BIGINT NOT NULL,
        created BIGINT NOT NULL,
        so TEXT NOT NULL
    );
    CREATE INDEX ecs_templates_by_owner ON ecs_templates(owner, id);
    """,
)
