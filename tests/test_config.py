"""Configuration: the minimal YAML, defaults, $ELASTIC_API_CONFIG and rejected mistakes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from elastic_api.config import Config, HostConfig, load
from elastic_api.errors import ConfigError


def test_builtin_defaults(monkeypatch):
    monkeypatch.delenv("ELASTIC_API_CONFIG", raising=False)
    config = load(None)
    assert config.listen == "127.0.0.1:8080" and config.data_dir == Path.cwd() / "var"
    assert config.hosts == (HostConfig("local", "qemu:///system"),)


def test_relative_paths_become_absolute_where_the_server_starts(tmp_path, monkeypatch):
    # libvirt and the qemu tools resolve a relative path in their own working directory: every
    # path built from the config must already be absolute (a relative serial log answered 500).
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "c.yaml"
    path.write_text("data_dir: ./here/var\nmaster_key_file: keys/master.key\n")
    config = load(str(path))
    monkeypatch.chdir("/")
    assert config.data_dir == tmp_path / "here" / "var"
    assert config.log_dir.is_absolute() and config.log_dir == tmp_path / "here" / "var" / "logs"
    assert config.master_key_path == tmp_path / "keys" / "master.key"
    assert Config(data_dir=Path("rel")).data_dir == Path("/rel")


def test_minimal_yaml_and_environment(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("listen: 127.0.0.1:9999\ndata_dir: /some/dir\nhosts:\n  - name: local\n    uri: test:///default\n")
    monkeypatch.setenv("ELASTIC_API_CONFIG", str(path))
    config = load(None)
    assert config.listen_host_port == ("127.0.0.1", 9999)
    assert config.db_path == Path("/some/dir/elastic.db") and config.pool_dir == Path("/some/dir/pool")
    assert config.hosts[0].uri == "test:///default"
    assert config.max_list_limit == Config().max_list_limit
    assert config.default_cipher == "aes-xts-plain" and config.master_key_path == Path("/some/dir/master.key")


@pytest.mark.parametrize(
    "text, word",
    [
        ("colour: red\n", "colour"),
        ("listen: nowhere\n", "listen"),
        ("hosts: []\n", "hosts"),
        ("hosts:\n  - name: a\n", "uri"),
        ("hosts:\n  - {name: a, uri: 'test:///default'}\n  - {name: a, uri: 'test:///default'}\n", "unique"),
        ("max_read_size: lots\n", "integer"),
        ("default_format: vmdk\n", "default_format"),
        ("domain_type: xen\n", "domain_type"),
        ("default_cipher: rot13\n", "default_cipher"),
        ("- just\n- a list\n", "mapping"),
        ("listen: [unclosed\n", "YAML"),
        ("min_body_rate: -1\n", "min_body_rate"),
        ("body_rate_grace: 0\n", "body_rate_grace"),
        ("shutdown_grace: -1\n", "shutdown_grace"),
    ],
)
def test_mistakes_are_named(tmp_path, text, word):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=word):
        load(path)


def test_the_example_config_lists_every_key_at_its_default():
    example = Path(__file__).resolve().parent.parent / "conf" / "elastic-api.yaml"
    config = load(example)
    written = set(yaml.safe_load(example.read_text()))
    assert written == {f.name for f in dataclasses.fields(Config)}
    assert dataclasses.replace(config, data_dir=Config().data_dir) == Config()


def test_quotas(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("quotas:\n  drive_bytes: 1T\n  servers: unlimited\n  ips: 0\n")
    quotas = load(path).quotas
    assert (quotas.drive_bytes, quotas.servers, quotas.ips) == (1 << 40, None, 0)
    assert quotas.drives == Config().quotas.drives  # keys not named keep their defaults
    for text, word in (
        ("quotas: 5\n", "mapping"),
        ("quotas:\n  disks: 1\n", "unknown quota key"),
        ("quotas:\n  mem: 1G\n", "mem must be a whole number"),
        ("header_timeout: 0\n", "header_timeout"),
        ("luks_lanes: 0\n", "luks_lanes"),
        ("gc_threshold: 0\n", "gc_threshold"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigError, match=word):
            load(path)


def test_zero_turns_the_body_rate_and_the_grace_off(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("min_body_rate: 0\nshutdown_grace: 0\n")
    config = load(path)
    assert (config.min_body_rate, config.shutdown_grace) == (0, 0)
