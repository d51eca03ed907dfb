"""base: apt through the site's proxy and signed mirror, baseline packages, settings files."""

from __future__ import annotations

import pytest

from tests.roles.bootstraps import LAB_HOSTS, Bootstrapped

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("name", LAB_HOSTS)
def test_apt_uses_the_proxy_and_the_mirror_signed_by_the_pinned_key(
    bootstrapped: Bootstrapped, name: str
) -> None:
    host = bootstrapped.host(name)
    proxy = host.file("/etc/apt/apt.conf.d/01ecohash-proxy").content_string
    assert 'Acquire::http::Proxy "http://10.213.0.1:3142";' in proxy
    assert 'Acquire::http::Proxy::10.213.0.1 "DIRECT";' in proxy
    source = host.file("/etc/apt/sources.list.d/ecohash-site-mirror.sources").content_string
    assert "URIs: http://10.213.0.1:8080/apt/" in source
    assert "Signed-By: /etc/apt/keyrings/ecohash-site-mirror.gpg" in source
    keyring = host.file("/etc/apt/keyrings/ecohash-site-mirror.gpg")
    site = bootstrapped.lab.paths.mirror_dir / "current" / "keys" / "site-mirror.gpg"
    assert keyring.sha256sum == __import__("hashlib").sha256(site.read_bytes()).hexdigest()
    # No repository is trusted without a signature.
    assert "trusted=yes" not in host.run("cat /etc/apt/sources.list.d/*").stdout


def test_apt_refuses_the_mirror_once_its_signature_does_not_verify(bootstrapped: Bootstrapped) -> None:
    host = bootstrapped.host("c01-r01-n02")
    bogus = "/etc/apt/keyrings/ecohash-site-mirror.gpg"
    host.run(f"cp {bogus} /root/keyring.bak && gpg --batch --quiet --no-default-keyring "
             f"--keyring /root/other.gpg --quick-generate-key --passphrase '' other@x ed25519 2>/dev/null; "
             f"cp /root/other.gpg {bogus} 2>/dev/null || : > {bogus}")
    try:
        update = host.run("apt-get update -q 2>&1")
    finally:
        host.run(f"cp /root/keyring.bak {bogus}")
    assert "NO_PUBKEY" in update.stdout or "not signed" in update.stdout or "is not signed" in update.stdout


@pytest.mark.parametrize("name", LAB_HOSTS)
def test_baseline_packages_and_services(bootstrapped: Bootstrapped, name: str) -> None:
    host = bootstrapped.host(name)
    for package in ("chrony", "unattended-upgrades", "procps", "kmod", "pciutils"):
        assert host.package(package).is_installed, package
    assert host.service("chrony").is_enabled
    # chrony is skipped in a container (no CAP_SYS_TIME): enabled, not running, by design.
    assert "ConditionCapability=CAP_SYS_TIME" in host.run("systemctl cat chrony").stdout


@pytest.mark.parametrize("name", LAB_HOSTS[:1])
def test_settings_files(bootstrapped: Bootstrapped, name: str) -> None:
    host = bootstrapped.host(name)
    sysctl = host.file("/etc/sysctl.d/60-ecohash.conf")
    assert sysctl.mode == 0o644
    assert "net.ipv4.ip_forward = 1" in sysctl.content_string
    assert "fs.inotify.max_user_watches = 1048576" in sysctl.content_string
    assert host.file("/etc/modules-load.d/ecohash.conf").content_string.split() == [
        "overlay", "br_netfilter",
    ]
    assert "nofile  1048576" in host.file("/etc/security/limits.d/60-ecohash.conf").content_string
    assert "SystemMaxUse=2G" in host.file("/etc/systemd/journald.conf.d/60-ecohash.conf").content_string
    # sshd really runs with the hardened settings, not just a file on disk.
    effective = host.run("sshd -T").stdout
    assert "passwordauthentication no" in effective
    assert "permitrootlogin without-password" in effective
    assert "maxauthtries 3" in effective


def test_unattended_upgrades_never_touch_kernel_driver_or_runtime(bootstrapped: Bootstrapped) -> None:
    host = bootstrapped.host("c01-r01-n01")
    config = host.file("/etc/apt/apt.conf.d/52ecohash-unattended-upgrades").content_string
    for prefix in ("linux-", "nvidia-", "libnvidia-", "cuda-", "containerd", "runc"):
        assert f'"{prefix}";' in config
    assert 'Automatic-Reboot "false"' in config
    # What unattended-upgrades itself reads back from apt's configuration:
    dump = host.run("apt-config dump Unattended-Upgrade::Package-Blacklist").stdout
    assert 'Unattended-Upgrade::Package-Blacklist:: "nvidia-";' in dump
