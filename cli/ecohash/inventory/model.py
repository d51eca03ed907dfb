"""The site inventory format, as typed models: one class per concept.

These classes are the single definition of the format. The loader validates files
with them, `ecohash schema` prints their JSON Schema, and docs/inventory.md is
generated from their descriptions.
"""

from __future__ import annotations

import re
import socket
from decimal import Decimal
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

API_VERSION = "ecohash.io/v1"
# The most nodes a site may have, counted from the file before anything is expanded, so
# that neither a typo in one `count` nor a small file of many large counts (or of YAML
# aliases repeating entries) can make validation allocate millions of nodes. Twice the
# largest site the benchmarks run (50,000 nodes, docs/benchmarks.md) and far above any
# real site: at 10 kW a node it is a gigawatt.
MAX_SITE_NODES = 100_000
KIND = "Site"

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_LABEL_RULE = "lowercase letters, digits and '-', at most 63, starting and ending alphanumeric"


def _exact_number(value: Any) -> Decimal:
    # bool is an int in Python; `grid_mw: yes` is a mistake, not 1 MW.
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        raise PydanticCustomError("number_type", "must be a number")
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise PydanticCustomError("number_finite", "must be a finite number")
    return number


def _dns_label(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be a string")
    if not _DNS_LABEL.fullmatch(value):
        raise PydanticCustomError("dns_label", f"must be a DNS label ({DNS_LABEL_RULE})")
    return value


def _ipv4_address(value: Any) -> IPv4Address:
    if isinstance(value, IPv4Address):
        return value
    if isinstance(value, str):
        # inet_pton is ~20x faster than ipaddress's parser on large sites; anything it
        # accepts in a non-canonical spelling goes to ipaddress, so the rules stay its own.
        try:
            packed = socket.inet_pton(socket.AF_INET, value)
            if socket.inet_ntop(socket.AF_INET, packed) == value:
                return IPv4Address(int.from_bytes(packed, "big"))
        except OSError:
            pass
        try:
            return IPv4Address(value)
        except ValueError:
            pass
    raise PydanticCustomError("ipv4_address", "must be an IPv4 address such as 10.20.1.11")


def _ipv4_network(value: Any) -> IPv4Network:
    if isinstance(value, IPv4Network):
        return value
    if not isinstance(value, str) or "/" not in value:
        raise PydanticCustomError("ipv4_network", "must be an IPv4 CIDR such as 10.20.0.0/20")
    try:
        return IPv4Network(value)
    except ValueError as error:
        if "host bits set" in str(error):
            network = IPv4Network(value, strict=False)
            raise PydanticCustomError(
                "ipv4_network", "has host bits set; did you mean {suggestion}?",
                {"suggestion": str(network)},
            ) from None
        raise PydanticCustomError(
            "ipv4_network", "must be an IPv4 CIDR such as 10.20.0.0/20"
        ) from None


# A before-validator (not a plain one) so pydantic's own decimal checks still apply the
# gt/ge/lt bounds given with Field(); SchemaGenerator writes these as JSON numbers.
Number = Annotated[Decimal, BeforeValidator(_exact_number)]
DnsLabel = Annotated[
    str, PlainValidator(_dns_label),
    WithJsonSchema({"type": "string", "pattern": f"^{_DNS_LABEL.pattern}$", "maxLength": 63}),
]
Ipv4 = Annotated[
    IPv4Address, PlainValidator(_ipv4_address), WithJsonSchema({"type": "string", "format": "ipv4"})
]
Cidr = Annotated[
    IPv4Network, PlainValidator(_ipv4_network),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$"}),
]
Watts = Annotated[int, Field(strict=True, gt=0)]


# --- Strings that leave the site file ------------------------------------------------------
# A site file is data. Every string that reaches a node's config file (apt.conf, chrony.conf,
# containerd's hosts.toml, k3s's config), a command line, ssh, Ansible's variables (which
# Ansible templates: no '{') or a Kubernetes label is held here to the narrowest pattern its
# target accepts, so that no value can close a quote, start a new line or add an option.
# Each pattern is written once; the types below, the JSON Schema and the docs use it.
PATTERN_NAMES: dict[str, str] = {}  # JSON Schema pattern -> what docs/inventory.md calls it


def _string(pattern: re.Pattern[str], rule: str, example: str) -> tuple[PlainValidator, WithJsonSchema]:
    """A string type's validator and schema, from one pattern; messages say `rule`."""
    must = f"must be {rule} such as {example}"

    def check(value: Any) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise PydanticCustomError("pattern", must)
        return value.rstrip("/") if pattern is _URL else value

    schema_pattern = f"^{pattern.pattern}$"
    PATTERN_NAMES[schema_pattern] = re.sub(r"^an? | \(.*\)$", "", rule)
    return PlainValidator(check), WithJsonSchema({"type": "string", "pattern": schema_pattern})


# RFC 1123 host names; a dotted IPv4 address is one too. Sites are IPv4 (mgmt_cidr).
_HOST_LABEL = r"[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
_HOST = rf"{_HOST_LABEL}(\.{_HOST_LABEL})*"
_PORT = r"(:[0-9]{1,5})?"
_HOST_NAME = re.compile(_HOST)
# Paths of unreserved characters, '%' escapes and '+' (Debian versions): no quote, no ';',
# no space, nothing apt.conf, a shell or a TOML string would read as syntax.
_URL = re.compile(rf"https?://{_HOST}{_PORT}(/[A-Za-z0-9._~%+-]*)*")
# A site registry speaks https unless written http:// (one on the site's own network often has no TLS).
_REGISTRY = re.compile(rf"(https?://)?{_HOST}{_PORT}(/[a-z0-9._-]+)*")
# shadow-utils' default NAME_REGEX (without the Samba machine-account '$') and useradd's 32.
_POSIX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
# What Kubernetes accepts as a label value (and k3s as one item of node-label), not empty.
_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_LABEL_VALUE_RULE = ("at most 63 characters: letters, digits, '-', '_' and '.', starting and "
                     "ending alphanumeric")
# File names the site file gives, relative to it; they reach `ssh -F` and Ansible's variables.
_FILE_PATH = re.compile(r"[A-Za-z0-9._/@+,=~][A-Za-z0-9._/@+,=~ -]*")
# The name nvidia-smi prints ("NVIDIA GeForce RTX 4090", "NVIDIA A100-SXM4-80GB").
_GPU_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._()/-]*")
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
# A directory on the executor: it reaches the remote command ssh runs, so only plain
# absolute paths (no space, quote, '$', '~' or shell syntax; no '..').
_ABSOLUTE_DIR = re.compile(r"(/(?!\.\.?(/|$))[A-Za-z0-9._+-]+)+")
_SHA256 = re.compile(r"[0-9a-f]{64}")

PATTERN_NAMES[f"^{_DNS_LABEL.pattern}$"] = "DNS label"
Url = Annotated[str, *_string(_URL, "an http(s) URL", "http://mirror.site.example:8080")]
Registry = Annotated[
    str, *_string(_REGISTRY, "a registry [http://|https://]host[:port][/path]", "registry.site.example:5000")
]
HostName = Annotated[str, *_string(_HOST_NAME, "a host name or IPv4 address", "ntp.site.example")]
PosixUser = Annotated[str, *_string(
    _POSIX_USER, "a POSIX user name (lowercase letters, digits, '_' and '-', at most 32, not "
    "starting with a digit or '-')", "deploy",
)]
LabelValue = Annotated[
    str, *_string(_LABEL_VALUE, f"a Kubernetes label value ({_LABEL_VALUE_RULE})", "hgx-h100-8")
]
FilePath = Annotated[str, *_string(
    _FILE_PATH, "a file path (letters, digits, spaces and . _ / @ + , = ~ -, not starting with "
    "'-' or a space)", "ssh/config",
)]
GpuName = Annotated[str, *_string(
    _GPU_NAME, "a GPU name as nvidia-smi prints it (letters, digits, spaces and . _ ( ) / -)",
    "'NVIDIA H100 80GB HBM3'",
)]
ModelId = Annotated[str, *_string(_MODEL_ID, "a model id", "meta-llama/Llama-3.1-8B-Instruct")]
SecretKey = Annotated[str, *_string(_SECRET_KEY, "a Secret data key", "token")]
AbsoluteDir = Annotated[str, *_string(
    _ABSOLUTE_DIR, "an absolute directory path (letters, digits and . _ + - between '/', no '..')",
    "/opt/ecohash/executor/bin",
)]
Sha256 = Annotated[
    str, *_string(_SHA256, "a sha256 in lowercase hex", "'e3b0c442...' (64 characters)")
]


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt key must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=False)


class Metadata(_Strict):
    name: DnsLabel = Field(description="The site's name: a DNS label, unique across the fleet.")
    region: str | None = Field(None, description="Free-form region, for grouping sites.")
    description: str | None = Field(None, description="What this site is, for people.")


# The keys of a curtailment program that give its target; exactly one is given.
PROGRAM_TARGETS = ("to_mw", "by_mw", "by_pct")


_HH_MM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
LocalTime = Annotated[str, *_string(_HH_MM, "a local time HH:MM (24-hour)", "15:00")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _time_zone(value: Any) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    # ZoneInfo also takes relative paths into the tz database: only plain IANA names here.
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*", value):
        raise PydanticCustomError("time_zone", "must be an IANA time zone such as America/Chicago")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError("time_zone", "is not a time zone this machine knows "
                                  "(IANA names such as America/Chicago)") from None
    return value


TimeZone = Annotated[
    str, PlainValidator(_time_zone), WithJsonSchema({"type": "string", "examples": ["America/Chicago"]}),
]


class _OneSource(_Strict):
    """A document ecohash reads, from exactly one of a file and a URL."""

    file: FilePath | None = Field(None, description="A file on the site controller (relative to "
                                  "the site file). Exactly one of file and url.")
    url: Url | None = Field(None, description="An http(s) URL the site controller fetches.")

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["file"]}, {"required": ["url"]}]})

    @model_validator(mode="after")
    def _one_source(self) -> _OneSource:
        if (self.file is None) == (self.url is None):
            raise PydanticCustomError("one_source", "needs exactly one of file and url")
        return self


class ScheduleWindow(_Strict):
    """When a scheduled program curtails: local times on chosen months and weekdays (4CP season)."""

    months: list[Annotated[int, Field(strict=True, ge=1, le=12)]] = Field(
        default_factory=lambda: list(range(1, 13)), min_length=1,
        description="Months the window applies in, 1-12; default every month (4CP: [6, 7, 8, 9]).",
    )
    weekdays: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS), min_length=1,
        description="Days the window applies on (mon ... sun); default every day.",
    )
    start: LocalTime = Field(description="Local start time, HH:MM.")
    end: LocalTime = Field(description="Local end time, HH:MM, after start (windows do not "
                           "cross midnight).")
    timezone: TimeZone = Field(description="The IANA time zone start and end are in "
                               "(ERCOT: America/Chicago).")

    @model_validator(mode="after")
    def _end_after_start(self) -> ScheduleWindow:
        if self.end <= self.start:
            raise PydanticCustomError("window_end", "end ({end}) must be after start ({start})",
                                      {"end": self.end, "start": self.start})
        return self


class PeakAlert(_OneSource):
    """A document that says whether a peak is likely today; windows act only on days it says so.

    The document is JSON `{"date": "YYYY-MM-DD", "peak_likely": true|false}`; a date other
    than today in the window's time zone counts as no alert.
    """


class PriceTrigger(_OneSource):
    """Real-time price: curtail while the price stays above a strike for enough intervals.

    The document is JSON `{"intervals": [{"start": ISO 8601, "end": ISO 8601, "price": number}]}`
    in the market's currency per MWh.
    """

    strike: Number = Field(description="The price above which the site curtails, per MWh.")
    intervals: int = Field(1, strict=True, ge=1, le=288, description="Consecutive intervals "
                           "above the strike before acting (Foreman-style 5-minute windows).")


class CurtailmentProgram(_Strict):
    """A grid program the site answers by lowering GPU caps (ERS, 4CP, a utility's DR contract)."""

    name: DnsLabel = Field(description="The program's name, unique within the site: "
                           "`ecohash curtail start SITE --program NAME`.")
    to_mw: Number | None = Field(
        None, gt=0, description="Target: facility draw at the meter, MW. Exactly one of to_mw, "
        "by_mw and by_pct.",
    )
    by_mw: Number | None = Field(
        None, gt=0, description="Target: this many MW below the planned facility draw.",
    )
    by_pct: Number | None = Field(
        None, gt=0, lt=100, description="Target: this percentage below the planned facility draw.",
    )
    max_hours: Number | None = Field(
        None, gt=0, description="How long an event lasts (and the longest `--for` may ask); "
        "default until released.",
    )
    restore_minutes: Number | None = Field(
        None, ge=0, description="The release ramp: planned caps are restored in steps over this "
        "long; default at once.",
    )
    windows: list[ScheduleWindow] = Field(
        default_factory=list, description="Scheduled windows `ecohash grid watch` curtails in "
        "(4CP afternoons); with `alert`, only on days it says a peak is likely.",
    )
    alert: PeakAlert | None = Field(None, description="Where `ecohash grid watch` reads whether "
                                    "a peak is likely today (needs windows).")
    price: PriceTrigger | None = Field(None, description="A price trigger `ecohash grid watch` "
                                       "follows.")

    model_config = ConfigDict(json_schema_extra={
        "oneOf": [{"required": [key]} for key in PROGRAM_TARGETS],
    })

    @model_validator(mode="after")
    def _one_target(self) -> CurtailmentProgram:
        given = [key for key in PROGRAM_TARGETS if getattr(self, key) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "program_target", "needs exactly one of to_mw, by_mw or by_pct (got {given})",
                {"given": ", ".join(given) or "none"},
            )
        if self.alert is not None and not self.windows:
            raise PydanticCustomError("program_alert", "an alert needs windows to act in")
        return self


VenName = Annotated[str, *_string(re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"),
                                  "a VEN name (letters, digits, '.', '_' and '-', at most 128)", "tx-odessa")]
# OpenADR 2.0b SIMPLE levels when the site maps none: level n cuts by DEFAULT_LEVEL_PCT[n] %.
DEFAULT_LEVEL_PCT = {1: 10, 2: 20, 3: 30}


class OpenAdr(_Strict):
    """The site's OpenADR 2.0b VEN: `ecohash grid watch` registers with this VTN (docs/grid-watch.md)."""

    vtn_url: Url = Field(
        description="The VTN's base URL, e.g. https://vtn.utility.example/OpenADR2/Simple/2.0b. `grid "
        "watch` follows only an https VTN pinned by ca_file or vtn_fingerprint, unless --insecure-vtn.",
    )
    ven_name: VenName = Field(description="The name this site registers under.")
    cert: FilePath | None = Field(None, description="The VEN's PEM certificate (relative to the "
                                  "site file); with key, messages are signed.")
    key: FilePath | None = Field(None, description="The VEN's PEM private key; the file must be "
                                 "readable by its owner only. Its content never enters ecohash's state.")
    vtn_fingerprint: str | None = Field(
        None, pattern=r"^([0-9A-F]{2}:){9}[0-9A-F]{2}$",
        description="The fingerprint of the certificate the VTN signs its messages with, as openleadr "
        "prints it (the last 10 hex pairs of its SHA-256); any answer not signed with it is refused.",
    )
    ca_file: FilePath | None = Field(None, description="The CA bundle that signs the VTN's TLS certificate "
                                     "(relative to the site file); the only CAs trusted for the VTN.")
    levels: dict[Annotated[int, Field(strict=False, ge=1, le=3)], DnsLabel] = Field(
        default_factory=dict, description="SIMPLE level (1-3) -> program name; a level not "
        "mapped cuts by 10, 20 or 30% of the planned facility draw.",
    )

    @model_validator(mode="after")
    def _cert_with_key(self) -> OpenAdr:
        if (self.cert is None) != (self.key is None):
            raise PydanticCustomError("openadr_cert", "cert and key go together")
        return self


class Curtailment(_Strict):
    programs: list[CurtailmentProgram] = Field(
        default_factory=list, description="Named programs, each a target `ecohash curtail "
        "start --program` cuts to (docs/grid.md).",
    )
    openadr: OpenAdr | None = Field(None, description="The OpenADR 2.0b VTN the site listens to "
                                    "(`ecohash grid watch`).")


class Power(_Strict):
    grid_mw: Number = Field(gt=0, description="Contracted grid capacity, in MW.")
    reserve_pct: Number = Field(
        0, ge=0, lt=100, validate_default=True,
        description="Percentage of grid_mw held back (other loads, contract margin).",
    )
    pue: Number = Field(
        ge=1, description="Design-point power usage effectiveness: facility power / IT power."
    )
    curtailment: Curtailment = Field(
        default_factory=Curtailment, description="Grid programs the site curtails for.",
    )


class Network(_Strict):
    mgmt_cidr: Cidr = Field(description="The management network; every node's mgmt_ip is in it.")


class GpuModelFields(_Strict):
    """A GPU model as a site may give it: any field overrides the built-in entry's."""

    product: str | None = Field(None, description="Marketing name, for people.")
    nvidia_smi_name: GpuName | None = Field(
        None, description="The name `nvidia-smi --query-gpu=name` prints for this GPU."
    )
    memory_gib: Annotated[int, Field(strict=True, gt=0)] | None = Field(
        None, description="GPU memory in GiB."
    )
    tdp_w: Watts | None = Field(None, description="Default board power limit, W: the starting cap.")
    min_cap_w: Watts | None = Field(
        None, description="Lowest power limit the driver accepts (`nvidia-smi -q` Min Power Limit)."
    )
    max_cap_w: Watts | None = Field(
        None, description="Highest power limit the driver accepts; defaults to tdp_w."
    )
    source: str | None = Field(None, description="Where the figures come from.")


class GpuModel(GpuModelFields):
    """A complete GPU model, after a site's fields are merged over the built-in catalog."""

    tdp_w: Watts
    min_cap_w: Watts


class SkuFields(_Strict):
    """A node SKU as a site may give it: any field overrides the built-in entry's."""

    product: str | None = Field(None, description="Marketing name, for people.")
    gpu: str | None = Field(None, description="GPU model key; omitted for CPU-only nodes.")
    gpus: Annotated[int, Field(strict=True, ge=0)] | None = Field(
        None, description="GPUs in one node (0 for a CPU-only node)."
    )
    host_w: Annotated[int, Field(strict=True, ge=0)] | None = Field(
        None, description="What the node draws besides its GPUs at full load, W."
    )
    source: str | None = Field(None, description="Where the figures come from.")


class Sku(SkuFields):
    """A complete node SKU, after a site's fields are merged over the built-in catalog."""

    gpus: Annotated[int, Field(strict=True, ge=0)]
    host_w: Annotated[int, Field(strict=True, ge=0)]


class Kubernetes(_Strict):
    distribution: Literal["k3s", "rke2"] = Field("k3s", description="Kubernetes distribution.")
    servers: list[DnsLabel] = Field(
        min_length=1, description="Nodes that run the control plane; all others are agents."
    )
    kubeconfig: FilePath | None = Field(
        None, description="The cluster's kubeconfig, relative to the site file; default "
        "<state dir>/secrets/<site>/kubeconfig. Only `ecohash apply` reads it.",
    )


class NodeEntry(_Strict):
    name: str = Field(
        description="Node name (a DNS label); with `count`, a template holding {i} or {i:02d}."
    )
    sku: str = Field(description="Node SKU key, from spec.skus or the built-in catalog.")
    mgmt_ip: Ipv4 = Field(description="Management IP; with `count`, the first of consecutive IPs.")
    count: Annotated[int, Field(strict=True, ge=1, le=MAX_SITE_NODES)] | None = Field(
        None, description="Expand this entry into `count` nodes."
    )
    start: Annotated[int, Field(strict=True, ge=0)] = Field(
        1, description="First value of i when `count` is given."
    )


class Rack(_Strict):
    name: DnsLabel = Field(description="Rack name, unique within its container.")
    power_kw: Number | None = Field(None, gt=0, description="Rack or PDU limit, kW.")
    nodes: list[NodeEntry] = Field(default_factory=list, description="Nodes in the rack.")


class Container(_Strict):
    name: DnsLabel = Field(description="Container name, unique within the site.")
    cooling: Literal["air", "hydro", "immersion"] = Field(description="How the container is cooled.")
    power_kw: Number = Field(gt=0, description="Electrical limit of the container, kW.")
    cooling_kw: Number = Field(gt=0, description="Heat the container rejects at design ambient, kW.")
    flex: Annotated[int, Field(strict=True, ge=0, le=3)] = Field(
        1, description="How readily its GPUs give power back in a curtailment: 3 first, then 2, "
        "then 1; 0 never below its planned caps (docs/grid.md).",
    )
    racks: list[Rack] = Field(default_factory=list, description="Racks in the container.")


_BATCH = re.compile(r"[1-9][0-9]*%?")
_BATCH_SCHEMA = {"oneOf": [{"type": "integer", "minimum": 1},
                           {"type": "string", "pattern": f"^{_BATCH.pattern}$"}]}
_BATCH_RULE = "a number of hosts (>= 1) or a percentage such as 10%"


def parse_batch(value: Any) -> int | str:
    """One batch size as Ansible's serial takes it: hosts (int) or a percentage ("10%")."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and _BATCH.fullmatch(value):
        return int(value) if value.isdigit() else value
    raise PydanticCustomError("batch", f"must be {_BATCH_RULE}, or a list of them")


def _serial(value: Any) -> int | str | list[int | str]:
    # One validator for the whole union, so a mistake gets one message, not one per branch.
    if isinstance(value, list):
        if not value:
            raise PydanticCustomError("batch", "must list at least one batch size")
        batches = []
        for item in value:
            try:
                batches.append(parse_batch(item))
            except PydanticCustomError:
                raise PydanticCustomError(
                    "batch", f"each batch must be {_BATCH_RULE}; {item!r} is not"
                ) from None
        return batches
    return parse_batch(value)


# Ansible's `serial`: a host count, a percentage of the play's hosts, or a list of them.
Serial = Annotated[
    int | str | list[int | str], PlainValidator(_serial),
    WithJsonSchema({"oneOf": [*_BATCH_SCHEMA["oneOf"],
                              {"type": "array", "minItems": 1, "items": _BATCH_SCHEMA}]}),
]


class Ssh(_Strict):
    user: PosixUser = Field(
        "root", description="User Ansible logs in as; not root means become root with sudo."
    )
    port: Annotated[int, Field(strict=True, ge=1, le=65535)] = Field(22, description="SSH port.")
    config_file: FilePath | None = Field(
        None, description="An ssh_config file (`ssh -F`), relative to the site file: jump hosts, "
        "keys, known_hosts. Host keys are always checked.",
    )


# Where `roles/executor` installs ansible-runner and where provision looks for it: one value.
DEFAULT_EXECUTOR_PATH = "/opt/ecohash/executor/bin"


class Executor(_Strict):
    host: HostName = Field(
        description="The machine on the site's network that runs each wave's Ansible "
        "(site-local execution): one of the site's node names, an IPv4 address in "
        "network.mgmt_cidr, or a fully qualified host name. Its host key must be in the site's "
        "known_hosts, like any node's.",
    )
    user: PosixUser | None = Field(None, description="User to log in as; default provisioning.ssh.user.")
    port: Annotated[int, Field(strict=True, ge=1, le=65535)] | None = Field(
        None, description="SSH port; default provisioning.ssh.port.",
    )
    path: AbsoluteDir = Field(
        DEFAULT_EXECUTOR_PATH, description="The directory holding ansible-runner and "
        "ansible-playbook on the executor; the executor role installs them there.",
    )


class Mirror(_Strict):
    url: Url = Field(
        description="The site mirror: a signed apt repository at URL/apt and artifacts at "
        "URL/files. When set it replaces every upstream source of the node standard.",
    )
    keyring_sha256: Sha256 = Field(
        description="sha256 of the mirror's signing keyring, served at URL/keys/site-mirror.gpg; "
        "nodes refuse any other key.",
    )
    only: bool = Field(
        False, description="The mirror is the nodes' only apt source, for a site with no route to "
        "upstream archives: it must then carry the OS packages the roles install, as a bundle "
        "built for the nodes' OS does (`ecohash bundle build`).",
    )


class Rollout(_Strict):
    serial: Serial = Field(
        "10%", description="Nodes per batch: a count, a percentage, or a list of them for "
        "growing batches (e.g. [1, 10%, 25%]). Unreachable nodes are set aside before batching.",
    )
    max_fail_percentage: Annotated[int, Field(strict=True, ge=0, le=100)] = Field(
        25, description="Stop the rollout when more than this % of a batch fails.",
    )


class Provisioning(_Strict):
    ssh: Ssh = Field(default_factory=Ssh, description="How Ansible reaches the nodes.")
    executor: Executor | None = Field(
        None, description="Run provision's and drift's Ansible on this machine on the site's "
        "network instead of the controller, streaming the events back over SSH; default: here.",
    )
    apt_proxy: Url | None = Field(
        None, description="HTTP proxy for the nodes' OS packages (an apt caching proxy).",
    )
    mirror: Mirror | None = Field(None, description="The site mirror, for offline installs.")
    registry: Registry | None = Field(
        None, description="Site container registry that inference images are pre-pulled from "
        "and that nodes pull upstream images through; https unless written http://.",
    )
    ntp_servers: list[HostName] = Field(
        default_factory=list, description="Time servers; empty means the OS's default pool.",
    )
    standard: FilePath | None = Field(
        None, description="The node-standard lock file, relative to the site file; default "
        "the repository's node-standard.lock.yml.",
    )
    rollout: Rollout = Field(default_factory=Rollout, description="Batching of node rollouts.")


Count = Annotated[int, Field(strict=True, ge=1)]


class Replicas(_Strict):
    min: Count = Field(1, description="Replicas always kept in each container the service runs in.")
    max: Count = Field(1, description="Most replicas the autoscaler may run in each container.")


class Placement(_Strict):
    containers: list[DnsLabel] | None = Field(
        None, min_length=1, description="Containers the service runs in; default every container "
        "with a node of its GPU model that holds a replica.",
    )
    skus: list[str] | None = Field(
        None, min_length=1, description="Only nodes of these SKUs; default any SKU of the GPU model.",
    )


class SecretRef(_Strict):
    name: DnsLabel = Field(description="Name of a Kubernetes Secret in each namespace the service runs in.")
    key: SecretKey = Field("token", description="The key in the Secret holding the value.")


class Autoscaling(_Strict):
    queue_depth: Count = Field(
        4, description="Requests waiting per replica (vLLM's num_requests_waiting) the autoscaler "
        "keeps below by adding replicas, up to replicas.max.",
    )


class InferenceService(_Strict):
    name: DnsLabel = Field(description="Service name, unique within the site.")
    model: ModelId = Field(description="The model vLLM serves: a Hugging Face id.")
    served_model_name: ModelId | None = Field(
        None, description="The name clients ask for; default the model id.",
    )
    gpu_model: str = Field(description="GPU model key the service is sized for.")
    gpus_per_replica: Count = Field(
        description="GPUs in one replica (vLLM tensor parallel size); must fit on one node.",
    )
    replicas: Replicas = Field(default_factory=Replicas, description="Replica bounds per container.")
    placement: Placement = Field(default_factory=Placement, description="Where the service may run.")
    max_model_len: Count | None = Field(None, description="vLLM --max-model-len; default the model's.")
    token_secret: SecretRef | None = Field(
        None, description="The Secret holding the model hub token (HF_TOKEN); the value never "
        "appears in the inventory, the stack or its state.",
    )
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, description="Scaling on queue depth.")
    load_timeout_s: Annotated[int, Field(strict=True, ge=60, le=7200)] = Field(
        1800, description="How long a replica may take to download and load the model before "
        "Kubernetes restarts it.",
    )
    shm_gib: Annotated[int, Field(strict=True, ge=1, le=512)] = Field(
        16, description="Size of the memory-backed /dev/shm (NCCL between a replica's GPUs).",
    )
    memory_gib_per_gpu: Annotated[int, Field(strict=True, ge=1, le=2048)] = Field(
        32, description="Host memory per GPU of a replica (request and limit), besides /dev/shm.",
    )
    cpus_per_gpu: Annotated[int, Field(strict=True, ge=1, le=256)] = Field(
        4, description="CPU cores requested per GPU of a replica.",
    )


class Spec(_Strict):
    power: Power = Field(description="The grid connection and PUE: the site's IT budget.")
    network: Network = Field(description="The management network.")
    gpu_models: dict[LabelValue, GpuModelFields] = Field(
        default_factory=dict, description="GPU models merged over the built-in catalog; nodes "
        "are labelled with the key.",
        # pydantic writes only patternProperties, which lets any other key through.
        json_schema_extra={"propertyNames": {"pattern": f"^{_LABEL_VALUE.pattern}$"}},
    )
    skus: dict[LabelValue, SkuFields] = Field(
        default_factory=dict, description="Node SKUs merged over the built-in catalog; nodes "
        "are labelled with the key.",
        # pydantic writes only patternProperties, which lets any other key through.
        json_schema_extra={"propertyNames": {"pattern": f"^{_LABEL_VALUE.pattern}$"}},
    )
    kubernetes: Kubernetes | None = Field(None, description="The site's Kubernetes cluster.")
    containers: list[Container] = Field(min_length=1, description="The modular GPU containers.")
    provisioning: Provisioning = Field(
        default_factory=Provisioning, description="How nodes are reached and where they install from."
    )
    services: list[InferenceService] = Field(
        default_factory=list, description="Inference services the site's cluster serves.",
    )


class SiteFile(_Strict):
    """A site inventory file: everything ecohash knows about one site."""

    api_version: Literal["ecohash.io/v1"] = Field(
        alias="apiVersion", description="Format version of the file."
    )
    kind: Literal["Site"] = Field(description="Always `Site`.")
    metadata: Metadata = Field(description="Who the site is.")
    spec: Spec = Field(description="What the site has.")


_BOUND_KEYWORDS = (("gt", "exclusiveMinimum"), ("ge", "minimum"), ("lt", "exclusiveMaximum"),
                   ("le", "maximum"))


def _json_number(value: Any) -> int | float:
    number = Decimal(value)
    return int(number) if number == number.to_integral() else float(number)


class SchemaGenerator(GenerateJsonSchema):
    """JSON Schema for site files: exact decimals are plain JSON numbers with their bounds."""

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        json_schema: JsonSchemaValue = {"type": "number"}
        for bound, keyword in _BOUND_KEYWORDS:
            if bound in schema:
                json_schema[keyword] = _json_number(schema[bound])  # type: ignore[literal-required]
        return json_schema

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        # An optional number's bounds reach pydantic as its own names (gt, ge...), which JSON
        # Schema does not know: an editor would accept `power_kw: 0` on a rack.
        json_schema = super().nullable_schema(schema)
        for member in json_schema.get("anyOf", []):
            if member.get("type") == "number":
                for bound, keyword in _BOUND_KEYWORDS:
                    if bound in member:
                        member[keyword] = _json_number(member.pop(bound))
        return json_schema


def site_json_schema() -> dict[str, Any]:
    """The JSON Schema of a site file, for editors and for the docs."""
    schema = SiteFile.model_json_schema(by_alias=True, schema_generator=SchemaGenerator)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://ecohash.io/schemas/site-v1.json",
        **schema,
    }
