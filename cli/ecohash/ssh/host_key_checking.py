"""How ecohash reaches nodes over SSH: host keys are always checked.

A site's ssh_config may name jump hosts, keys and the known_hosts file, but never stop
host key checking. Every ssh that ecohash starts (Ansible's, verification's, `lab ssh`)
gets HOST_KEY_CHECKING_ARGS on its command line, and ssh takes command-line options
before any line of its files: the site's ssh_config, ~/.ssh/config, /etc/ssh/ssh_config,
or one they include. The preflight, which speaks SSH itself, checks the same way.

A site's ssh_config that tries to turn checking off is refused at its line all the same,
so that its owner learns it at once and not from every node being left out as unknown.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from ecohash.errors import InventoryError, Problem

HOST_KEY_CHECKING_ARGS = ("-o", "StrictHostKeyChecking=yes")

# ssh_config(5): a keyword, then its arguments after whitespace or one "=".
_OPTION = re.compile(r"\s*([A-Za-z]+)(?:\s*=\s*|\s+)(.*)")
_UNCHECKED = frozenset({"no", "off", "false", "accept-new"})
_NO_FILE = frozenset({"/dev/null", "none"})


def check_ssh_config(path: Path) -> None:
    """Refuse an ssh_config with a line that turns host key checking off, naming each line."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return  # whatever reads it (ssh, the preflight) says why it cannot
    problems = []
    for number, line in enumerate(lines, 1):
        match = _OPTION.fullmatch(line)
        if match is None or line.lstrip().startswith("#"):
            continue
        keyword, words = match[1].lower(), _words(match[2])
        if keyword == "stricthostkeychecking" and words and words[0].lower() in _UNCHECKED:
            effect = f"StrictHostKeyChecking {words[0]} turns host key checking off"
        elif keyword == "userknownhostsfile" and words and all(word.lower() in _NO_FILE for word in words):
            effect = f"UserKnownHostsFile {' '.join(words)} leaves no host key to check against"
        else:
            continue
        problems.append(Problem(str(path), number, f"{effect}, and ecohash always checks host keys; "
                                "list the nodes' keys in a known_hosts file the ssh_config names"))
    if problems:
        raise InventoryError(problems)


# What an ssh_config may tell another machine (a site's executor) about reaching the nodes:
# names, aliases, users, ports, algorithms, timeouts. Not its files (keys, known_hosts,
# Include, certificates, control sockets: the controller's), nor what runs commands
# (ProxyCommand, LocalCommand, Match exec) or reaches past the site's network (ProxyJump).
_PORTABLE = frozenset({
    "host", "match", "hostname", "hostkeyalias", "user", "port", "hostkeyalgorithms", "checkhostip",
    "connecttimeout", "connectionattempts", "serveraliveinterval", "serveralivecountmax",
    "addressfamily", "ciphers", "kexalgorithms", "macs", "compression", "loglevel", "batchmode",
    "pubkeyauthentication", "preferredauthentications", "pubkeyacceptedalgorithms",
    "pubkeyacceptedkeytypes", "stricthostkeychecking",
})
# A Host pattern no host has (.invalid, RFC 2606): stands in for a Match block that cannot travel.
_NO_HOST = "Host ecohash-dropped-match.invalid"


def portable_ssh_config(path: Path | None, known_hosts: str) -> str:
    """An ssh_config for another machine: the site's ssh_config's portable lines, with the
    known hosts in `known_hosts` (a file on that machine) and nothing else of this one's."""
    head = f"Host *\n    UserKnownHostsFile {known_hosts}\n    GlobalKnownHostsFile none\n"
    if path is None:
        return head
    kept = []
    for line in path.read_text(errors="replace").splitlines():
        match = _OPTION.fullmatch(line)
        if match is None or line.lstrip().startswith("#") or match[1].lower() not in _PORTABLE:
            continue
        if match[1].lower() == "match" and "exec" in (word.lower() for word in _words(match[2])):
            kept.append(_NO_HOST)
            continue
        kept.append(line.strip() if match[1].lower() in ("host", "match") else f"    {line.strip()}")
    return head + "".join(f"{line}\n" for line in kept)


def known_hosts_files_of(path: Path) -> list[Path]:
    """The known_hosts files an ssh_config names (UserKnownHostsFile, GlobalKnownHostsFile)."""
    named: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        match = _OPTION.fullmatch(line)
        if match and match[1].lower() in ("userknownhostsfile", "globalknownhostsfile"):
            named.extend(word for word in _words(match[2]) if word.lower() not in _NO_FILE)
    return [Path(word).expanduser() for word in named]


def _words(arguments: str) -> list[str]:
    try:
        return shlex.split(arguments, comments=True)
    except ValueError:  # an unbalanced quote: ssh refuses the file itself
        return arguments.split()
