"""A tiny bootable disk: a hand-assembled boot sector that reports on COM1 and obeys the power button."""

from __future__ import annotations

from pathlib import Path

BOOT_MARKER = b"ELASTIC-BOOT-OK"
POWER_MARKER = b"ELASTIC-POWER-BUTTON"

# 16-bit real mode, loaded by the BIOS at 0000:7c00. Offsets are from the start of the sector.
# It prints BOOT_MARKER, arms the ACPI power button, then sleeps in `hlt` (woken ~18 times a
# second by the BIOS timer, so an idle guest costs nothing) until the power button is pressed
# (libvirt's shutdown), prints POWER_MARKER and powers the machine off through ACPI.
_CODE = bytes(
    [
        0xFA,  # 00 cli
        0x31,
        0xC0,  # 01 xor ax, ax
        0x8E,
        0xD8,  # 03 mov ds, ax
        0x8E,
        0xD0,  # 05 mov ss, ax
        0xBC,
        0x00,
        0x7C,  # 07 mov sp, 0x7c00
        0xBE,
        0x53,
        0x7C,  # 0a mov si, 0x7c53          ; BOOT_MARKER
        0xE8,
        0x37,
        0x00,  # 0d call print (0x47)
        # The PIIX4 power-management function (PCI 00:01.3) holds the ACPI I/O base in config
        # register 0x40; SeaBIOS puts it at 0x600, but asking keeps this independent of firmware.
        0x66,
        0xB8,
        0x40,
        0x0B,
        0x00,
        0x80,  # 10 mov eax, 0x80000b40  ; bus 0, dev 1, fn 3, reg 0x40
        0xBA,
        0xF8,
        0x0C,  # 16 mov dx, 0xcf8
        0x66,
        0xEF,  # 19 out dx, eax
        0xBA,
        0xFC,
        0x0C,  # 1b mov dx, 0xcfc
        0x66,
        0xED,  # 1e in eax, dx
        0x83,
        0xE0,
        0xC0,  # 20 and ax, 0xffc0          ; the base: bits 15..6
        0x89,
        0xC3,  # 23 mov bx, ax              ; bx = PM1a_STS
        0x8D,
        0x57,
        0x02,  # 25 lea dx, [bx+2]          ; PM1a_EN
        0xB8,
        0x00,
        0x01,  # 28 mov ax, 0x0100          ; PWRBTN_EN
        0xEF,  # 2b out dx, ax
        0xFB,  # 2c sti                     ; let the BIOS timer wake hlt
        0xF4,  # 2d wait: hlt
        0x89,
        0xDA,  # 2e mov dx, bx
        0xED,  # 30 in ax, dx               ; PM1a_STS
        0xA9,
        0x00,
        0x01,  # 31 test ax, 0x0100         ; PWRBTN_STS
        0x74,
        0xF7,  # 34 jz wait (0x2d)
        0xBE,
        0x65,
        0x7C,  # 36 mov si, 0x7c65          ; POWER_MARKER
        0xE8,
        0x0B,
        0x00,  # 39 call print (0x47)
        0x8D,
        0x57,
        0x04,  # 3c lea dx, [bx+4]          ; PM1a_CNT
        0xB8,
        0x00,
        0x20,  # 3f mov ax, 0x2000          ; SLP_EN with SLP_TYP 0: soft off
        0xEF,  # 42 out dx, ax
        0xFA,  # 43 cli
        0xF4,  # 44 halt: hlt
        0xEB,
        0xFD,  # 45 jmp halt (0x44)
        0xBA,
        0xF8,
        0x03,  # 47 print: mov dx, 0x3f8   ; COM1 data register
        0xAC,  # 4a next: lodsb
        0x84,
        0xC0,  # 4b test al, al
        0x74,
        0x03,  # 4d jz done (0x52)
        0xEE,  # 4f out dx, al
        0xEB,
        0xF8,  # 50 jmp next (0x4a)
        0xC3,  # 52 done: ret
    ]
)
_MESSAGES = BOOT_MARKER + b"\r\n\0" + POWER_MARKER + b"\r\n\0"  # at 0x53 and 0x65


def boot_sector() -> bytes:
    """The 512-byte sector: code, messages, zero padding and the 55 aa boot signature."""
    body = _CODE + _MESSAGES
    assert len(_CODE) == 0x53 and body.index(POWER_MARKER) == 0x65
    return body + bytes(510 - len(body)) + b"\x55\xaa"


def write_boot_image(path: Path, size: int = 1024 * 1024) -> Path:
    """A raw disk image of `size` bytes that boots the sector (the rest is zeros, left sparse)."""
    with open(path, "wb") as f:
        f.write(boot_sector())
        f.truncate(size)
    return path
