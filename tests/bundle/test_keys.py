"""Site signing keys: minisign's formats, checked against Debian's own minisign both ways."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from ecohash.bundle import keys


def minisign() -> str:
    found = shutil.which("minisign")
    assert found, "minisign is not installed: scripts/install --test installs it (apt)"
    return found


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_keygen_keeps_the_secret_0600_in_the_sites_secrets_and_refuses_to_replace_it(state):
    public = keys.keygen("lab")
    secret_file = state / "secrets" / "lab" / "bundle-signing.key"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret_file.parent.stat().st_mode) == 0o700
    assert keys.load_public("lab") == public
    assert keys.load_secret("lab").public == public
    before = secret_file.read_bytes()
    with pytest.raises(keys.KeyFileError, match="already has a bundle signing key"):
        keys.keygen("lab")
    assert secret_file.read_bytes() == before


def test_a_secret_key_open_to_others_is_refused(state):
    keys.keygen("lab")
    keys.secret_key_file("lab").chmod(0o644)
    with pytest.raises(keys.KeyFileError, match=r"open to others \(mode 0644\); `chmod 600` it"):
        keys.load_secret("lab")


def test_the_secret_key_never_shows_in_its_repr():
    secret = keys.generate()
    seed = secret.key.private_bytes_raw()
    assert seed.hex() not in repr(secret) and repr(secret).startswith("SecretKey(key_id=")


def test_minisign_verifies_what_ecohash_signs_and_refuses_it_tampered(tmp_path):
    secret = keys.generate()
    message = tmp_path / "manifest.json"
    message.write_bytes(b'{"entries": []}\n')
    public_file = tmp_path / "site.pub"
    public_file.write_text(secret.public.text())
    (tmp_path / "manifest.json.minisig").write_text(keys.sign(message.read_bytes(), secret, "site:lab\tfile:x"))
    accepted = subprocess.run([minisign(), "-Vm", message, "-p", public_file], capture_output=True, text=True)
    assert accepted.returncode == 0, accepted.stderr
    assert "Trusted comment: site:lab\tfile:x" in accepted.stdout
    message.write_bytes(b'{"entries": [1]}\n')
    refused = subprocess.run([minisign(), "-Vm", message, "-p", public_file], capture_output=True, text=True)
    assert refused.returncode != 0
    assert "Signature verification failed" in refused.stderr


def test_ecohash_reads_what_minisign_signs_with_an_ecohash_key(tmp_path):
    # The secret key file is minisign's own (unencrypted), so either tool can sign.
    secret = keys.generate()
    secret_file = tmp_path / "site.key"
    secret_file.write_text(secret.file_text())
    os.chmod(secret_file, 0o600)
    message = tmp_path / "notes.txt"
    message.write_text("hello\n")
    subprocess.run([minisign(), "-S", "-s", secret_file, "-m", message, "-t", "by minisign"],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True)
    signature = (tmp_path / "notes.txt.minisig").read_text()
    assert keys.verify(message.read_bytes(), signature, secret.public, "notes.txt.minisig") == "by minisign"


def test_another_keys_signature_names_both_key_ids():
    signer, site = keys.generate(), keys.generate()
    signature = keys.sign(b"m", signer, "c")
    with pytest.raises(keys.SignatureError) as raised:
        keys.verify(b"m", signature, site.public, "m.minisig")
    assert str(raised.value) == (f"m.minisig: signed by key {signer.public.key_id_text}, not by this site's key "
                                 f"{site.public.key_id_text}")


def test_an_altered_trusted_comment_is_refused():
    secret = keys.generate()
    lines = keys.sign(b"m", secret, "site:lab").splitlines()
    lines[2] = "trusted comment: site:tx-odessa"
    with pytest.raises(keys.SignatureError, match="the trusted comment was altered"):
        keys.verify(b"m", "\n".join(lines) + "\n", secret.public, "m.minisig")


def test_a_legacy_unhashed_signature_is_refused():
    # minisign -l signs the message itself ("Ed"); accepting it too would invite a downgrade.
    secret = keys.generate()
    lines = keys.sign(b"m", secret, "c").splitlines()
    raw = base64.b64decode(lines[1])
    lines[1] = base64.b64encode(b"Ed" + raw[2:10] + secret.key.sign(b"m")).decode()
    with pytest.raises(keys.SignatureError, match=r"not a pre-hashed \(ED\) minisign signature"):
        keys.verify(b"m", "\n".join(lines), secret.public, "m.minisig")


def test_a_public_key_file_that_is_not_one_is_named(tmp_path):
    path = tmp_path / "site.pub"
    path.write_text("untrusted comment: x\nnot base64!\n")
    with pytest.raises(keys.KeyFileError, match=f"^{path}: not a minisign public key$"):
        keys.read_public(path)
