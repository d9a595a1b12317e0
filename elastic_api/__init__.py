"""elastic-api: an ElasticHosts-compatible cloud control plane on libvirt and QEMU."""

__version__ = "0.1.0"
