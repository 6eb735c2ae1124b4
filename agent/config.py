"""Agent configuration: one TOML file plus ``KASSA_*`` environment overrides.

The file is read and validated as a whole before anything starts, so a bad file
never leaves the agent half-configured. Environment variables win over the file
(``KASSA_MQTT__PORT=1884`` overrides ``[mqtt] port``), which is how systemd
drop-ins, containers and tests adjust one value without editing the file.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG_PATH = Path("/etc/kassa/agent.toml")
ENV_PREFIX = "KASSA_"
ENV_NESTED_DELIMITER = "__"
# Device ids end up in MQTT topics and broker usernames: keep them to a safe charset.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class ConfigError(Exception):
    """The configuration cannot be used. ``str()`` is the whole message for the operator."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PathsConfig(_Section):
    state_dir: Path = Field(Path("/var/lib/kassa"), description="Persistent state: the store, keys.")
    run_dir: Path = Field(Path("/run/kassa"), description="Runtime files: the control socket.")

    @property
    def store_path(self) -> Path:
        return self.state_dir / "agent.db"

    @property
    def control_socket(self) -> Path:
        return self.run_dir / "control.sock"


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Least severe level written. `--verbose` forces debug."
    )
    format: Literal["text", "json"] = Field(
        "text", description="`text`: one key=value line per event; `json`: one JSON object per line."
    )


class MqttConfig(_Section):
    host: str = Field("127.0.0.1", description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker TCP port.")
    username: str | None = Field(None, description="Broker user name; defaults to the device id.")
    password: SecretStr | None = Field(None, description="Broker password (never logged).")
    tls: bool = Field(False, description="Connect with TLS.")
    ca_file: Path | None = Field(None, description="CA bundle that signed the broker certificate.")
    cert_file: Path | None = Field(None, description="Client certificate for mutual TLS.")
    key_file: Path | None = Field(None, description="Private key of the client certificate (mode 0600).")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive in seconds.")
    session_expiry_s: int = Field(
        7 * 24 * 3600, ge=0, description="How long the broker keeps the session while offline."
    )
    max_inflight: int = Field(64, ge=1, le=65535, description="Bound on QoS 1 publishes the broker has not PUBACKed.")
    ack_window: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Bound on outbox messages published but not yet acked by the cloud (memory stays bounded by it).",
    )
    reconnect_min_s: float = Field(0.5, gt=0, description="First reconnect delay (jittered).")
    reconnect_max_s: float = Field(30.0, gt=0, description="Cap on the reconnect delay.")
    ack_timeout_s: float = Field(
        30.0,
        gt=0,
        description=(
            "Resend an outbox message not acked by the cloud within this time; each further resend of the same message "
            "waits twice as long, up to 8 times this (jittered)."
        ),
    )
    batch_max_messages: int = Field(
        50,
        ge=1,
        le=500,
        description=(
            "A backlog is sent up to this many outbox messages per publish (`up/batch`); 1 sends every message alone."
        ),
    )
    batch_max_bytes: int = Field(
        64 * 1024, ge=1024, le=256 * 1024, description="Size bound of one `up/batch` publish in bytes."
    )


class ControlConfig(_Section):
    admin_group: str = Field("kassa-admin", description="Group whose members may call changing control-socket methods.")
    read_group: str = Field("kassa", description="Group whose members may call read-only methods.")


DEVICE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
DeviceOption = str | int | float | bool


class PrinterConfig(_Section):
    name: str = Field(..., pattern=DEVICE_NAME_PATTERN, description="Short name used by kassactl and the POS API.")
    url: str = Field(
        ...,
        description=(
            "How to reach it: `tcp://host:9100`, `usb://04b8:0202?serial=X`, `serial:///dev/ttyS0?baudrate=19200`, "
            "`file:///dev/usb/lp0`."
        ),
    )
    options: dict[str, DeviceOption] = Field(
        default_factory=dict, description="Driver options (profile, write_timeout, ...); see docs/drivers.md."
    )


class ScannerConfig(_Section):
    name: str = Field(..., pattern=DEVICE_NAME_PATTERN, description="Short name.")
    url: str = Field(..., description="`serial:///dev/ttyACM0?suffix=%0D` or `hid:///dev/input/by-id/...?layout=de`.")
    max_length: int = Field(
        4096,
        ge=16,
        le=1048576,
        description=(
            "Longest code accepted, in bytes (serial) or characters (HID); longer input is dropped unbuffered and "
            "reported as a `scan.rejected` event (docs/drivers.md)."
        ),
    )
    options: dict[str, DeviceOption] = Field(default_factory=dict, description="Driver options; see docs/drivers.md.")

    @model_validator(mode="after")
    def _max_length_is_a_key(self) -> ScannerConfig:
        # the key always has a value and wins: one given elsewhere would be silently ignored
        if "max_length" in self.options or re.search(r"[?&]max_length=", self.url):
            raise ValueError(
                f"scanner '{self.name}': set max_length as a key of its [[scanners]] table, not in the url or options"
            )
        return self


class DrawerConfig(_Section):
    name: str = Field(..., pattern=DEVICE_NAME_PATTERN, description="Short name.")
    url: str = Field(
        "printer:?pin=2", description="`printer:?pin=2` (kicked through a printer) or `serial:///dev/ttyS1`."
    )
    printer: str | None = Field(None, description="For `printer:` drawers: the name of the printer it hangs on.")
    sensor_poll_s: float = Field(
        0.5,
        gt=0,
        le=60,
        description=(
            "While the drawer stands open, how often its sensor is read; when it is pushed shut a `drawer.closed` "
            "event follows (drawers without a sensor are not polled)."
        ),
    )
    options: dict[str, DeviceOption] = Field(default_factory=dict, description="Driver options (on_ms, settle_s, ...).")


class HardwareConfig(_Section):
    receipt_printer: str | None = Field(None, description="Printer for receipts (default: the first printer).")
    cash_drawer: str | None = Field(None, description="Drawer opened for cash (default: the first drawer).")
    status_poll_s: float = Field(5.0, gt=0, le=300, description="How often printer status is polled while jobs wait.")
    discovery_interval_s: float = Field(
        5.0, ge=0, le=3600, description="How often USB, serial and input devices are enumerated (0: never)."
    )


class SiteConfig(_Section):
    point_of_sale: str | None = Field(
        None, description="Point of sale (store) this terminal serves; set by a configuration QR."
    )
    language: str = Field(
        "en",
        pattern=r"^[a-z]{2}(-[A-Z]{2})?$",
        description="Language of receipts, reports, slips and POS API messages, money and dates formatted for it: "
        "`en`, `ru`, `fr`, `de` (a region such as `de-CH` takes its formats); another language prints English. "
        "Applies to the next receipt.",
    )
    scanner: str | None = Field(None, description="Which configured scanner the POS uses for sales (default: all).")
    rooms: list[str] = Field(default_factory=list, description="Rooms / areas this terminal serves (ticketing).")


class TrustConfig(_Section):
    cloud_keys: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Pinned cloud signing keys: key id -> Ed25519 public key (base64url). Configuration QR codes and licence "
            "leases must be signed by one."
        ),
    )

    @field_validator("cloud_keys")
    @classmethod
    def _keys_load(cls, keys: dict[str, str]) -> dict[str, str]:
        from broker.contract.signing import TokenError, load_public_key

        for key_id, text in keys.items():
            try:
                load_public_key(text)
            except (TokenError, ValueError):
                raise ValueError(
                    f"cloud key '{key_id}' is not an Ed25519 public key (43 base64url characters)"
                ) from None
        return keys


class CloudConfig(_Section):
    api_url: str | None = Field(
        None,
        description="Cloud HTTP API the terminal pairs through (`https://...`; `http://` only to a loopback address). "
        "Unset: no pairing, the broker certificate is configured in [mqtt] by hand.",
    )
    ca_file: Path | None = Field(
        None, description="CA bundle that signed the cloud API's HTTPS certificate (default: the system's CAs)."
    )
    timeout_s: float = Field(10.0, gt=0, le=120, description="Timeout of one pairing request.")
    retry_min_s: float = Field(
        1.0, gt=0, le=60, description="First retry delay after a failed pairing request (doubles, jittered)."
    )
    retry_max_s: float = Field(
        300.0,
        gt=0,
        le=3600,
        description="Cap on the pairing retry delay, and on the wait a `Retry-After` from the cloud asks for.",
    )
    certificate_renew_before_days: float = Field(
        30.0,
        gt=0,
        le=3650,
        description=(
            "A paired terminal asks the cloud for a new broker certificate once fewer days than this are left on its "
            "own."
        ),
    )

    @field_validator("api_url")
    @classmethod
    def _secure_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import ipaddress
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be an https:// URL such as https://cloud.example.com")
        try:
            loopback = parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = False
        if parts.scheme == "http" and not loopback:
            # Over plain HTTP anyone on the path could swap the certificate and broker address.
            raise ValueError("must use https:// (http:// is accepted only for a loopback address, for development)")
        return value


class CashiersConfig(_Section):
    lockout_attempts: int = Field(
        5, ge=1, le=100, description="Wrong PINs in a row that lock a cashier on this terminal."
    )
    lockout_s: float = Field(
        300.0, gt=0, le=86400, description="How long a locked cashier must wait before trying again."
    )
    session_timeout_s: float = Field(
        8 * 3600.0,
        gt=0,
        le=7 * 86400,
        description="A cashier session unused this long ends (idle timeout; a shift's breaks fit in the default).",
    )
    check_interval_s: float = Field(
        300.0,
        ge=0,
        le=86400,
        description=(
            "After a printed receipt, ask the cloud whether a newer roster exists at most this often (0: after every "
            "receipt)."
        ),
    )


class PosApiConfig(_Section):
    enabled: bool = Field(True, description="Serve the local POS API (HTTP + WebSocket, docs/pos-api.md).")
    bind: str = Field(
        "127.0.0.1",
        description=(
            "Address the POS API listens on. Anything but a loopback address needs `tls_cert_file` and `tls_key_file`."
        ),
    )
    port: int = Field(8765, ge=0, le=65535, description="TCP port of the POS API (0: any free port, for tests).")
    tls_cert_file: Path | None = Field(None, description="TLS certificate (PEM) for serving the POS API over HTTPS.")
    tls_key_file: Path | None = Field(None, description="Private key (PEM, mode 0600) of `tls_cert_file`.")
    cors_origins: list[str] = Field(
        default_factory=list,
        description=(
            "Web origins (`https://pos.example.com`) whose pages may call the API and open the event WebSocket; empty: "
            "same origin only."
        ),
    )

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", origin) or origin.endswith("/"):
                raise ValueError(
                    f"'{origin}' is not an origin: scheme://host[:port], no path, e.g. http://127.0.0.1:8080"
                )
        return origins

    @model_validator(mode="after")
    def _lan_needs_tls(self) -> PosApiConfig:
        import ipaddress

        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("pos_api: tls_cert_file and tls_key_file go together; set both or neither")
        try:
            loopback = self.bind == "localhost" or ipaddress.ip_address(self.bind).is_loopback
        except ValueError:
            raise ValueError(
                f"pos_api.bind '{self.bind}' is not an IP address (e.g. 127.0.0.1 or 192.168.1.20)"
            ) from None
        if self.enabled and not loopback and self.tls_cert_file is None:
            # Pairing tokens and cashier sessions would cross the LAN in clear text.
            raise ValueError(
                f"pos_api.bind {self.bind} is not a loopback address: set tls_cert_file and tls_key_file to serve it "
                f"over HTTPS"
            )
        return self


class LifecycleConfig(_Section):
    shutdown_timeout_s: float = Field(10.0, gt=0, le=300, description="Upper bound on a clean stop after SIGTERM.")


class AgentConfig(BaseSettings):
    """Everything the agent reads at start. See docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        validate_assignment=True,
    )

    device_id: str = Field(
        ..., pattern=DEVICE_ID_PATTERN, description="This terminal's id (letters, digits, `.`, `_`, `-`)."
    )
    paths: PathsConfig = Field(default_factory=PathsConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    cloud: CloudConfig = Field(default_factory=CloudConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    hardware: HardwareConfig = Field(default_factory=HardwareConfig)
    site: SiteConfig = Field(default_factory=SiteConfig)
    cashiers: CashiersConfig = Field(default_factory=CashiersConfig)
    pos_api: PosApiConfig = Field(default_factory=PosApiConfig)
    trust: TrustConfig = Field(default_factory=TrustConfig)
    printers: list[PrinterConfig] = Field(default_factory=list, description="Receipt printers (`[[printers]]` tables).")
    scanners: list[ScannerConfig] = Field(default_factory=list, description="Barcode scanners (`[[scanners]]` tables).")
    drawers: list[DrawerConfig] = Field(default_factory=list, description="Cash drawers (`[[drawers]]` tables).")

    @field_validator("device_id")
    @classmethod
    def _no_reserved_device_id(cls, value: str) -> str:
        if value in {".", ".."}:
            raise ValueError("'.' and '..' are not device ids")
        from broker.contract.topics import RESERVED_DEVICE_ID_PREFIX, is_reserved_device_id

        if is_reserved_device_id(value):
            raise ValueError(
                f"device ids starting with '{RESERVED_DEVICE_ID_PREFIX}' are reserved for the cloud's broker identities"
            )
        return value

    @model_validator(mode="after")
    def _device_references_resolve(self) -> AgentConfig:
        for kind in ("printers", "scanners", "drawers"):
            names = [d.name for d in getattr(self, kind)]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{kind}: names must be unique, repeated: {', '.join(duplicates)}")
        printers = {p.name for p in self.printers}
        for drawer in self.drawers:
            if drawer.url.startswith("printer:") and drawer.printer not in printers:
                raise ValueError(
                    f"drawer '{drawer.name}' is kicked through printer '{drawer.printer}', which is not configured"
                )
        if self.hardware.receipt_printer is not None and self.hardware.receipt_printer not in printers:
            raise ValueError(f"hardware.receipt_printer '{self.hardware.receipt_printer}' is not a configured printer")
        if self.hardware.cash_drawer is not None and self.hardware.cash_drawer not in {d.name for d in self.drawers}:
            raise ValueError(f"hardware.cash_drawer '{self.hardware.cash_drawer}' is not a configured drawer")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init kwargs; listing env first makes it win.
        return (env_settings, init_settings)


# Keys whose change only takes effect after a restart (SIGHUP reports them).
LIVE_RELOADABLE = frozenset(
    {
        "log.level",
        "log.format",
        "mqtt.ack_timeout_s",
        "mqtt.batch_max_messages",
        "mqtt.batch_max_bytes",
        "site.point_of_sale",
        "site.language",
        "site.scanner",
        "site.rooms",
        "trust.cloud_keys",
        "cashiers.lockout_attempts",
        "cashiers.lockout_s",
        "cashiers.session_timeout_s",
        "cashiers.check_interval_s",
    }
)


def load_config(path: Path | str | None = None, environ: dict[str, str] | None = None) -> AgentConfig:
    """Read, merge and validate the configuration, or raise ConfigError naming the problem."""
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    environ = dict(os.environ if environ is None else environ)
    data = _read_toml(path)
    env_keys = {k for k in environ if k.upper().startswith(ENV_PREFIX)}
    saved = os.environ.copy()
    try:
        # pydantic-settings reads os.environ; swap in the requested environment.
        os.environ.clear()
        os.environ.update(environ)
        return AgentConfig(**data)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(path, exc, env_keys)) from None
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: configuration file not found. Create it (see docs/configuration.md) or pass --config PATH."
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}.") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}). Save the file as UTF-8.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}. Fix the file and start again.") from None
    except (ValueError, RecursionError) as exc:  # a number over 4300 digits, or arrays/tables nested too deep
        raise ConfigError(f"{path}: the file cannot be read as TOML ({exc}). Fix the file and start again.") from None


def _describe_validation_error(path: Path, exc: ValidationError, env_keys: set[str]) -> str:
    problems = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"])
        env_name = ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(p) for p in err["loc"]).upper()
        where = f"environment variable {env_name}" if env_name in {k.upper() for k in env_keys} else str(path)
        if not key:  # a rule across keys (device references, unique names): its message names them
            problems.append(f"{where}: {re.sub(r'^Value error, ', '', err['msg'])}")
            continue
        problems.append(f"{where}: key '{key}': {_expectation(err)}")
    head = (
        f"{path}: invalid configuration ({len(problems)} problem{'s' if len(problems) > 1 else ''}); nothing was "
        f"started."
    )
    return "\n  ".join([head, *problems])


def _expectation(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required value is missing"
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see docs/configuration.md for the keys)"
    given = err.get("input")
    shown = repr(given) if not isinstance(given, (dict, list)) else type(given).__name__
    if len(shown) > 60:
        shown = shown[:57] + "..."
    message = re.sub(r"^Value error, ", "", err["msg"])
    return f"{message} (got {shown})"


def redacted(config: AgentConfig) -> dict[str, Any]:
    """The configuration as plain data with secrets masked, for status and diagnostics."""
    return config.model_dump(mode="json")  # SecretStr dumps as '**********'
