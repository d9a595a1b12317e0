"""Libvirt secrets: the LUKS passphrases of a running server's encrypted drives, defined for its
run and removed when its guest stops (or swept when that was missed)."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection, Mapping

import libvirt

from elastic_api.hypervisor.domain import secret_owner, secret_xml
from elastic_api.hypervisor.libvirt.hosts import Hosts


def define_secrets(conn: libvirt.virConnect, server: str, installation: str, secrets: Mapping[str, bytes]) -> None:
    for uuid, value in secrets.items():
        conn.secretDefineXML(secret_xml(uuid, server, installation), 0).setValue(value, 0)


def remove_secrets(conn: libvirt.virConnect, gone: Callable[[str, str | None], bool]) -> int:
    """Undefine the secrets (described by their server's domain name and installation, see
    domain.secret_owner) for which gone(server, installation) holds; installation is None for a
    secret from before installation IDs."""
    try:
        secrets = conn.listAllSecrets(0)
    except libvirt.libvirtError as e:
        if e.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
            return 0  # a driver without secrets (test:///) holds none of ours
        raise
    removed = 0
    for secret in secrets:
        try:
            server, installation = secret_owner(ET.fromstring(secret.XMLDesc(0)).findtext("description") or "")
            if server is not None and gone(server, installation):
                secret.undefine()
                removed += 1
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_SECRET:
                raise  # one already removed by someone else is fine
    return removed


class Secrets:
    def __init__(self, hosts: Hosts, installation: str) -> None:
        self._hosts = hosts
        self._installation = installation
        self._log = logging.getLogger(__name__)

    async def remove_secrets(self, host: str, server: str) -> None:
        """Remove the secrets of one of our servers that is not running (its guest has stopped):
        those with our ID, and those from before installation IDs (the server is ours)."""
        await self._hosts.call(
            host,
            f"remove the secrets of server {server}",
            lambda conn: remove_secrets(
                conn, lambda owner, installation: owner == server and installation in (None, self._installation)
            ),
        )

    async def sweep_secrets(
        self, running: Collection[str], adopt: Collection[str] = (), hosts: Collection[str] | None = None
    ) -> None:
        """Remove our secrets of every server not in `running`, on every host (or those named):
        guests that stopped while the API was down or the host out of reach. Ours are those with
        our ID, and those without one whose server is in `adopt`; others are never touched."""
        keep, adopted = set(running), set(adopt)

        def gone(owner: str, installation: str | None) -> bool:
            mine = installation == self._installation or (installation is None and owner in adopted)
            return mine and owner not in keep

        for name in self._hosts.names if hosts is None else hosts:
            removed = await self._hosts.call(name, "remove stale secrets", lambda conn: remove_secrets(conn, gone))
            if removed:
                self._log.info("host %s: removed %d secrets of servers no longer running", name, removed)
