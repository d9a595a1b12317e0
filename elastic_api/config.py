"""Typed configuration: YAML file, then $ELASTIC_API_CONFIG, then built-in defaults."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from elastic_api.errors import ConfigError, UsageError
from elastic_api.model.catalogue import (
    DEFAULT_PLANS,
    Plan,
    Region,
    parse_plans,
    parse_regions,
)
from elastic_api.config_checks import check, parse_listen
from elastic_api.config_ip_pool import IpPool, check_ip_pool, parse_ip_pool
from elastic_api.model.quota import Quota, parse_mapping
from elastic_api.model.support import (
    DEFAULT_RESERVED_TERMS,
    DEFAULT_SUPPORT_PLANS,
    ReservedTerm,
    SupportPlan,
    parse_reserved_terms,
    parse_support_plans,
)

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class HostConfig:
    """One libvirt host: a name for logs and placement, and its connection URI."""

    name: str
    uri: str
    # Memory this host may give to guests, in MB; 0 means "ask libvirt for the host's free memory".
    mem_mb: int = 0
    # The region (a location code of `regions:`) and availability zone the host is in: "" is the
    # first region, and a zone of its own named after the host.
    region: str = ""
    zone: str = ""


# Every user's limits unless `elastic-api user set-quota` gives them their own. Generous enough
# for real work on one large host (100 servers of 2 GHz and 2.5 GB, 10 TiB of sparse drives);
# an operator selling capacity lowers them. `unlimited` lifts one.
DEFAULT_QUOTA = Quota(drive_bytes=10 * 1024 * GiB, drives=200, servers=100, cpu=200_000, mem=256 * 1024, ips=32)


@dataclass(frozen=True)
class Config:
    listen: str = "127.0.0.1:8080"
    # HOST:PORT of the operators' Prometheus endpoint (/metrics), a listener of its own so that
    # it is never exposed where the API is; "" (the default) serves none: an operator opts in,
    # and picks an address only the monitoring network reaches (e.g. "127.0.0.1:9108").
    metrics_listen: str = ""
    data_dir: Path = Path("./var")
    hosts: tuple[HostConfig, ...] = (HostConfig("local", "qemu:///system"),)

    # Volume format of a plain drive created without a `format` key (encrypted drives are always
    # qcow2 with LUKS inside: thin, and reading zeros where nothing was written).
    default_format: str = "raw"
    # encryption:cipher of a drive created without one: the ElasticHosts default, or "none".
    default_cipher: str = "aes-xts-plain"
    # The master key file that wraps every drive key; "" means <data_dir>/master.key, created on
    # first start. A path given here is never created: a missing file is an error (an unmounted
    # key store must not silently become a new key).
    master_key_file: str = ""
    # Where guests' VNC servers listen unless a server asks for an address; loopback keeps them private.
    vnc_listen: str = "127.0.0.1"
    # The MHz of one physical core, to turn a server's `cpu` (core MHz) into a CPU quota.
    host_core_mhz: int = 2000
    log_level: str = "INFO"
    # Guests' domain type: "auto" is KVM where /dev/kvm works and TCG ("qemu") elsewhere.
    domain_type: str = "auto"
    ip_pool: IpPool = field(default_factory=IpPool)
    # The libvirt network (on every host) that NICs with `nic:N:dhcp` join: an isolated bridge
    # whose DHCP hands each NIC its reserved address.
    public_network: str = "elastic-public"
    # Each VLAN is the libvirt network PREFIX + its UUID; start-up removes networks with this prefix
    # that no VLAN owns, so one prefix per deployment (and per test) keeps hands off the others'.
    vlan_network_prefix: str = "elastic-vlan-"

    # Limits. Each says why its default is what it is.
    # Seconds between attempts to reopen a lost libvirt connection: a guest that stopped while its
    # host was out of reach is put right within this long of the host's return, and an attempt
    # costs one connect (keepalives take ~20 s to notice a dead remote host anyway).
    host_reconnect_interval: float = 5.0
    # Seconds between two samples of every running server's counters (one bulk call per host):
    # 300 is the spacing of the ECS docs' example series, 288 rows a day per server.
    metrics_interval: int = 300
    # Seconds a sample is kept (then pruned): 24 hours, the day of history the ECS panel shows.
    metrics_retention: int = 24 * 3600
    # Metadata bodies are a few hundred bytes of keys; 64 KiB leaves room for many user:* keys.
    max_metadata_body: int = 64 * KiB
    # The one page size a list may ask for; larger pages belong in several requests.
    max_list_limit: int = 1000
    # The docs cap a read at 4 MB; 64 MiB lets fast clients use fewer requests without huge buffers.
    max_read_size: int = 64 * MiB
    # Decompressed bytes one write may carry: 64 MiB of zeros gzips to ~64 KB, so cap the inflated size.
    max_write_decompressed: int = 1 * GiB
    # Bytes one checksum request may hash: a whole-drive hash would hold a request for minutes.
    max_checksum_size: int = 1 * GiB
    # Largest drive a user may create: bounds sparse files and qcow2 metadata to sane sizes.
    max_drive_size: int = 16 * 1024 * GiB
    # Bytes handed between socket, gzip decoder and volume at a time: large enough for fast I/O,
    # small enough that memory stays flat however large the upload.
    stream_chunk: int = 1 * MiB
    # A write body held in memory before it spills to a temporary file: real tools send 1-5 MiB chunks.
    write_buffer: int = 8 * MiB
    # Seconds a qcow2 drive's NBD export lingers idle: consecutive chunks reuse it, idle drives free it.
    qcow2_export_idle: int = 2
    # qemu-storage-daemons serving one encrypted raw drive while it is in use: qemu's luks driver
    # encrypts on a daemon's one thread; 4 keep two cores busy (one decrypting while another moves
    # bytes: 4 lanes read 15% faster than 2 here); each daemon holds about 12 MiB while in use.
    luks_lanes: int = 4
    # Bytes kept in a reserve file beside the database and given up when a destroy finds the disk
    # full (SQLite must write WAL frames to delete a row): a destroy touches a few dozen pages, and
    # the WAL grows to about 4 MiB (1,000 pages) before a checkpoint rewinds it, so 8 MiB let
    # destroys commit with the disk full. 0 keeps no reserve.
    db_reserve: int = 8 * MiB
    # The metadata store: "" is SQLite in data_dir (one node), a PostgreSQL URL the database several
    # nodes share, through a pool of this many connections each (a call holds one for a few
    # statements: 10 serve hundreds of calls a second; N nodes need N x 10 of max_connections).
    database_url: str = ""
    database_pool_size: int = 10
    # This node's name on the job leases it takes, unique among the nodes sharing a database
    # (a second live node under it is refused at start): "" is the host's name, so a node
    # restarted on its host takes back its own jobs at once instead of after their lease.
    node_name: str = ""
    # Seconds an admitted create's quota hold lasts if it never ends (its node died): longer than
    # any create takes, and what a dead node held is free again within the hour.
    quota_hold_seconds: int = 3600
    # Seconds one storage request (an NBD read, write or flush of at most stream_chunk bytes) may
    # take: a healthy daemon answers in milliseconds and a slow disk in a few seconds, so 60 only
    # catches a frozen or wedged qemu-storage-daemon, whose export is then killed and restarted.
    storage_timeout: int = 60
    # Image jobs copying at once: each is disk- and CPU-bound (gzip), two cores serve two well.
    max_image_jobs: int = 2
    # Seconds a node's claim on a running job lasts unless its heartbeat renews it: another node
    # takes the job over only after that (the node itself, restarted, at once), so it must
    # outlast a few missed beats and a stalled store, and is short enough to resume in a minute.
    job_lease_seconds: int = 60
    # Seconds between heartbeats renewing this node's leases: a fifth of the lease rides out a
    # few slow store writes (one write per beat, whatever the number of jobs).
    job_heartbeat_seconds: int = 12
    # Seconds at least between two stores of one job's progress: the live value is in memory and
    # the row only matters after a crash, so a copy's thousands of reports cost a write a second.
    job_progress_seconds: int = 1
    # Seconds between stores of the drives' I/O counters, added up in memory meanwhile (and
    # stored at a clean shutdown): a crash loses at most this long's counts, and a 4 MiB read
    # no longer waits on a commit of its own. Info shows the stored counts plus those pending.
    # 0 stores them at once (the counts of requests that come meanwhile in the same commit).
    io_counter_flush_seconds: float = 5.0
    # Rows at most that a metadata read may touch to run on the event loop (a drive's info, a
    # page of a list) through a read-only connection, instead of queueing on the store's thread
    # behind a commit's disk sync; 0 sends every read to the thread.
    db_inline_read_rows: int = 200
    # Drive rows (SQLite only) kept in memory between commits to answer `info` without a query;
    # any commit forgets them all. Bounded so that asking for many IDs cannot grow memory. 0: off.
    db_cached_rows: int = 10_000
    # Threads that send downloads' bytes with sendfile (http/sendfile.py): the kernel's copies run
    # on every core instead of the event loop's. More downloads at once use the loop's sendfile.
    sendfile_threads: int = 4
    # Seconds a download's sender thread waits for a client that takes no byte before giving up
    # on it (closing the connection): a stalled client holds a sender no longer than this.
    sendfile_stall_seconds: float = 60.0
    # Writes receiving a body at once, per user and in all (more answer 503 with Retry-After):
    # each holds up to write_buffer in memory, so 32 bound that to 256 MiB; a user's tool sends
    # a few chunks in flight, and 8 leave room without letting one user take every slot.
    max_uploads_per_user: int = 8
    max_uploads: int = 32
    # Seconds from a connection's opening, or a request's first byte, until its request line and
    # headers must be in: real clients send them in one packet, a trickling client is cut off.
    header_timeout: int = 10
    # Seconds a request body may go without a byte arriving (a metadata body: in all); a stalled
    # upload would otherwise hold its connection and keep its drive busy forever.
    body_timeout: int = 30
    # Bytes per second a request body must average, counting only the time spent waiting for the
    # client, once body_rate_grace seconds of waiting have passed: body_timeout alone let a byte
    # every few seconds hold an upload slot forever. 16 KiB/s passes a 256 kbit/s uplink (32 KB/s)
    # with room, and makes holding all 32 slots cost an attacker a sustained 512 KiB/s. 0: no minimum.
    min_body_rate: int = 16 * KiB
    # Seconds of waiting for a body before min_body_rate applies: room for TCP slow start and a
    # client reading its first chunk from disk, short enough that a trickle is cut off soon (at
    # least 1: with none, a body whose first byte is not already in would be too slow at once).
    body_rate_grace: int = 10
    # Seconds that requests in flight at SIGTERM get to finish (new connections are refused and
    # idle ones closed meanwhile): a 4 MiB chunk finishes in 60 s on a 0.6 Mbit/s uplink, and 60
    # is under systemd's 90 s stop timeout, so an orderly exit comes before its SIGKILL.
    shutdown_grace: int = 60
    # Seconds an idle keep-alive connection stays open: clients reuse them between chunks, but an
    # idle socket costs a descriptor and memory.
    keepalive_timeout: int = 60
    # Seconds the server reads and drops the rest of a body it refused, so the client sees the
    # error rather than a reset; short, since a stalled client sends nothing to read.
    lingering_time: int = 2
    # Allocations the garbage collector lets pass between young collections once serving starts
    # (Python's default is 700): a busy server allocates that many per request or two, and its
    # collections took 3% of the time, with full ones of 15-25 ms adding to the slowest answers.
    gc_threshold: int = 50_000
    # Seconds a verified secret is trusted without reading the store again: reading it on every
    # request was a third of a small request's trips to the store's thread. A secret is never
    # changed by this program, so this bounds only how long a user removed by hand stays able
    # to sign in; 0 reads the store on every request.
    auth_cache_seconds: int = 60
    # Users whose verified secret is remembered at once (the oldest are forgotten first): about
    # 200 bytes each, so 10,000 bound the cache to 2 MiB however many users sign in.
    auth_cache_users: int = 10_000

    quotas: Quota = DEFAULT_QUOTA

    # The catalogue the ECS dialect offers. Regions group hosts (empty: one region `local`
    # holding every host); plans are the server sizes (default: the real catalogue's six, free).
    regions: tuple[Region, ...] = ()
    plans: tuple[Plan, ...] = DEFAULT_PLANS
    # Seconds a token from `POST /ecs/v2/login` lasts: a working day's session, as Seeweb's
    # panel logins do; long-lived automation uses `elastic-api user token create` instead.
    login_token_seconds: int = 4 * 3600
    # SSH keys and groups one user may keep: each is a small row, and a few dozen cover any real
    # account (the web panel lists them on one page); the cap keeps one user from filling the store.
    max_ssh_keys_per_user: int = 100
    max_groups_per_user: int = 100
    # Cloud scripts (/scripts) one user may keep, for the same reason as SSH keys.
    max_scripts_per_user: int = 100
    # A script's title is a label in a list; its content goes into the guest's cloud-init
    # user-data, which clouds cap small (EC2: 16 KiB; a longer script belongs in an image or a
    # download), and comes in a JSON body of at most max_metadata_body: half of that leaves room
    # for the escaping; its env lines are a few variables.
    max_script_title: int = 255
    max_script_content: int = 32 * KiB
    max_script_env: int = 16 * KiB
    # ECS actions (create, delete, power) running at once: a create images a drive and starts a
    # guest, so a few at once keep the host responsive; the others wait their turn, queued.
    max_ecs_actions: int = 8
    # Seconds between looks at a create's image job (its progress moves the action's).
    ecs_poll_seconds: float = 0.2
    # Seconds a create waits for a guest's customization script to print its END marker: a guest
    # that never does (no cloud-init, a hung script) must not hold the action forever.
    ecs_customize_timeout_seconds: float = 1800
    # Servers one create may be isolated from: more would leave no host in any real region.
    max_isolate_from: int = 64
    # Characters of a server's root password (ECS `password`): any generated passphrase fits in
    # 128; longer is a paste mistake. It is hashed at the request and never kept in clear.
    max_guest_password: int = 128
    # UTF-8 bytes of an inline cloud script (ECS `user_customize` as text): EC2's user-data limit,
    # well inside one metadata body (max_metadata_body) even JSON-escaped; bigger work belongs in
    # a file the script fetches.
    max_inline_script_bytes: int = 16 * KiB
    # Snapshots one ECS server may keep: each pins the clusters it shares with the drive, so the
    # drive's file grows toward size x (snapshots + 1) as the guest rewrites its disk; Seeweb's
    # panel offers a handful per server, and 8 bounds a 20 GB plan's file to a few hundred GB.
    max_snapshots_per_server: int = 8
    # Templates one user may keep: each is a full copy of a boot drive's data (sparse) in the
    # pool, so the cap bounds what one account can store outside its drive quota.
    max_templates_per_user: int = 10
    # Support plans and reserved terms (months, discount %) servers may take: records a billing
    # system reads, no payment taken. Default: Seeweb's basic and global, and 3/6/12/24 months, free.
    support_plans: tuple[SupportPlan, ...] = DEFAULT_SUPPORT_PLANS
    reserved_plans: tuple[ReservedTerm, ...] = DEFAULT_RESERVED_TERMS
    # Seconds an audit entry is kept (0: forever): 90 days covers a quarterly review and most
    # incident look-backs, and bounds the table (an entry is ~150 bytes); older ones are pruned.
    audit_retention: int = 90 * 86400
    # Audit entries written in one transaction: a burst of calls shares one commit (one disk sync).
    audit_batch: int = 500
    # Audit entries waiting in memory at most (~300 bytes each, so 30 MiB): past it, with the store
    # stalled, entries are dropped and logged rather than holding calls or memory.
    audit_queue: int = 100_000
    # Seconds the first entry of a group waits for others before the group is written: short
    # enough that the trail is current, long enough that a burst shares a commit.
    audit_flush_seconds: float = 0.25

    def __post_init__(self) -> None:
        # Absolute from the start: every path built from these is handed to libvirt, QEMU and
        # qemu-img, which resolve a relative one in their own working directory, not ours.
        object.__setattr__(self, "data_dir", Path(os.path.abspath(self.data_dir)))
        if self.master_key_file:
            object.__setattr__(self, "master_key_file", os.path.abspath(self.master_key_file))

    @property
    def db_path(self) -> Path:
        return self.data_dir / "elastic.db"

    @property
    def master_key_path(self) -> Path:
        return Path(self.master_key_file) if self.master_key_file else self.data_dir / "master.key"

    @property
    def token_key_path(self) -> Path:
        """The key that signs login tokens, made on first use beside the master key (kept and
        backed up the same way; losing it only ends the login sessions)."""
        return self.master_key_path.parent / "token.key"

    @property
    def pool_dir(self) -> Path:
        return self.data_dir / "pool"

    @property
    def seed_dir(self) -> Path:
        """The servers' cloud-init seeds (storage/seed.py): beside the pool, reached as it is."""
        return self.data_dir / "seeds"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def listen_host_port(self) -> tuple[str, int]:
        return parse_listen(self.listen)


def _hosts(value: Any) -> tuple[HostConfig, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("hosts must be a non-empty list of {name, uri}")
    hosts = []
    for item in value:
        if not isinstance(item, dict) or "uri" not in item:
            raise ConfigError(f"each host needs a uri: {item!r}")
        unknown = set(item) - {"name", "uri", "mem_mb", "region", "zone"}
        if unknown:
            raise ConfigError(f"unknown host key: {sorted(unknown)[0]}")
        hosts.append(
            HostConfig(
                str(item.get("name", item["uri"])),
                str(item["uri"]),
                int(item.get("mem_mb", 0)),
                str(item.get("region", "")),
                str(item.get("zone", "")),
            )
        )
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        raise ConfigError("host names must be unique")
    return tuple(hosts)


def _quotas(value: Any) -> Quota:
    """The `quotas:` mapping: the keys it names replace the built-in defaults."""
    if not isinstance(value, dict):
        raise ConfigError("quotas must be a mapping of limits, e.g. {drive_bytes: 1T, servers: 10}")
    try:
        return DEFAULT_QUOTA.with_overrides(parse_mapping(value))
    except UsageError as e:
        raise ConfigError(f"quotas: {e.message}") from None


def from_mapping(data: dict[str, Any]) -> Config:
    """Build a Config from parsed YAML; unknown keys are an error so typos never pass silently."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"unknown config key: {sorted(unknown)[0]}")
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key == "hosts":
            values[key] = _hosts(raw)
        elif key == "ip_pool":
            values[key] = parse_ip_pool(raw)
        elif key == "data_dir":
            values[key] = Path(str(raw))
        elif key == "quotas":
            values[key] = _quotas(raw)
        elif key == "regions":
            values[key] = parse_regions(raw)
        elif key == "plans":
            values[key] = parse_plans(raw)
        elif key == "support_plans":
            values[key] = parse_support_plans(raw)
        elif key == "reserved_plans":
            values[key] = parse_reserved_terms(raw)
        else:
            default = fields[key].default
            if isinstance(default, bool) or not isinstance(default, (int, str)):
                values[key] = raw
            elif isinstance(default, int):
                if isinstance(raw, bool) or not isinstance(raw, int):
                    raise ConfigError(f"{key} must be an integer")
                values[key] = raw
            else:
                values[key] = str(raw)
    config = Config(**values)
    check(config)
    return config


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """The --config file, else $ELASTIC_API_CONFIG, else the built-in defaults."""
    chosen = path or os.environ.get("ELASTIC_API_CONFIG")
    if not chosen:
        return Config()
    try:
        with open(chosen, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise ConfigError(f"cannot read config {chosen}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config {chosen} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {chosen} must be a mapping of keys")
    return from_mapping(data)


def replace(config: Config, **changes: Any) -> Config:
    return dataclasses.replace(config, **changes)


__all__ = ["Config", "HostConfig", "IpPool", "check_ip_pool", "from_mapping", "load", "parse_listen", "replace"]
