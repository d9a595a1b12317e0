"""Domain XML: golden files for many configurations, and the rules behind them.

Regenerate the golden files after an intended change with ELASTIC_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import difflib
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import libvirt
import pytest

from elastic_api.errors import InternalError
from elastic_api.hypervisor.domain import (
    XMLNS,
    DiskSpec,
    DomainSpec,
    cpu_quota,
    domain_name,
    domain_xml,
    installation_of,
    secret_owner,
    secret_xml,
    server_of,
    target_dev,
)
from elastic_api.hypervisor.libvirt.stats import target_device
from elastic_api.api.elastichosts.codec.device import device_name, parse_device
from elastic_api.api.elastichosts.codec.server import parse_config, wire_refusal
from elastic_api.model.device import Device
from elastic_api.model.server import ReadOnlyIdeDisk, SharedQcow2
from tests.hypervisor.conftest import INSTALLATION

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("ELASTIC_UPDATE_GOLDEN") == "1"
SERVER = "5e7e0000-0000-4000-8000-00000000000a"
DRIVES = [f"d{n:07x}-0000-4000-8000-000000000000" for n in range(24)]
SECRETS = [f"5ec0000{n}-0000-4000-8000-000000000000" for n in range(2)]
POOL = "/var/lib/elastic-api/pool"
SEED = "/var/lib/elastic-api/seeds/5e7e0000-0000-4000-8000-00000000000a.iso"
LOG = "/var/lib/elastic-api/logs/5e7e0000-0000-4000-8000-00000000000a.log"


def dev(name: str) -> Device:
    device = parse_device(name)
    assert device is not None
    return device


def spec(props: dict[str, str], formats: dict[str, str] | None = None, **options: Any) -> DomainSpec:
    """A spec for a server with these keys; each attached drive gets a pool file, raw unless said.
    Devices in `formats` and a `disks` option by their ElasticHosts names."""
    config = parse_config({"name": "golden", "cpu": "2000", "mem": "512", **props}, SERVER)
    formats = formats or {}
    disks = {}
    for slot in config.drives:
        fmt = formats.get(device_name(slot.device), "raw")
        disks[slot.device] = DiskSpec(f"{POOL}/{slot.drive}.{fmt}", fmt)
    if "disks" in options:
        disks = {dev(name): disk for name, disk in options.pop("disks").items()}
    return DomainSpec(
        server=SERVER,
        config=config,
        disks=disks,
        serial_log=LOG,
        installation=options.pop("installation", INSTALLATION),
        **options,
    )


CASES: dict[str, DomainSpec] = {
    "minimal": spec({}),
    "ide_all_units": spec(
        {
            "ide:0:0": DRIVES[0],
            "ide:0:1": DRIVES[1],
            "ide:1:0": DRIVES[2],
            "ide:1:0:media": "cdrom",
            "ide:1:1": DRIVES[3],
            "ide:1:1:media": "disk",
        },
        {"ide:0:1": "qcow2"},
    ),
    "scsi_disks_and_cdrom": spec(
        {"scsi:0:0": DRIVES[0], "scsi:0:3": DRIVES[1], "scsi:0:7": DRIVES[2], "scsi:0:7:media": "cdrom"},
        {"scsi:0:3": "qcow2"},
    ),
    "virtio_block": spec({f"block:{n}": DRIVES[n] for n in range(8)}, {"block:1": "qcow2", "block:7": "qcow2"}),
    "every_bus_with_boot_order": spec(
        {
            "ide:0:0": DRIVES[0],
            "ide:1:0": DRIVES[1],
            "ide:1:0:media": "cdrom",
            "scsi:0:1": DRIVES[2],
            "block:2": DRIVES[3],
            "nic:0:model": "virtio",
            "boot": "ide:1:0 block:2 nic:0 scsi:0:1",
        }
    ),
    "nic_models": spec(
        {
            "nic:0:model": "e1000",
            "nic:0:dhcp": "auto",
            "nic:1:model": "rtl8139",
            "nic:2:model": "virtio",
            "nic:2:vlan": "0ddba11a-0000-4000-8000-000000000000",
            "nic:2:mac": "02:12:34:56:78:9a",
        },
        networks={2: "elastic-vlan-0ddba11a"},
    ),
    "vnc_loopback": spec({"vnc": "auto", "vnc:password": "s3cret"}),
    "vnc_without_password_stays_on_loopback": spec({"vnc": "192.0.2.10"}, vnc_listen="192.0.2.10"),
    "vnc_on_server_ip": spec({"vnc": "192.0.2.10", "vnc:password": "s3cret"}, vnc_listen="192.0.2.10"),
    "vnc_tls_without_host_tls": spec(
        {"vnc": "192.0.2.10", "vnc:password": "pw", "vnc:tls": "on"}, vnc_listen="192.0.2.10"
    ),
    "vnc_tls_with_host_tls": spec(
        {"vnc": "2001:db8::10", "vnc:password": "pw", "vnc:tls": "on"}, vnc_listen="2001:db8::10", host_vnc_tls=True
    ),
    "smp_auto_from_cpu": spec({"cpu": "5000"}, host_core_mhz=2000),
    "smp_fixed": spec({"cpu": "1500", "smp": "4"}, host_core_mhz=3000),
    "cpu_quota_floor": spec({"cpu": "100", "smp": "64"}, host_core_mhz=4000),
    "tcg": spec({"ide:0:0": DRIVES[0]}, domain_type="qemu"),
    "kvm_host_passthrough": spec({"block:0": DRIVES[0]}, cpu_mode="host-passthrough"),
    "readonly_and_shared": spec(
        {"scsi:0:0": DRIVES[0], "block:0": DRIVES[1], "ide:0:0": DRIVES[2], "ide:0:0:media": "cdrom"},
        disks={
            "scsi:0:0": DiskSpec(f"{POOL}/{DRIVES[0]}.raw", "raw", readonly=True),
            "block:0": DiskSpec(f"{POOL}/{DRIVES[1]}.raw", "raw", shareable=True),
            "ide:0:0": DiskSpec(f"{POOL}/{DRIVES[2]}.raw", "raw", readonly=True),
        },
    ),
    # LUKS: a raw drive is a .luks file (no discard: holes would decrypt to noise); a qcow2 drive
    # keeps its format with LUKS inside, and keeps discard.
    "encrypted_raw": spec(
        {"block:0": DRIVES[0], "ide:0:0": DRIVES[1], "ide:0:0:media": "cdrom"},
        disks={
            "block:0": DiskSpec(f"{POOL}/{DRIVES[0]}.luks", "raw", secret=SECRETS[0]),
            "ide:0:0": DiskSpec(f"{POOL}/{DRIVES[1]}.luks", "raw", readonly=True, secret=SECRETS[1]),
        },
    ),
    "encrypted_qcow2": spec(
        {"scsi:0:0": DRIVES[0], "block:0": DRIVES[1]},
        disks={
            "scsi:0:0": DiskSpec(f"{POOL}/{DRIVES[0]}.qcow2", "qcow2", secret=SECRETS[0]),
            "block:0": DiskSpec(f"{POOL}/{DRIVES[1]}.raw", "raw"),
        },
    ),
    "hostile_name": spec({"name": "</title><devices><disk type='block'> & \"quotes\" 'n' ünïcødé"}),
    # The cloud-init seed: a read-only SATA cdrom, never booted, beside every IDE and SCSI unit.
    "seed_cdrom": spec({"block:0": DRIVES[0], "nic:0:model": "virtio"}, seed=SEED),
    "seed_beside_every_ide_and_scsi_unit": spec(
        {
            **{f"ide:{c}:{u}": DRIVES[2 * c + u] for c in range(2) for u in range(2)},
            **{f"scsi:0:{u}": DRIVES[4 + u] for u in range(8)},
        },
        seed=SEED,
    ),
    "persistent_with_tags_and_user_keys": spec(
        {"persistent": "true", "tags": "a b", "user:owner": "<x>", "avoid:servers": SERVER}
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    xml = domain_xml(CASES[name])
    path = GOLDEN / f"{name}.xml"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(xml)
    expected = path.read_text()
    if xml != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), xml.splitlines(True), str(path), "built"))
        pytest.fail(f"domain XML differs from {path.name} (ELASTIC_UPDATE_GOLDEN=1 to accept):\n{diff}")


def test_no_stale_golden_files() -> None:
    assert {p.stem for p in GOLDEN.glob("*.xml")} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_xml_is_accepted_by_libvirt_test_driver(name: str) -> None:
    conn = libvirt.open("test:///default")
    try:
        dom = conn.createXML(domain_xml(CASES[name]), 0)
        assert dom.UUIDString() == SERVER and dom.name() == domain_name(SERVER)
        dom.destroy()
    finally:
        conn.close()


@pytest.mark.libvirt
@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_xml_validates_against_real_qemu(name: str, system_libvirt: str) -> None:
    """Define (never start) each domain on the real libvirtd: the schema and QEMU's capabilities
    accept every device, bus and option. The files need not exist for a definition."""
    conn = libvirt.open(system_libvirt)
    dom = None
    try:
        dom = conn.defineXMLFlags(domain_xml(CASES[name]), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        assert dom.UUIDString() == SERVER
    finally:
        if dom is not None:
            dom.undefine()
        conn.close()


# --- the rules, read back from the XML ---------------------------------------------------------


def parsed(domain: DomainSpec) -> ET.Element:
    return ET.fromstring(domain_xml(domain))


def test_identity_and_escaping() -> None:
    hostile = CASES["hostile_name"]
    root = parsed(hostile)
    assert root.findtext("name") == f"elastic-{SERVER}"
    assert root.findtext("uuid") == SERVER
    assert root.findtext("title") == hostile.config.name
    assert root.find("devices/disk") is None


def test_cpu_quota_is_spread_over_vcpus() -> None:
    assert cpu_quota(2000, 2000, 1) == 100_000
    assert cpu_quota(1000, 2000, 1) == 50_000
    assert cpu_quota(3000, 2000, 2) == 75_000
    assert cpu_quota(100, 4000, 64) == 1_000  # the kernel's floor
    root = parsed(CASES["smp_auto_from_cpu"])
    assert root.findtext("vcpu") == "3"  # ceil(5000 / 2000)
    assert root.findtext("cputune/period") == "100000"
    assert root.findtext("cputune/quota") == str(round(100_000 * 5000 / 2000 / 3))
    assert root.find("cpu/topology").get("sockets") == "3"  # type: ignore[union-attr]


def test_boot_order_defaults_to_drives_in_bus_order() -> None:
    root = parsed(spec({"block:0": DRIVES[0], "ide:0:1": DRIVES[1], "scsi:0:0": DRIVES[2]}))
    order = {
        d.find("target").get("dev"): d.find("boot").get("order")  # type: ignore[union-attr]
        for d in root.iterfind("devices/disk")
    }
    assert order == {"hdb": "1", "sda": "2", "vda": "3"}


def test_explicit_boot_order() -> None:
    root = parsed(CASES["every_bus_with_boot_order"])
    devices = root.find("devices")
    assert devices is not None
    orders = {
        e.find("target").get("dev") if e.tag == "disk" else "nic": e.find("boot").get("order")  # type: ignore[union-attr]
        for e in devices
        if e.find("boot") is not None
    }
    assert orders == {"hdc": "1", "vdc": "2", "nic": "3", "sdb": "4"}
    assert root.find("os/boot") is None  # per-device order and <os><boot> cannot be mixed


def test_cdrom_and_formats() -> None:
    root = parsed(CASES["ide_all_units"])
    disks = {d.find("target").get("dev"): d for d in root.iterfind("devices/disk")}  # type: ignore[union-attr]
    assert disks["hdc"].get("device") == "cdrom" and disks["hdc"].find("readonly") is not None
    assert disks["hdb"].find("driver").get("type") == "qcow2"  # type: ignore[union-attr]
    assert disks["hda"].find("driver").get("type") == "raw"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "case, address",
    [
        ("vnc_loopback", "127.0.0.1"),
        ("vnc_without_password_stays_on_loopback", "127.0.0.1"),
        ("vnc_on_server_ip", "192.0.2.10"),
        ("vnc_tls_without_host_tls", "127.0.0.1"),
        ("vnc_tls_with_host_tls", "2001:db8::10"),
    ],
)
def test_vnc_listen_address(case: str, address: str) -> None:
    graphics = parsed(CASES[case]).find("devices/graphics")
    assert graphics is not None and graphics.get("autoport") == "yes"
    assert graphics.find("listen").get("address") == address  # type: ignore[union-attr]
    assert graphics.get("passwd") == (CASES[case].config.vnc_password or "")


def test_no_vnc_no_graphics() -> None:
    assert parsed(CASES["minimal"]).find("devices/graphics") is None


def test_serial_console_and_lifecycle() -> None:
    root = parsed(CASES["minimal"])
    assert root.find("devices/serial/source").get("path") == LOG  # type: ignore[union-attr]
    assert root.find("devices/console/target").get("type") == "serial"  # type: ignore[union-attr]
    assert (root.findtext("on_poweroff"), root.findtext("on_reboot"), root.findtext("on_crash")) == (
        "destroy",
        "restart",
        "destroy",
    )


def test_nic_networks_and_macs() -> None:
    case = CASES["nic_models"]
    interfaces = parsed(case).findall("devices/interface")
    assert [i.find("model").get("type") for i in interfaces] == ["e1000", "rtl8139", "virtio"]  # type: ignore[union-attr]
    assert [i.find("source").get("network") for i in interfaces] == [  # type: ignore[union-attr]
        "elastic-isolated",
        "elastic-isolated",
        "elastic-vlan-0ddba11a",
    ]
    assert [i.find("mac").get("address") for i in interfaces] == [n.mac for n in case.config.nics]  # type: ignore[union-attr]


def test_readonly_drive_cannot_be_an_ide_disk() -> None:
    bad = spec({"ide:0:0": DRIVES[0]}, disks={"ide:0:0": DiskSpec("/p.raw", "raw", readonly=True)})
    with pytest.raises(ReadOnlyIdeDisk) as caught:
        domain_xml(bad)
    assert (caught.value.device, caught.value.drive) == (dev("ide:0:0"), DRIVES[0])
    assert wire_refusal(caught.value).message == (
        f"ide:0:0: drive {DRIVES[0]} can only be attached read-only, which an IDE disk cannot be; "
        "use :media cdrom or a scsi or block device"
    )


def test_only_raw_drives_can_be_shared() -> None:
    bad = spec({"block:0": DRIVES[0]}, disks={"block:0": DiskSpec("/p.qcow2", "qcow2", shareable=True)})
    with pytest.raises(SharedQcow2) as caught:
        domain_xml(bad)
    assert wire_refusal(caught.value).message == (
        f"block:0: drive {DRIVES[0]} is qcow2, which cannot be shared between servers"
    )


@pytest.mark.parametrize(
    "options",
    [
        {"disks": {}},
        {"disks": {"ide:0:0": DiskSpec("/p", "vmdk")}},
        {"disks": {"ide:0:0": DiskSpec("/p", "raw"), "ide:0:1": DiskSpec("/q", "raw")}},
        {"domain_type": "xen"},
        {"cpu_mode": "maximum"},
        {"disks": {"ide:0:0": DiskSpec("/p.luks", "raw", secret="'/><disk")}},
    ],
)
def test_inconsistent_specs_are_internal_errors(options: dict[str, Any]) -> None:
    with pytest.raises(InternalError):
        domain_xml(spec({"ide:0:0": DRIVES[0]}, **options))


def test_encrypted_disks_name_their_secret_inside_the_source() -> None:
    root = parsed(CASES["encrypted_raw"])
    for disk in root.iterfind("devices/disk"):
        secret = disk.find("source/encryption[@format='luks']/secret[@type='passphrase']")
        assert secret is not None and secret.get("uuid") in SECRETS
        assert disk.find("driver[@discard]") is None  # holes under LUKS decrypt to noise
        assert disk.find("encryption") is None  # not the deprecated place beside <source>
    qcow2, plain = parsed(CASES["encrypted_qcow2"]).iterfind("devices/disk")
    assert qcow2.find("driver[@type='qcow2'][@discard='unmap']") is not None
    assert qcow2.find(f"source/encryption/secret[@uuid='{SECRETS[0]}']") is not None
    assert plain.find("source/encryption") is None


def test_secret_xml_is_ephemeral_private_and_names_its_server() -> None:
    root = ET.fromstring(secret_xml(SECRETS[0], SERVER, INSTALLATION))
    assert root.tag == "secret" and root.get("ephemeral") == "yes" and root.get("private") == "yes"
    assert root.findtext("uuid") == SECRETS[0]
    assert secret_owner(root.findtext("description") or "") == (SERVER, INSTALLATION)
    assert root.find("usage") is None  # UUID-only: two servers sharing a drive never clash
    with pytest.raises(InternalError):
        secret_xml(SECRETS[0], SERVER, "")


@pytest.mark.parametrize(
    "description, owner",
    [
        (f"elastic-{SERVER} installation {INSTALLATION}", (SERVER, INSTALLATION)),
        (f"elastic-{SERVER}", (SERVER, None)),  # from before installation IDs: adopted by the database's word
        (f"  elastic-{SERVER}  installation  {INSTALLATION} ", (SERVER, INSTALLATION)),
        (f"elastic-{SERVER} installation", (None, None)),
        (f"elastic-{SERVER} installation not-a-uuid", (None, None)),
        (f"elastic-{SERVER} owner {INSTALLATION}", (None, None)),
        (f"elastic-{SERVER} installation {INSTALLATION} extra", (None, None)),
        ("elastic-not-a-uuid", (None, None)),
        ("someone else's secret", (None, None)),
        ("", (None, None)),
    ],
)
def test_secret_owner(description: str, owner: tuple[str | None, str | None]) -> None:
    assert secret_owner(description) == owner


def test_every_domain_names_its_installation_in_our_namespace() -> None:
    for case in CASES.values():
        root = ET.fromstring(domain_xml(case))
        assert root.find(f"metadata/{{{XMLNS}}}installation").text == INSTALLATION  # type: ignore[union-attr]
        assert installation_of(root) == installation_of(domain_xml(case)) == INSTALLATION
    other = "0e000000-0000-4000-8000-000000000002"
    assert installation_of(domain_xml(spec({}, installation=other))) == other


@pytest.mark.parametrize(
    "xml",
    [
        "<domain><name>elastic-x</name></domain>",  # from before installation IDs
        "<domain><metadata/></domain>",
        "<domain><metadata><installation>abc</installation></metadata></domain>",  # not our namespace
        "<domain><metadata><x:installation xmlns:x='https://elsewhere.example/1'>abc</x:installation></metadata></domain>",
        f"<domain><metadata><e:installation xmlns:e='{XMLNS}'>  </e:installation></metadata></domain>",
    ],
)
def test_no_installation(xml: str) -> None:
    assert installation_of(xml) is None


def test_our_namespace_under_any_prefix() -> None:
    xml = f"<network><metadata><x:installation xmlns:x='{XMLNS}'>{INSTALLATION}</x:installation></metadata></network>"
    assert installation_of(xml) == INSTALLATION


@pytest.mark.parametrize("installation", ["", "not-a-uuid", INSTALLATION.upper()])
def test_a_domain_without_a_valid_installation_is_refused(installation: str) -> None:
    with pytest.raises(InternalError, match="installation"):
        domain_xml(spec({}, installation=installation))


def test_target_names_round_trip() -> None:
    devices = [
        "ide:0:0",
        "ide:0:1",
        "ide:1:0",
        "ide:1:1",
        *(f"scsi:0:{n}" for n in range(8)),
        *(f"block:{n}" for n in range(8)),
    ]
    targets = [target_dev(dev(d)) for d in devices]
    assert targets[:5] == ["hda", "hdb", "hdc", "hdd", "sda"] and targets[-1] == "vdh"
    assert [target_device(t) for t in targets] == [dev(d) for d in devices]


def test_server_of() -> None:
    assert server_of(domain_name(SERVER)) == SERVER
    assert server_of("test") is None
