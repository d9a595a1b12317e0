"""The customization markers a guest prints on its first serial port (issue 18, seam 2): exactly one
`ELASTIC-API CUSTOMIZE BEGIN <instance_id>` line before the script and one
`ELASTIC-API CUSTOMIZE END <instance_id> rc=<exit code>` after it. Pure: the service feeds bytes."""

from __future__ import annotations

import re
from dataclasses import dataclass

BEGIN_WORD = b"ELASTIC-API CUSTOMIZE BEGIN "
END_WORD = b"ELASTIC-API CUSTOMIZE END "
# A line longer than this is no marker: the carried partial line is dropped past it, so a guest
# printing without newlines cannot grow the watcher's memory.
MAX_LINE = 4096
_END = re.compile(rb"^ELASTIC-API CUSTOMIZE END (\S+) rc=(-?[0-9]{1,9})$")


@dataclass(frozen=True)
class Markers:
    begun: bool = False
    rc: int | None = None  # the END line's exit code once seen

    @property
    def ended(self) -> bool:
        return self.rc is not None


@dataclass(frozen=True)
class Scan:
    """Where a scan of the serial log stands: the markers seen and the unfinished last line."""

    markers: Markers = Markers()
    carry: bytes = b""


def feed(scan: Scan, data: bytes, instance_ids: frozenset[str]) -> Scan:
    """The scan after `data` (the log's next bytes). Only lines naming one of `instance_ids` count;
    serial consoles end lines with CR LF, so trailing whitespace is ignored."""
    lines = (scan.carry + data).split(b"\n")
    carry = lines.pop()
    if len(carry) > MAX_LINE:
        carry = b""
    begun, rc = scan.markers.begun, scan.markers.rc
    for raw in lines:
        line = raw.strip()
        if line.startswith(BEGIN_WORD):
            if line[len(BEGIN_WORD) :].decode(errors="replace") in instance_ids:
                begun = True
        elif line.startswith(END_WORD):
            match = _END.match(line)
            if match and match.group(1).decode(errors="replace") in instance_ids:
                begun, rc = True, int(match.group(2))
    return Scan(Markers(begun, rc), carry)
