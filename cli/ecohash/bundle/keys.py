"""A site's bundle signing key: Ed25519, in minisign's formats, so Debian's `minisign` reads them too.

A bundle is signed at the office with the site's secret key and checked at the site with its
public key alone (the site controller never holds the secret). The formats are minisign's
(src/minisign.h): a public key is "Ed" + key id (8 bytes) + the Ed25519 key; a signature is
"ED" + key id + Ed25519 over the BLAKE2b-512 of the file (what minisign 0.11 makes by
default), then a trusted comment and a global signature over signature + trusted comment,
so the comment is authenticated too. The secret key is minisign's unencrypted secret key
file (`minisign -G -W`): no passphrase, because nobody types one in a build; 0600 in the
site's secrets directory instead.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ecohash.atomic import write_atomic
from ecohash.errors import InvalidInputError
from ecohash.paths import secrets_dir

SECRET_KEY_FILE_NAME = "bundle-signing.key"
PUBLIC_KEY_FILE_NAME = "bundle-signing.pub"

_SIGNATURE_ALGORITHM = b"Ed"  # a public key's and a secret key's algorithm
_PREHASHED_ALGORITHM = b"ED"  # a signature over the file's BLAKE2b-512
_NO_KDF = b"\0\0"  # an unencrypted secret key
_CHECKSUM_ALGORITHM = b"B2"
_KEY_ID_BYTES = 8
_UNTRUSTED = "untrusted comment: "
_TRUSTED = "trusted comment: "


class KeyFileError(InvalidInputError):
    """A key file is missing, unreadable, too open, or not a minisign key."""


class SignatureError(InvalidInputError):
    """A signature is malformed, by another key, or does not match the signed file."""


@dataclass(frozen=True)
class PublicKey:
    """A site's public key, as minisign names it: its key id and the Ed25519 key."""

    key_id: bytes
    key: Ed25519PublicKey

    @property
    def key_id_text(self) -> str:
        # minisign prints the id as a little-endian 64-bit number in upper-case hex.
        return self.key_id[::-1].hex().upper()

    def text(self) -> str:
        """The key as a minisign .pub file."""
        raw = self.key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        encoded = base64.b64encode(_SIGNATURE_ALGORITHM + self.key_id + raw).decode()
        return f"{_UNTRUSTED}minisign public key {self.key_id_text}\n{encoded}\n"

    @classmethod
    def from_text(cls, text: str, source: str) -> PublicKey:
        """Read a minisign public key file (or its base64 line alone); `source` names it in errors."""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines and lines[0].startswith(_UNTRUSTED):
            lines = lines[1:]
        raw = _decode(lines[0] if lines else "", 2 + _KEY_ID_BYTES + 32)
        if raw is None or raw[:2] != _SIGNATURE_ALGORITHM:
            raise KeyFileError(f"{source}: not a minisign public key")
        return cls(raw[2:2 + _KEY_ID_BYTES], Ed25519PublicKey.from_public_bytes(raw[2 + _KEY_ID_BYTES:]))


@dataclass(frozen=True)
class SecretKey:
    """A site's secret signing key; never written anywhere but its 0600 file."""

    key_id: bytes
    key: Ed25519PrivateKey

    def __repr__(self) -> str:  # a traceback or a log line must never carry the key
        return f"SecretKey(key_id={self.key_id[::-1].hex().upper()})"

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key_id, self.key.public_key())

    def file_text(self) -> str:
        """minisign's unencrypted secret key file."""
        seed = self.key.private_bytes_raw()
        minisign_secret = seed + self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        # minisign checks an unencrypted key against BLAKE2b-256(algorithm, key id, secret key).
        checksum = hashlib.blake2b(_SIGNATURE_ALGORITHM + self.key_id + minisign_secret,
                                   digest_size=32).digest()
        body = (_SIGNATURE_ALGORITHM + _NO_KDF + _CHECKSUM_ALGORITHM + bytes(32) + bytes(8) + bytes(8)
                + self.key_id + minisign_secret + checksum)
        return f"{_UNTRUSTED}minisign secret key (unencrypted)\n{base64.b64encode(body).decode()}\n"

    @classmethod
    def from_text(cls, text: str, source: str) -> SecretKey:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        raw = _decode(lines[1] if len(lines) > 1 else "", 2 + 2 + 2 + 32 + 8 + 8 + _KEY_ID_BYTES + 64 + 32)
        if raw is None or raw[:2] != _SIGNATURE_ALGORITHM or raw[4:6] != _CHECKSUM_ALGORITHM:
            raise KeyFileError(f"{source}: not a minisign secret key")
        if raw[2:4] != _NO_KDF:
            raise KeyFileError(f"{source}: an encrypted minisign secret key; ecohash signs with an "
                               "unencrypted one (`ecohash bundle keygen`, or `minisign -G -W`)")
        key_id, minisign_secret, checksum = raw[54:62], raw[62:126], raw[126:]
        expected = hashlib.blake2b(_SIGNATURE_ALGORITHM + key_id + minisign_secret, digest_size=32).digest()
        if expected != checksum:
            raise KeyFileError(f"{source}: the secret key's checksum does not match: the file is damaged")
        key = Ed25519PrivateKey.from_private_bytes(minisign_secret[:32])
        if key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) != minisign_secret[32:]:
            raise KeyFileError(f"{source}: the secret key does not match its own public half")
        return cls(key_id, key)


def generate() -> SecretKey:
    return SecretKey(secrets.token_bytes(_KEY_ID_BYTES), Ed25519PrivateKey.generate())


def secret_key_file(site_name: str) -> Path:
    return secrets_dir(site_name) / SECRET_KEY_FILE_NAME


def public_key_file(site_name: str) -> Path:
    return secrets_dir(site_name) / PUBLIC_KEY_FILE_NAME


def keygen(site_name: str) -> PublicKey:
    """Make the site's key pair: the secret 0600, the public beside it. An existing key is kept.

    Refused when the site already has a secret key: every site trusting its public key
    would refuse bundles signed by a new one, so replacing it is a deliberate act
    (remove the file), never a side effect.
    """
    secret_file = secret_key_file(site_name)
    if secret_file.exists():
        raise KeyFileError(f"{secret_file}: site {site_name} already has a bundle signing key; its "
                           f"public key: `ecohash bundle pubkey {site_name}`. To replace it, remove "
                           "the file first (bundles it signed then no longer verify)")
    directory = secret_file.parent
    directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.mkdir(mode=0o700, exist_ok=True)
    secret = generate()
    _create_exclusive(secret_file, secret.file_text())
    write_atomic(public_key_file(site_name), secret.public.text(), mode=0o644)
    return secret.public


def _create_exclusive(path: Path, text: str) -> None:
    # Written whole beside it, 0600 from the first byte, then linked into place: a
    # concurrent keygen that got there first keeps its key, and this one fails.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise KeyFileError(f"{path}: another keygen wrote this key first; it is kept") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def load_secret(site_name: str) -> SecretKey:
    """The site's secret key; refused when anyone but its owner may read it (as ssh does)."""
    path = secret_key_file(site_name)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise KeyFileError(f"{path}: site {site_name} has no bundle signing key: "
                           f"`ecohash bundle keygen {site_name}` makes one") from None
    except (OSError, UnicodeDecodeError) as error:
        raise KeyFileError(f"{path}: cannot read the secret key: "
                           f"{getattr(error, 'strerror', None) or error}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path}: the secret key is open to others (mode {stat.S_IMODE(mode):04o}); "
                           "`chmod 600` it")
    return SecretKey.from_text(text, str(path))


def load_public(site_name: str) -> PublicKey:
    """The site's public key, from its secrets directory (where a site controller keeps only it)."""
    path = public_key_file(site_name)
    if not path.exists():
        raise KeyFileError(f"{path}: no bundle public key for site {site_name}: `ecohash bundle keygen "
                           f"{site_name}` at the office makes the pair; copy its .pub here (or pass "
                           "--pubkey)")
    return read_public(path)


def read_public(path: Path) -> PublicKey:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise KeyFileError(f"{path}: cannot read the public key: "
                           f"{getattr(error, 'strerror', None) or error}") from None
    return PublicKey.from_text(text, str(path))


def sign(message: bytes, key: SecretKey, trusted_comment: str) -> str:
    """A minisign signature file (.minisig) for `message`, pre-hashed, with `trusted_comment`."""
    # minisign takes one line of printable characters and tabs.
    if not trusted_comment.replace("\t", " ").isprintable():
        raise ValueError(f"a trusted comment is one printable line: {trusted_comment!r}")
    signature = key.key.sign(hashlib.blake2b(message).digest())
    global_signature = key.key.sign(signature + trusted_comment.encode())
    return (f"{_UNTRUSTED}signature from ecohash bundle key {key.public.key_id_text}\n"
            f"{base64.b64encode(_PREHASHED_ALGORITHM + key.key_id + signature).decode()}\n"
            f"{_TRUSTED}{trusted_comment}\n"
            f"{base64.b64encode(global_signature).decode()}\n")


def verify(message: bytes, signature_text: str, key: PublicKey, source: str) -> str:
    """Check a minisign signature of `message`; return its trusted comment. `source` names the file.

    Only pre-hashed signatures are accepted: ecohash never makes the legacy kind, and a
    verifier that takes either invites a downgrade.
    """
    lines = signature_text.splitlines()
    if len(lines) < 4 or not lines[0].startswith(_UNTRUSTED) or not lines[2].startswith(_TRUSTED):
        raise SignatureError(f"{source}: not a minisign signature file")
    raw = _decode(lines[1].strip(), 2 + _KEY_ID_BYTES + 64)
    global_signature = _decode(lines[3].strip(), 64)
    if raw is None or global_signature is None:
        raise SignatureError(f"{source}: not a minisign signature file")
    if raw[:2] != _PREHASHED_ALGORITHM:
        raise SignatureError(f"{source}: not a pre-hashed (ED) minisign signature")
    key_id, signature = raw[2:2 + _KEY_ID_BYTES], raw[2 + _KEY_ID_BYTES:]
    if key_id != key.key_id:
        raise SignatureError(f"{source}: signed by key {key_id[::-1].hex().upper()}, not by this site's "
                             f"key {key.key_id_text}")
    trusted_comment = lines[2][len(_TRUSTED):].rstrip("\r")
    try:
        key.key.verify(signature, hashlib.blake2b(message).digest())
    except InvalidSignature:
        raise SignatureError(f"{source}: the signature does not match the signed file: it was altered "
                             "after signing") from None
    try:
        key.key.verify(global_signature, signature + trusted_comment.encode())
    except InvalidSignature:
        raise SignatureError(f"{source}: the trusted comment was altered after signing") from None
    return trusted_comment


def _decode(text: str, length: int) -> bytes | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == length else None
