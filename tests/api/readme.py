"""Running a README section's `$ ` commands verbatim with bash against a real installation: the
parser of its literal blocks, and a shell that swaps the README's example values (UUIDs, secrets,
tokens, the port) for the real ones as they become known and checks the output lines it shows."""

from __future__ import annotations

import re
import subprocess
import time

from tests.support import Installation, program_env

# The README's example address, replaced by the installation's.
EXAMPLE_PORT = "127.0.0.1:8080"
# Output lines `KEY VALUE` whose example VALUE stands for the real one from then on.
LEARNED = ("user", "secret", "drive", "token")


def section(readme: str, title: str, end: str) -> str:
    """The text of the README between the heading `title` and the heading `end`."""
    return readme.split(f"\n{title}\n", 1)[1].split(f"\n{end}\n", 1)[0]


def session_commands(text: str) -> list[tuple[str, list[str]]]:
    """The `$ ` commands of a README text, each with the output lines the README shows under it.
    A command ending in `\\` goes on, as in a shell."""
    commands: list[tuple[str, list[str]]] = []
    continued = False
    shown = False  # whether the lines of this literal block are the last command's output
    for line in text.splitlines():
        if not line.startswith("    "):  # prose or a blank line ends a command's lines
            continued = False
            shown = shown and not line.strip()  # prose ends the block (a code example follows)
            continue
        body = line[4:]
        if continued:
            commands[-1] = (commands[-1][0] + "\n" + body, commands[-1][1])
        elif body.startswith("$ "):
            commands.append((body[2:], []))
            shown = True
        elif shown:
            commands[-1][1].append(body)
        continued = body.endswith("\\")
    return commands


def elided(line: str) -> re.Pattern[str]:
    """A shown line with `...` as a pattern: each `...` stands for any text, the rest is exact."""
    return re.compile(".*".join(re.escape(piece) for piece in line.split("...")))


class Shell:
    """Runs the README's lines with bash in the installation's directory: assignments are kept for
    the lines after them, the README's example values are swapped for the real ones.

    `strict`: a shown line with `...` must match an output line with the elided parts free (else
    such a line is not checked, for abridged output whose shown parts are not literal)."""

    def __init__(self, installation: Installation, *, strict: bool = False) -> None:
        self.installation = installation
        self.strict = strict
        self.assignments: list[str] = []
        self.real: dict[str, str] = {EXAMPLE_PORT: f"127.0.0.1:{installation.port}"}

    def swap(self, text: str) -> str:
        for example, real in self.real.items():
            text = text.replace(example, real)
        return text

    def learn(self, expected: list[str], actual: list[str]) -> None:
        """The README shows `user U`, `secret S`, `token T` …: map each example value to the real one."""
        shown = dict(line.split(" ", 1) for line in actual if " " in line)
        for line in expected:
            key, _, example = line.partition(" ")
            if key in LEARNED and key in shown and example not in self.real:
                self.real[example] = shown[key]

    def missing(self, expected: list[str], actual: list[str]) -> list[str]:
        """The shown lines the output lacks."""
        absent = []
        for line in expected:
            shown = self.swap(line).rstrip()
            if "..." not in line:
                if shown not in actual:
                    absent.append(line)
            elif self.strict and not any(elided(shown).fullmatch(a) for a in actual):
                absent.append(line)
        return absent

    def execute(self, command: str) -> list[str]:
        done = subprocess.run(
            ["bash", "-c", "\n".join([*self.assignments, command])],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.installation.directory,
            env=program_env(),
            check=False,
        )
        assert done.returncode == 0, f"{command}: {done.stderr}"
        return [line.rstrip("\r").rstrip() for line in done.stdout.splitlines()]

    def run(self, command: str, expected: list[str], *, until: float = 0.0, failed: str = "") -> list[str]:
        """Run one command and check its output; with `until` (seconds), run it again until the
        output shows what the README shows (a poll, e.g. an action until it is completed), but
        not once it shows `failed` (the end of what it polls, a different one)."""
        command = self.swap(command)
        if re.fullmatch(r"[A-Z]+=\S+", command):
            self.assignments.append(command)
            return []
        deadline = time.monotonic() + until
        while True:
            actual = self.execute(command)
            self.learn(expected, actual)
            absent = self.missing(expected, actual)
            if not absent:
                return actual
            assert not (failed and any(failed in line for line in actual)), f"{command}: {actual}"
            assert time.monotonic() < deadline, f"{command}: {absent!r} not in {actual}"
            time.sleep(0.5)
