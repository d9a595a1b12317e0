"""The ip_pool and network-name configuration: defaults that work, mistakes named at load."""

from __future__ import annotations

import pytest

from elastic_api.config import Config, IpPool, check_ip_pool, load
from elastic_api.errors import ConfigError


def test_defaults_are_a_valid_pool():
    config = Config()
    check_ip_pool(config.ip_pool)
    assert config.ip_pool.netmask == "255.255.255.0"
    assert (config.ip_pool.first, config.ip_pool.last) == ("198.51.100.10", "198.51.100.254")
    assert config.public_network == "elastic-public" and config.vlan_network_prefix == "elastic-vlan-"


def test_yaml_pool(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "ip_pool:\n  network: 10.20.0.0/16\n  gateway: 10.20.0.1\n  nameserver: 9.9.9.9\n"
        "  range: 10.20.1.0 - 10.20.255.254\npublic_network: pub\nvlan_network_prefix: v-\n"
    )
    config = load(path)
    assert config.ip_pool == IpPool("10.20.0.0/16", "10.20.0.1", "9.9.9.9", "10.20.1.0 - 10.20.255.254")
    assert (config.ip_pool.netmask, config.ip_pool.first, config.ip_pool.last) == (
        "255.255.0.0",
        "10.20.1.0",
        "10.20.255.254",
    )
    assert (config.public_network, config.vlan_network_prefix) == ("pub", "v-")


@pytest.mark.parametrize(
    "text, word",
    [
        ("ip_pool: 10.0.0.0/8\n", "mapping"),
        ("ip_pool: {netmask: 255.0.0.0}\n", "unknown ip_pool key: netmask"),
        ("ip_pool: {network: 10.0.0.1/24, gateway: 10.0.0.1, range: 10.0.0.2-10.0.0.9}\n", "IPv4 network"),
        (
            "ip_pool: {network: '2001:db8::/64', gateway: '2001:db8::1', range: '2001:db8::2-2001:db8::9'}\n",
            "IPv4 network",
        ),
        ("ip_pool: {network: 10.0.0.0/31, gateway: 10.0.0.1, range: 10.0.0.0-10.0.0.1}\n", "/30"),
        ("ip_pool: {network: 10.0.0.0/24, gateway: 10.0.1.1, range: 10.0.0.2-10.0.0.9}\n", "gateway"),
        ("ip_pool: {network: 10.0.0.0/24, gateway: 10.0.0.0, range: 10.0.0.2-10.0.0.9}\n", "gateway"),
        ("ip_pool: {network: 10.0.0.0/24, gateway: nope, range: 10.0.0.2-10.0.0.9}\n", "gateway"),
        ("ip_pool: {network: 10.0.0.0/24, gateway: 10.0.0.1, nameserver: x, range: 10.0.0.2-10.0.0.9}\n", "nameserver"),
        ("ip_pool: {network: 10.0.0.0/24, gateway: 10.0.0.1, range: 10.0.0.2}\n", "FIRST-LAST"),
        ("ip_pool: {network: 10.0.0.0/24, gateway: 10.0.0.1, range: 10.0.0.9-10.0.0.2}\n", "starts after"),
        ("ip_pool: {network: 10.0.0.0/24, gateway: 10.0.0.1, range: 10.0.0.2-10.0.1.9}\n", "inside"),
        ("ip_pool: {network: 10.0.0.0/24, gateway: 10.0.0.1, range: 10.0.0.2-10.0.0.255}\n", "inside"),
        ("ip_pool: {network: 10.0.0.0/24, gateway: 10.0.0.1, range: 10.0.0.0-10.0.0.9}\n", "inside"),
        ("ip_pool: {network: 10.0.0.0/24, gateway: 10.0.0.5, range: 10.0.0.2-10.0.0.9}\n", "must not hold the gateway"),
        ("public_network: 'has space'\n", "public_network"),
        ("vlan_network_prefix: ''\n", "vlan_network_prefix"),
        ("vlan_network_prefix: elastic-\n", "must not start with vlan_network_prefix"),
    ],
)
def test_mistakes_are_named(tmp_path, text, word):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=word):
        load(path)
