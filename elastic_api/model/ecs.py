"""ECS servers (ECS.md §4, §5, §9): a dialect's server made of an engine server and its boot
drive, with a plan, an image, a location, notes, a group and a provisioning status."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from elastic_api.model.cloudinit import GuestSetup

# Provisioning statuses (ECS.md §5). Power on/off does not change them.
BOOTING, BOOTED, FAIL, DELETING = "Booting", "Booted", "Fail", "Deleting"
# While the guest runs its customization script (serial markers, service/ecs_customizing.py); still
# the create's: a restart resumes it as it does a Booting one.
CUSTOMIZING = "Customizing"
CREATING = (BOOTING, CUSTOMIZING)
# How far a create has come: each step is done once, so a create resumed after a restart goes on
# from the last step it finished.
NEW, DRIVE_MADE, IMAGING, IMAGED, SERVER_MADE, STARTED = "new", "drive", "imaging", "imaged", "server", "started"

# Names come from a global counter never reused: `ec` and six digits, the first being ec100001.
FIRST_NUMBER = 100000
_NAME = re.compile(r"^ec([0-9]{6,9})$")
TAG = "ecs"  # the tag the engine's server and drive carry in the other dialect's lists
NO_GROUP = "nogroup"  # what a PUT sends to detach a server from its group


@dataclass(frozen=True)
class EcsServer:
    id: int  # global, never reused
    owner: str
    plan: str
    cores: int
    ram_mb: int
    disk_gb: int
    cpu: int  # MHz: cores x the host core MHz at creation
    image: str  # the standard image's UUID
    so: str  # its slug, kept as it was at creation
    so_label: str  # its name
    location: str
    notes: str
    group: int | None
    ssh_key: str | None  # the key's label (its key, as it was at the request, is in `setup`)
    status: str
    stage: str
    progress: int
    drive: str | None  # the engine's boot drive, once made
    server: str | None  # the engine's server, once made
    ipv4: str  # the last lease seen
    created: int  # ns since the epoch
    # What the guest's cloud-init seed gives it (the key, the password's hash, the script), kept
    # from the request until the action makes the engine's server, which then carries it.
    setup: GuestSetup = field(default_factory=GuestSetup)
    vlans: tuple[str, ...] = ()  # the VLANs (UUIDs) of its NICs after NIC 0, from `networks`

    @property
    def name(self) -> str:
        return server_name(self.id)


def server_name(id_: int) -> str:
    return f"ec{FIRST_NUMBER + id_:06d}"


def server_id(name: str) -> int | None:
    """The id a server name stands for, or None when it is not one."""
    match = _NAME.match(name)
    if match is None or int(match.group(1)) <= FIRST_NUMBER:
        return None
    return int(match.group(1)) - FIRST_NUMBER
