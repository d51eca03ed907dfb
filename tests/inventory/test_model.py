"""Strings a site file hands to nodes, SSH and Kubernetes are held to strict patterns.

A site file is data: each case below is a value that would have become a command or a
config line (an apt hook run as root, an ssh ProxyCommand, a chrony directive, a node
label) and must be refused by `ecohash validate` with one FILE:LINE line and exit 2.
"""

import pytest
from click.testing import CliRunner

from ecohash.commands.main import cli
from ecohash.inventory import load_site
from ecohash.inventory.model import site_json_schema
from tests.conftest import EXAMPLE_SITE

SKU_LINE = 16  # hgx-h100-8: {gpu: h100-sxm, ...}
PROVISIONING = "  provisioning:\n"
VALUE_LINE = EXAMPLE_SITE.count("\n") + 2  # the line after `provisioning:`, appended to spec


def validate(path):
    return CliRunner().invoke(cli, ["validate", str(path)], catch_exceptions=False)


@pytest.mark.parametrize(
    ("provisioning", "expected"),
    [
        # apt.conf takes several statements on one line: the value closes the proxy's
        # string and adds a hook apt runs as root before every dpkg call.
        ('    apt_proxy: \'http://proxy.example:3142/";DPkg::Pre-Invoke{"touch${IFS}/tmp/pwned";};//\'\n',
         "spec.provisioning.apt_proxy: must be an http(s) URL such as http://mirror.site.example:8080 "
         "(got 'http://proxy.example:3142/\";DPkg::Pr...)"),
        # ssh reads `User <user>` as config text in preflight: a newline starts a new option.
        ('    ssh: {user: "root\\nProxyCommand touch /tmp/pwned"}\n',
         "spec.provisioning.ssh.user: must be a POSIX user name (lowercase letters, digits, '_' "
         "and '-', at most 32, not starting with a digit or '-') such as deploy "
         "(got 'root\\nProxyCommand touch /tmp/pwned')"),
        # chrony.conf gets one `server <name> iburst` line per entry.
        ('    ntp_servers: ["ntp.example\\ncmdallow all"]\n',
         "spec.provisioning.ntp_servers[0]: must be a host name or IPv4 address such as "
         "ntp.site.example (got 'ntp.example\\ncmdallow all')"),
        ('    registry: "registry.example:5000/\\nx"\n',
         "spec.provisioning.registry: must be a registry [http://|https://]host[:port][/path] such as "
         "registry.site.example:5000 (got 'registry.example:5000/\\nx')"),
        ('    mirror: {url: "http://-mirror.example", keyring_sha256: "' + "0" * 64 + '"}\n',
         "spec.provisioning.mirror.url: must be an http(s) URL such as http://mirror.site.example:8080 "
         "(got 'http://-mirror.example')"),
        # The path reaches Ansible's variables, which Ansible templates: no Jinja.
        ("    ssh: {config_file: \"{{ lookup('pipe', 'id') }}\"}\n",
         "spec.provisioning.ssh.config_file: must be a file path (letters, digits, spaces and "
         ". _ / @ + , = ~ -, not starting with '-' or a space) such as ssh/config (got \"{{ lookup('pipe', 'id') }}\")"),
    ],
    ids=["apt_proxy-pre-invoke", "ssh-user-proxycommand", "ntp-newline", "registry-newline",
         "mirror-host", "config-file-jinja"],
)
def test_a_value_that_would_become_config_text_is_refused(write_site, provisioning, expected):
    path = write_site(EXAMPLE_SITE + PROVISIONING + provisioning)
    result = validate(path)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"{path}:{VALUE_LINE}: {expected}"]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        # k3s takes node-label as key=value, comma-separated: this would add a label.
        ('"hgx-h100-8,ecohash.io/site=other"',
         "spec.skus['hgx-h100-8,ecohash.io/site=other']: key must be a Kubernetes label value"),
        ('"-hgx"', "spec.skus.-hgx: key must be a Kubernetes label value"),
        ("h" * 64, f"spec.skus.{'h' * 64}: key must be a Kubernetes label value"),
    ],
    ids=["comma", "leading-dash", "too-long"],
)
def test_a_sku_key_that_is_not_a_label_value_is_refused(write_site, key, expected):
    path = write_site(EXAMPLE_SITE, ("  skus:\n", f"  skus:\n    {key}: {{gpu: h100-sxm, gpus: 8, host_w: 1}}\n"))
    result = validate(path)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{path}:{SKU_LINE}: {expected} (at most 63 characters: letters, digits, ")


def test_a_gpu_model_key_that_is_not_a_label_value_is_refused(write_site):
    path = write_site(EXAMPLE_SITE, ("h100-sxm: {tdp_w: 700, min_cap_w: 200}",
                                     "h100-sxm: {tdp_w: 700, min_cap_w: 200}\n    'a b': {tdp_w: 1, min_cap_w: 1}"))
    result = validate(path)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{path}:15: spec.gpu_models['a b']: key must be a Kubernetes label value")


def test_valid_strings_still_load(write_site):
    site = load_site(write_site(EXAMPLE_SITE + PROVISIONING + (
        "    ssh: {user: ansible_deploy-2, config_file: ../ssh dir/odessa.conf}\n"
        "    apt_proxy: http://10.20.0.5:3142\n"
        "    mirror: {url: 'https://mirror.odessa.example/ecohash/2026.11_a~b/', keyring_sha256: '"
        + "0" * 64 + "'}\n"
        "    registry: registry.odessa.example:5000/mirror\n"
        "    ntp_servers: [10.20.0.1, ntp.odessa.example, time-1.example]\n"
    )))
    provisioning = site.provisioning
    assert provisioning.ssh.user == "ansible_deploy-2"
    assert provisioning.mirror.url == "https://mirror.odessa.example/ecohash/2026.11_a~b"
    assert provisioning.ntp_servers == ["10.20.0.1", "ntp.odessa.example", "time-1.example"]


def test_the_schema_carries_the_same_patterns():
    definitions = site_json_schema()["$defs"]
    assert definitions["Ssh"]["properties"]["user"]["pattern"] == "^[a-z_][a-z0-9_-]{0,31}$"
    skus = definitions["Spec"]["properties"]["skus"]
    assert skus["propertyNames"]["pattern"] == "^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
