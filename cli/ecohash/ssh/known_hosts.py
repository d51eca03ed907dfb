"""Which lines of known_hosts files name a given set of hosts, hashed entries included.

The controller's known_hosts lists every site it reaches: shipped whole to one site's
executor, it would tell whoever holds that executor every other site's topology. Only the
lines naming the site's own hosts travel (`lines_naming`). A line names a host as
sshd(8)'s "SSH_KNOWN_HOSTS FILE FORMAT" says: a comma-separated list of patterns (`*`,
`?`, `!` negation, `[host]:port` for a port other than 22) or one hashed name
(`|1|salt|hash`, HMAC-SHA1 of the name keyed by the salt), with an optional
`@cert-authority` or `@revoked` marker first.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MARKERS = ("@cert-authority", "@revoked")


@dataclass(frozen=True)
class KnownHost:
    """One line of a known_hosts file, split into its parts."""

    marker: str | None  # @cert-authority, @revoked or None
    hosts: str  # the line's host patterns as written
    key: str  # key type, base64 key, and the comment if any

    def line(self, hosts: str | None = None) -> str:
        """The line as written, or with other `hosts` (a name of the reader's choosing)."""
        return " ".join(part for part in (self.marker, hosts or self.hosts, self.key) if part)


def host_name(host: str, port: int) -> str:
    """How known_hosts names `host` reached on `port`."""
    return host if port == 22 else f"[{host}]:{port}"


def parse_line(text: str) -> KnownHost | None:
    """A known_hosts line's parts; None for a blank line, a comment or a malformed line."""
    words = text.split(None, 1)
    if not words or words[0].startswith("#"):
        return None
    marker = None
    if words[0] in MARKERS:
        marker = words[0]
        words = words[1].split(None, 1) if len(words) > 1 else []
    if len(words) < 2 or len(words[1].split()) < 2:
        return None
    return KnownHost(marker=marker, hosts=words[0], key=words[1].strip())


def names_host(hosts: str, name: str) -> bool:
    """Whether a line's host field `hosts` names `name` (lowercase, as ssh compares)."""
    name = name.lower()
    if hosts.startswith("|1|"):
        return _hashed_match(hosts, name)
    matched = False
    for pattern in hosts.split(","):
        negated = pattern.startswith("!")
        if _pattern_match(pattern[1:] if negated else pattern, name):
            if negated:
                return False
            matched = True
    return matched


def _pattern_match(pattern: str, name: str) -> bool:
    pattern = pattern.lower()
    if "*" not in pattern and "?" not in pattern:
        return pattern == name
    # ssh's wildcards are * and ? only: [ ] are a port's brackets, never a character class.
    escaped = "".join(f"[{char}]" if char in "[]" else char for char in pattern)
    return fnmatch.fnmatchcase(name, escaped)


def _hashed_match(hosts: str, name: str) -> bool:
    parts = hosts.split("|")
    if len(parts) != 4:
        return False
    try:
        salt, digest = base64.b64decode(parts[2], validate=True), base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest)


def lines_naming(names: Iterable[str], files: Iterable[Path]) -> list[KnownHost]:
    """The lines of `files` (in order, each once) that name one of `names`."""
    wanted = list(dict.fromkeys(name.lower() for name in names))
    found: dict[str, KnownHost] = {}
    for path in dict.fromkeys(files):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for raw in text.splitlines():
            entry = parse_line(raw.strip())
            if entry is not None and any(names_host(entry.hosts, name) for name in wanted):
                found.setdefault(entry.line(), entry)
    return list(found.values())
