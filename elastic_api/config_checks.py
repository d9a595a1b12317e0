"""The rules a whole configuration must keep, checked once it is built (config.py): limits in
range, names libvirt accepts, listeners apart, the catalogue's regions placed."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from elastic_api.errors import ConfigError
from elastic_api.model.catalogue import check_plan_regions, placements

if TYPE_CHECKING:
    from elastic_api.config import Config

_NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"listen must be HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def check(config: Config) -> None:
    """Raise ConfigError naming the first key that breaks a rule."""
    parse_listen(config.listen)
    if config.metrics_listen and parse_listen(config.metrics_listen) == parse_listen(config.listen):
        raise ConfigError("metrics_listen must differ from listen: /metrics has a listener of its own")
    if config.default_format not in ("raw", "qcow2"):
        raise ConfigError("default_format must be raw or qcow2")
    if config.default_cipher not in ("none", "aes-xts-plain"):
        raise ConfigError("default_cipher must be aes-xts-plain or none")
    if config.domain_type not in ("auto", "kvm", "qemu"):
        raise ConfigError("domain_type must be auto, kvm or qemu")
    for key in (
        "max_uploads_per_user",
        "max_uploads",
        "header_timeout",
        "body_timeout",
        "luks_lanes",
        "gc_threshold",
        "auth_cache_users",
        "body_rate_grace",
        "max_ssh_keys_per_user",
        "sendfile_threads",
        "max_groups_per_user",
        "max_scripts_per_user",
        "max_script_title",
        "max_script_content",
        "max_script_env",
        "max_ecs_actions",
        "max_isolate_from",
        "max_guest_password",
        "max_inline_script_bytes",
        "max_snapshots_per_server",
        "max_templates_per_user",
    ):
        if getattr(config, key) < 1:
            raise ConfigError(f"{key} must be at least 1")
    if config.max_script_content > config.max_metadata_body:
        raise ConfigError("max_script_content must be at most max_metadata_body: a script comes in such a body")
    if not 0 < config.ecs_poll_seconds <= 10:
        raise ConfigError("ecs_poll_seconds must be more than 0 and at most 10")
    if not 0 < config.ecs_customize_timeout_seconds <= 86400:
        raise ConfigError("ecs_customize_timeout_seconds must be more than 0 and at most 86400")
    for key in (
        "auth_cache_seconds",
        "min_body_rate",
        "shutdown_grace",
        "db_reserve",
        "io_counter_flush_seconds",
        "db_inline_read_rows",
        "db_cached_rows",
        "sendfile_stall_seconds",
    ):
        if getattr(config, key) < 0:
            raise ConfigError(f"{key} must be 0 or more")
    for key in ("max_image_jobs", "job_lease_seconds", "job_heartbeat_seconds", "job_progress_seconds"):
        if getattr(config, key) < 1:
            raise ConfigError(f"{key} must be at least 1")
    if config.job_heartbeat_seconds * 2 > config.job_lease_seconds:
        raise ConfigError(
            "job_heartbeat_seconds must be at most half of job_lease_seconds: a lease must outlast a missed beat"
        )
    placements([(h.name, h.region, h.zone) for h in config.hosts], config.regions)
    check_plan_regions(config.plans, config.regions)
    if config.login_token_seconds < 60:
        raise ConfigError("login_token_seconds must be at least 60")
    if not 1 <= config.metrics_interval <= config.metrics_retention:
        raise ConfigError(
            "metrics_interval must be at least 1 and at most metrics_retention: a rate needs two samples kept"
        )
    check_audit(config)
    if config.storage_timeout < 1:
        raise ConfigError("storage_timeout must be at least 1")
    if len(config.node_name) > 64 or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in config.node_name):
        raise ConfigError("node_name must be at most 64 letters, digits, '-', '_' or '.'")
    if config.database_pool_size < 1 or config.quota_hold_seconds < 60:
        raise ConfigError("database_pool_size must be at least 1, quota_hold_seconds at least 60")
    interval = config.host_reconnect_interval
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 < interval <= 3600:
        raise ConfigError("host_reconnect_interval must be a number of seconds above 0 and at most 3600")
    for key in ("public_network", "vlan_network_prefix"):
        if not _NETWORK_NAME.match(getattr(config, key)):
            raise ConfigError(f"{key} must be 1 to 64 letters, digits, '_', '.' or '-'")
    if config.public_network.startswith(config.vlan_network_prefix):
        raise ConfigError("public_network must not start with vlan_network_prefix: start-up would remove it")


def check_audit(config: Config) -> None:
    if config.audit_retention != 0 and config.audit_retention < 60:
        raise ConfigError("audit_retention must be 0 (keep every entry) or at least 60 seconds")
    for key in ("audit_batch", "audit_queue"):
        if getattr(config, key) < 1:
            raise ConfigError(f"{key} must be at least 1")
    wait = config.audit_flush_seconds
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= 60:
        raise ConfigError("audit_flush_seconds must be a number of seconds from 0 to 60")
