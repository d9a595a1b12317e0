"""Libvirt domain XML for a server, built by pure functions from its configuration."""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field

from elastic_api.errors import InternalError
from elastic_api.model.device import Device
from elastic_api.model.ids import is_id
from elastic_api.model.server import Boot, ReadOnlyIdeDisk, ServerConfig, SharedQcow2, mac_of, vcpu_count

# Every domain we run is named so; anything else on a host is not ours and is left alone. A name
# alone does not make a domain ours: another installation on the same libvirtd names its own so.
DOMAIN_PREFIX = "elastic-"
# Our XML namespace in libvirt <metadata> (domains, networks): it holds the installation ID that
# says which installation made the object. A constant: changing it would disown every object.
XMLNS = "https://elastic-api.example/xmlns/1"
XMLNS_PREFIX = "elastic"
INSTALLATION_TAG = f"{{{XMLNS}}}installation"
# A secret's description: `elastic-<server> installation <ID>` (secrets have no <metadata>).
SECRET_INSTALLATION_WORD = "installation"
# The CFS period libvirt applies quotas against: 100 ms is the kernel's default period.
CPU_PERIOD_US = 100_000
# The kernel refuses CFS quotas under 1 ms.
CPU_QUOTA_MIN_US = 1_000
# Where a VNC display listens unless it may use the server's own `vnc` address.
LOOPBACK = "127.0.0.1"
# The libvirt network a NIC joins when the spec names none for it: isolated, no forwarding.
DEFAULT_NETWORK = "elastic-isolated"
DOMAIN_TYPES = ("kvm", "qemu")
CPU_MODES = ("host-model", "host-passthrough")
VOLUME_FORMATS = ("raw", "qcow2")
# The cloud-init seed's cdrom: on SATA, which both `pc` (libvirt adds an AHCI controller) and
# `q35` take, and where none of our drive positions (IDE, SCSI, virtio) is. Named `sdz` so no
# SCSI drive's `sdX` clashes with it (SCSI has eight units: sda to sdh); the address is explicit.
SEED_TARGET = "sdz"


@dataclass(frozen=True)
class DiskSpec:
    """The volume behind one attached drive. Its media (disk or cdrom) comes from the config."""

    path: str
    format: str  # "raw" or "qcow2": always given to QEMU, never probed from the file's bytes
    readonly: bool = False  # a drive attached by one of its readers: the guest may not write it
    shareable: bool = False  # claim:type shared: several guests may have it open at once
    # An encrypted (LUKS) volume: the UUID of the libvirt secret holding its passphrase.
    secret: str | None = None


@dataclass(frozen=True)
class DomainSpec:
    """Everything a server's domain XML depends on besides its configuration: where its drives
    live, which host features and addresses it gets. The service fills it for one start."""

    server: str
    config: ServerConfig
    disks: Mapping[Device, DiskSpec]  # where the guest sees a drive → its volume
    serial_log: str
    domain_type: str = "kvm"
    host_core_mhz: int = 2000
    # The address the server's VNC display may listen on (its `vnc` IP, once the service has
    # checked the user may use it); None or the wrong conditions mean loopback.
    vnc_listen: str | None = None
    # Whether this host's qemu.conf sets vnc_tls = 1: libvirt has no per-domain VNC TLS switch.
    host_vnc_tls: bool = False
    networks: Mapping[int, str] = field(default_factory=dict)  # NIC index → libvirt network
    # None: QEMU's default CPU model, which starts everywhere. `host-model` or `host-passthrough`
    # give guests the host's features (guests never migrate, a stopped server restarts anywhere),
    # but nested or unusual hosts refuse them (QEMU cannot set some MSRs), so it is opt-in.
    cpu_mode: str | None = None
    default_network: str = DEFAULT_NETWORK
    # The installation starting the domain (see elastic_api.installation): written into its
    # <metadata>, it is what makes the domain this installation's and no other's.
    installation: str = ""
    # The server's cloud-init NoCloud seed (storage/seed.py), attached as a read-only cdrom
    # (SEED_TARGET) that is never booted from; None: no seed.
    seed: str | None = None


def domain_name(server: str) -> str:
    return DOMAIN_PREFIX + server


def server_of(domain_name: str) -> str | None:
    """The server UUID of one of our domains, or None for a domain that is not ours."""
    return domain_name[len(DOMAIN_PREFIX) :] if domain_name.startswith(DOMAIN_PREFIX) else None


def metadata_element(installation: str) -> ET.Element:
    """<metadata> holding our installation element: for domains and networks alike."""
    ET.register_namespace(XMLNS_PREFIX, XMLNS)
    metadata = ET.Element("metadata")
    ET.SubElement(metadata, INSTALLATION_TAG).text = installation
    return metadata


def installation_of(xml: str | ET.Element) -> str | None:
    """The installation ID in a domain's or network's <metadata>, or None when it has none (made
    by no installation, or by one from before installation IDs)."""
    root = ET.fromstring(xml) if isinstance(xml, str) else xml
    text = root.findtext(f"metadata/{INSTALLATION_TAG}")
    return text.strip() if text is not None and text.strip() else None


def secret_description(server: str, installation: str) -> str:
    return f"{domain_name(server)} {SECRET_INSTALLATION_WORD} {installation}"


def secret_owner(description: str) -> tuple[str | None, str | None]:
    """(server UUID, installation ID) of a secret by its description: (None, None) for a secret
    that is not one of ours at all; (server, None) for one from before installation IDs."""
    words = description.split()
    if not words:
        return None, None
    server = server_of(words[0])
    if server is None or not is_id(server):
        return None, None
    if len(words) == 1:
        return server, None
    if len(words) == 3 and words[1] == SECRET_INSTALLATION_WORD and is_id(words[2]):
        return server, words[2]
    return None, None


def cpu_quota(cpu_mhz: int, host_core_mhz: int, vcpus: int) -> int:
    """The per-vCPU CFS quota (µs per CPU_PERIOD_US) that gives a server `cpu` core MHz in all:
    the server's share of one host core, spread evenly over its vCPUs."""
    total = CPU_PERIOD_US * cpu_mhz / max(1, host_core_mhz)
    return max(CPU_QUOTA_MIN_US, round(total / max(1, vcpus)))


# The guest-side name prefix libvirt gives each bus's disks; the letter is the device's index.
_TARGET_PREFIX = {"ide": "hd", "scsi": "sd", "virtio": "vd"}


def target_dev(device: Device) -> str:
    """The guest-side name libvirt gives a drive device: IDE → hdX, SCSI → sdX, virtio → vdX,
    X the device's index on its bus (IDE channel 1 unit 0 is hdc)."""
    return _TARGET_PREFIX[device.bus] + chr(ord("a") + device.index)


def _named(device: Device) -> str:
    """A device in log and internal error text."""
    return f"{device.bus} {device.controller}:{device.unit}"


def vnc_address(spec: DomainSpec) -> str:
    """Where the VNC display listens. Off loopback only when the service gave an address and the
    display is protected: with a password, and, if the user asked for TLS, on a host that has it."""
    config = spec.config
    if spec.vnc_listen is None or not config.vnc_password:
        return LOOPBACK
    if config.vnc_tls and not spec.host_vnc_tls:
        # The user asked for encryption this host cannot give: reachable through a tunnel only.
        return LOOPBACK
    try:
        return str(ipaddress.ip_address(spec.vnc_listen))
    except ValueError:
        raise InternalError(f"VNC listen address is not an IP: {spec.vnc_listen!r}") from None


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _boot_order(spec: DomainSpec) -> dict[Boot, int]:
    """Device → boot order. Without a `boot` key, every drive in bus order, so firmware never has
    to guess."""
    devices: tuple[Boot, ...] = spec.config.boot or tuple(slot.device for slot in spec.config.drives)
    return {device: n for n, device in enumerate(devices, 1)}


def _check(spec: DomainSpec) -> None:
    if not is_id(spec.installation):
        raise InternalError(f"a domain needs its installation's ID, not {spec.installation!r}")
    if spec.domain_type not in DOMAIN_TYPES:
        raise InternalError(f"domain type must be kvm or qemu, not {spec.domain_type!r}")
    if spec.cpu_mode is not None and spec.cpu_mode not in CPU_MODES:
        raise InternalError(f"CPU mode must be host-model or host-passthrough, not {spec.cpu_mode!r}")
    for slot in spec.config.drives:
        disk = spec.disks.get(slot.device)
        if disk is None:
            raise InternalError(f"no volume given for {_named(slot.device)}")
        if disk.format not in VOLUME_FORMATS:
            raise InternalError(f"{_named(slot.device)}: volume format must be raw or qcow2, not {disk.format!r}")
        if disk.secret is not None and not is_id(disk.secret):
            raise InternalError(f"{_named(slot.device)}: a libvirt secret is named by a UUID, not {disk.secret!r}")
        if disk.readonly and slot.media == "disk" and slot.device.bus == "ide":
            raise ReadOnlyIdeDisk(slot.device, slot.drive)
        if disk.shareable and disk.format != "raw":
            raise SharedQcow2(slot.device, slot.drive)
    extra = set(spec.disks) - {slot.device for slot in spec.config.drives}
    if extra:
        raise InternalError(f"volume given for unconfigured device {_named(min(extra, key=lambda d: d.order))}")


def _disk(devices: ET.Element, spec: DomainSpec, device: Device, boot: Mapping[Boot, int]) -> None:
    slot = spec.config.drive_on(device)
    volume = spec.disks[device]
    assert slot is not None
    cdrom = slot.media == "cdrom"
    disk = _sub(devices, "disk", type="file", device="cdrom" if cdrom else "disk")
    driver = {"name": "qemu", "type": volume.format}
    luks_raw = volume.secret is not None and volume.format == "raw"
    if not (cdrom or volume.readonly or luks_raw):
        # Guest TRIM punches holes in the volume, keeping the pool as sparse as the guest's data.
        # Not under raw LUKS, where a hole decrypts to noise (and would show which blocks are used).
        driver["discard"] = "unmap"
    _sub(disk, "driver", **driver)
    source = _sub(disk, "source", file=volume.path)
    if volume.secret is not None:
        # Inside <source>: where libvirt expects the encryption of a raw LUKS or a qcow2 image.
        encryption = _sub(source, "encryption", format="luks")
        _sub(encryption, "secret", type="passphrase", uuid=volume.secret)
    bus = device.bus
    _sub(disk, "target", dev=target_dev(device), bus=bus)
    if cdrom or volume.readonly:
        _sub(disk, "readonly")
    if volume.shareable:
        _sub(disk, "shareable")
    if device in boot:
        _sub(disk, "boot", order=str(boot[device]))
    if bus == "ide":
        _sub(
            disk, "address", type="drive", controller="0", bus=str(device.controller), target="0", unit=str(device.unit)
        )
    elif bus == "scsi":
        _sub(disk, "address", type="drive", controller="0", bus="0", target="0", unit=str(device.unit))


def _seed(devices: ET.Element, path: str) -> None:
    disk = _sub(devices, "disk", type="file", device="cdrom")
    _sub(disk, "driver", name="qemu", type="raw")
    _sub(disk, "source", file=path)
    _sub(disk, "target", dev=SEED_TARGET, bus="sata")
    _sub(disk, "readonly")
    _sub(disk, "address", type="drive", controller="0", bus="0", target="0", unit="0")


def secret_xml(uuid: str, server: str, installation: str) -> str:
    """A libvirt secret for one encrypted drive of one run of a server: ephemeral (never written to
    disk) and private (libvirt never hands its value back), described by the domain's name and
    the installation's ID (see secret_owner) so that the server's secrets can be found and
    removed when it stops, by this installation only."""
    if not is_id(installation):
        raise InternalError(f"a secret needs its installation's ID, not {installation!r}")
    secret = ET.Element("secret", ephemeral="yes", private="yes")
    _sub(secret, "uuid", uuid)
    _sub(secret, "description", secret_description(server, installation))
    return ET.tostring(secret, encoding="unicode")


def domain_xml(spec: DomainSpec) -> str:
    """The transient domain for one run of a server: its UUID is the server's, its name
    `elastic-<uuid>`, its <metadata> names the installation that runs it, and the user's name
    only ever appears escaped, as the title."""
    _check(spec)
    config = spec.config
    vcpus = vcpu_count(config, spec.host_core_mhz)
    boot = _boot_order(spec)

    domain = ET.Element("domain", type=spec.domain_type)
    _sub(domain, "name", domain_name(spec.server))
    _sub(domain, "uuid", spec.server)
    _sub(domain, "title", config.name)
    domain.append(metadata_element(spec.installation))
    _sub(domain, "memory", str(config.mem), unit="MiB")
    _sub(domain, "vcpu", str(vcpus), placement="static")
    cputune = _sub(domain, "cputune")
    _sub(cputune, "period", str(CPU_PERIOD_US))
    _sub(cputune, "quota", str(cpu_quota(config.cpu, spec.host_core_mhz, vcpus)))

    os_ = _sub(domain, "os")
    # `pc` (i440fx), not q35: q35 has no IDE bus, and IDE devices are part of what guests are offered.
    _sub(os_, "type", "hvm", arch="x86_64", machine="pc")
    features = _sub(domain, "features")
    _sub(features, "acpi")  # `shutdown` is an ACPI power-button press
    _sub(features, "apic")
    cpu = _sub(domain, "cpu")
    if spec.cpu_mode is not None and spec.domain_type == "kvm":
        cpu.attrib.update({"mode": spec.cpu_mode, "check": "none"})
    # One core per socket: smp:sockets reports the vCPU count and smp:cores 1, as on ElasticHosts.
    _sub(cpu, "topology", sockets=str(vcpus), dies="1", cores="1", threads="1")
    _sub(domain, "clock", offset="utc")
    # A run ends when the guest powers off or crashes: the domain goes, and the service decides
    # (persistent → stopped, else destroyed). A reboot stays within the run.
    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_reboot", "restart")
    _sub(domain, "on_crash", "destroy")
    pm = _sub(domain, "pm")
    _sub(pm, "suspend-to-mem", enabled="no")
    _sub(pm, "suspend-to-disk", enabled="no")

    devices = _sub(domain, "devices")
    if any(slot.device.bus == "scsi" for slot in config.drives):
        _sub(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    for slot in config.drives:
        _disk(devices, spec, slot.device, boot)
    if spec.seed is not None:
        _seed(devices, spec.seed)
    for nic in config.nics:
        interface = _sub(devices, "interface", type="network")
        _sub(interface, "mac", address=mac_of(spec.server, nic))
        _sub(interface, "source", network=spec.networks.get(nic.index, spec.default_network))
        _sub(interface, "model", type=nic.model)
        if nic.index in boot:
            _sub(interface, "boot", order=str(boot[nic.index]))

    serial = _sub(devices, "serial", type="file")
    # virtlogd writes file-backed consoles (stdio_handler = "logd", the default) and rotates them,
    # so a chatty guest cannot fill the disk; append keeps earlier runs' output.
    _sub(serial, "source", path=spec.serial_log, append="on")
    _sub(serial, "target", type="isa-serial", port="0")
    console = _sub(devices, "console", type="file")
    _sub(console, "source", path=spec.serial_log, append="on")
    _sub(console, "target", type="serial", port="0")

    if config.vnc is not None:
        _sub(devices, "input", type="tablet", bus="usb")  # absolute pointer: the VNC cursor tracks
        address = vnc_address(spec)
        # passwd is always set: QEMU can only change a VNC password later (a live `set`) when
        # password authentication was on from the start. An empty one is only ever on loopback.
        graphics = _sub(devices, "graphics", type="vnc", autoport="yes", passwd=config.vnc_password or "")
        _sub(graphics, "listen", type="address", address=address)
        video = _sub(devices, "video")
        _sub(video, "model", type="vga")
    # Memory is fixed at `mem` MB: no balloon the guest could be asked to give memory back through.
    _sub(devices, "memballoon", model="none")

    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode") + "\n"


__all__ = [
    "CPU_PERIOD_US",
    "DEFAULT_NETWORK",
    "DOMAIN_PREFIX",
    "LOOPBACK",
    "SEED_TARGET",
    "XMLNS",
    "DiskSpec",
    "DomainSpec",
    "cpu_quota",
    "domain_name",
    "domain_xml",
    "installation_of",
    "metadata_element",
    "secret_description",
    "secret_owner",
    "secret_xml",
    "server_of",
    "target_dev",
    "vnc_address",
]
