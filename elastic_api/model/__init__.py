"""Pure protocol model: identifiers, sizes, wire formats, keys and their validation."""
