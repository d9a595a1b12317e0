"""The model's refusals of a server configuration said as the protocol says them: with the wire
keys a client sent (`ide:0:1: drive … is already attached as ide:0:0`)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager

from elastic_api.api.elastichosts.codec.device import device_name
from elastic_api.api.elastichosts.codec.fields import USER_PREFIX
from elastic_api.errors import BusyError, FullError, UsageError
from elastic_api.model import server as model
from elastic_api.model.device import Device
from elastic_api.model.resource import PoolFull
from elastic_api.model.server import Boot
from elastic_api.model.server_patch import Field, LiveChangeRefused

# A configuration field's key, where it has one of its own.
_KEYS = {
    "vnc_password": "vnc:password",
    "vnc_tls": "vnc:tls",
    "avoid_drives": "avoid:drives",
    "avoid_servers": "avoid:servers",
}


def boot_name(entry: Boot) -> str:
    return device_name(entry) if isinstance(entry, Device) else f"nic:{entry}"


def field_key(part: Field) -> str:
    """The wire key of one part of a configuration."""
    if part.name == "drives" and isinstance(part.of, Device):
        return device_name(part.of) + (":media" if part.part == "media" else "")
    if part.name == "nics":
        return f"nic:{part.of}:{part.part}"
    if part.name == "user":
        return f"{USER_PREFIX}{part.of}"
    return _KEYS.get(part.name, part.name)


def wire_refusal(error: model.ConfigRefusal) -> UsageError:
    """A model refusal as the protocol words it."""
    match error:
        case model.DriveTwice(device=device, drive=drive, first=first):
            return UsageError(f"{device_name(device)}: drive {drive} is already attached as {device_name(first)}")
        case model.MediaWithoutDrive(device=device):
            return UsageError(f"{device_name(device)}:media given without {device_name(device)}")
        case model.BadMedia(device=device):
            return UsageError(f"{device_name(device)}:media must be disk or cdrom")
        case model.CdromOnVirtio(device=device):
            return UsageError(
                f"{device_name(device)}:media cannot be cdrom: virtio block devices have no removable media"
            )
        case model.NicWithoutModel(index=index, parts=parts):
            return UsageError(f"nic:{index}:{parts[0]} given without nic:{index}:model")
        case model.BadNicModel(index=index):
            return UsageError(f"nic:{index}:model must be one of {', '.join(model.NIC_MODELS)}")
        case model.BootNotConfigured(entry=entry):
            return UsageError(f"boot: {boot_name(entry)} is not a configured device")
        case model.BootTwice(entry=entry):
            return UsageError(f"boot: {boot_name(entry)} given twice")
        case model.ReadOnlyIdeDisk(device=device, drive=drive):
            return UsageError(
                f"{device_name(device)}: drive {drive} can only be attached read-only, which an IDE "
                "disk cannot be; use :media cdrom or a scsi or block device"
            )
        case model.NicOnTwoNetworks(index=index):
            return UsageError(
                f"nic:{index}:dhcp and nic:{index}:vlan exclude each other: a NIC is on the public network or on a VLAN"
            )
        case model.NicAddressNotIPv4(index=index):
            return UsageError(f"nic:{index}:dhcp must be an IPv4 address or auto")
        case model.AddressOnTwoNics(index=index, address=address, first=first):
            return UsageError(f"nic:{index}:dhcp: {address} is already on nic:{first}")
        case model.SharedQcow2(device=device, drive=drive):
            return UsageError(f"{device_name(device)}: drive {drive} is qcow2, which cannot be shared between servers")
    return UsageError(error.message)


def wire_live_refusal(error: LiveChangeRefused, given: Collection[str] = ()) -> BusyError:
    """A change an active server refused, naming a key the client sent (`given`) when one of the
    refused is, rather than one it changed as a consequence."""
    keys = sorted(field_key(part) for part in error.fields)
    key = next((k for k in keys if k in given), keys[0])
    return BusyError(f"{key} cannot change while the server is active; stop it first")


@contextmanager
def wire_errors(given: Collection[str] = ()) -> Iterator[None]:
    """Refusals from the model, the service, the store or the hypervisor said with wire keys."""
    try:
        yield
    except model.ConfigRefusal as e:
        raise wire_refusal(e) from None
    except PoolFull as e:
        raise FullError(f"the IP pool has no free address for nic:{e.nic} of server {e.server}") from None
    except LiveChangeRefused as e:
        raise wire_live_refusal(e, given) from None
