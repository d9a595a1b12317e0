"""Typed configuration: YAML file, then $ELASTIC_API_CONFIG, then built-in defaults."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from elastic_api.errors import ConfigError

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


@dataclass(frozen=True)
class Config:
    listen: str = "127.0.0.1:8080"
    data_dir: Path = Path("./var")
    hosts: tuple[HostConfig, ...] = (HostConfig("local", "qemu:///system"),)

    # Volume format of a drive created without a `format` key.
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

    # Limits. Each says why its default is what it is.
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
    # Image jobs copying at once: each is disk- and CPU-bound (gzip), two cores serve two well.
    max_image_jobs: int = 2

    @property
    def db_path(self) -> Path:
        return self.data_dir / "elastic.db"

    @property
    def master_key_path(self) -> Path:
        return Path(self.master_key_file) if self.master_key_file else self.data_dir / "master.key"

    @property
    def pool_dir(self) -> Path:
        return self.data_dir / "pool"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def listen_host_port(self) -> tuple[str, int]:
        return parse_listen(self.listen)


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"listen must be HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def _hosts(value: Any) -> tuple[HostConfig, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("hosts must be a non-empty list of {name, uri}")
    hosts = []
    for item in value:
        if not isinstance(item, dict) or "uri" not in item:
            raise ConfigError(f"each host needs a uri: {item!r}")
        unknown = set(item) - {"name", "uri", "mem_mb"}
        if unknown:
            raise ConfigError(f"unknown host key: {sorted(unknown)[0]}")
        hosts.append(
            HostConfig(str(item.get("name", item["uri"])), str(item["uri"]), int(item.get("mem_mb", 0)))
        )
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        raise ConfigError("host names must be unique")
    return tuple(hosts)


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
        elif key == "data_dir":
            values[key] = Path(str(raw))
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
    parse_listen(config.listen)
    if config.default_format not in ("raw", "qcow2"):
        raise ConfigError("default_format must be raw or qcow2")
    if config.default_cipher not in ("none", "aes-xts-plain"):
        raise ConfigError("default_cipher must be aes-xts-plain or none")
    if config.domain_type not in ("auto", "kvm", "qemu"):
        raise ConfigError("domain_type must be auto, kvm or qemu")
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


__all__ = ["Config", "HostConfig", "from_mapping", "load", "parse_listen", "replace"]
