"""Static consistency checks for deploy/: the compose file, livekit.yaml, sip.yaml, .env.example.

Nothing here runs Docker. :func:`check_stack` parses the files and reports, as one message per
problem, every place where they disagree in a way that would only show up once the stack runs:
a secret that differs between LiveKit and its clients, a UDP range published that the server
does not use, an API listening on loopback inside its container, and so on.

``${VAR}`` references in the compose file are resolved the way Compose does, from deploy/.env
when it exists and otherwise from .env.example (whose values must equal the compose defaults, so
the stack behaves the same without a .env). The shell environment is deliberately ignored: the
result must not depend on who runs the test.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

COMPOSE = "docker-compose.yml"
ENV_EXAMPLE = ".env.example"
ENV_FILE = ".env"
DEV_MARKER = "DEVELOPMENT ONLY"
REQUIRED_SERVICES = ("redis", "postgres", "livekit", "sip", "worker", "api")
REDIS_SERVICE, REDIS_PORT = "redis", 6379
LIVEKIT_SERVICE = "livekit"
API_PORT = 8080
# livekit-server refuses shorter secrets outside its --dev mode.
MIN_SECRET_LENGTH = 32
# livekit/sip's image runs `livekit-sip --config=/sip/config.yaml`.
SIP_DEFAULT_CONFIG = "/sip/config.yaml"
# How far above a secret the development-only comment may be.
MARKER_REACH = 3

# Compose interpolation: $$, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}, ${NAME?err},
# ${NAME:+alt}, ${NAME+alt} and $NAME. Nested ${...} inside a default is not supported (unused).
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True)
class PortMapping:
    host: tuple[int, int]
    container: tuple[int, int]
    protocol: str

    def __str__(self) -> str:
        return f"{_span(self.host)}:{_span(self.container)}/{self.protocol}"


# --- small parsers --------------------------------------------------------------------------


def _span(ports: tuple[int, int]) -> str:
    return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}-{ports[1]}"


def parse_range(text: str | int) -> tuple[int, int]:
    """'10000-10100' -> (10000, 10100); '5060' or 5060 -> (5060, 5060). Raises ValueError."""
    start, _, end = str(text).strip().partition("-")
    first = int(start)
    return first, int(end) if end else first


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as Compose reads them; comments and blank lines skipped."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def interpolate(text: str, env: Mapping[str, str], problems: list[str], where: str) -> str:
    """``text`` with its ``${VAR}`` references resolved as Compose resolves them."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        unset_or_empty = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return arg if unset_or_empty else str(value)
        if op in (":?", "?"):
            if unset_or_empty:
                problems.append(f"{where}: ${{{name}}} is required ({arg}) but not set")
                return ""
            return str(value)
        if op in (":+", "+"):
            return "" if unset_or_empty else arg
        if value is None:
            problems.append(f"{where}: ${{{name}}} has no default and is not in {ENV_EXAMPLE}")
            return ""
        return value

    return _VARIABLE.sub(substitute, text)


def _interpolate_tree(node: Any, env: Mapping[str, str], problems: list[str], where: str) -> Any:
    if isinstance(node, dict):
        return {
            key: _interpolate_tree(value, env, problems, f"{where}.{key}")
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_interpolate_tree(item, env, problems, where) for item in node]
    if isinstance(node, str):
        return interpolate(node, env, problems, where)
    return node


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, str):
        yield node


def compose_defaults(compose: Any) -> dict[str, set[str]]:
    """Every ``${NAME:-default}`` / ``${NAME-default}`` in the (uninterpolated) compose file."""
    defaults: dict[str, set[str]] = {}
    for text in _strings(compose):
        for match in _VARIABLE.finditer(text):
            if match["op"] in (":-", "-"):
                defaults.setdefault(match["braced"], set()).add(match["arg"] or "")
    return defaults


def _load_yaml(path: Path, problems: list[str]) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"{path.name} is missing")
    except yaml.YAMLError as exc:
        problems.append(f"{path.name}: not valid YAML ({exc})")
    return None


# --- compose service accessors ----------------------------------------------------------------


def service_env(spec: Mapping[str, Any]) -> dict[str, str]:
    raw = spec.get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.partition("=") for item in raw)
        return {key: value for key, _, value in pairs}
    # YAML turns true/80 into bool/int; Compose passes them on as text, booleans lower-cased.
    return {
        key: (
            str(value).lower() if isinstance(value, bool) else "" if value is None else str(value)
        )
        for key, value in raw.items()
    }


# A container port published without a host port gets a random one from Docker.
_EPHEMERAL = (0, 0)


def service_ports(spec: Mapping[str, Any]) -> list[PortMapping]:
    mappings = []
    for entry in spec.get("ports") or []:
        if isinstance(entry, dict):
            container = parse_range(entry["target"])
            published = entry.get("published")
            host = parse_range(published) if published is not None else _EPHEMERAL
            protocol = str(entry.get("protocol", "tcp"))
        else:
            text, _, protocol = str(entry).partition("/")
            parts = text.rsplit(":", 2)
            container = parse_range(parts[-1])
            host = parse_range(parts[-2]) if len(parts) >= 2 and parts[-2] else _EPHEMERAL
        mappings.append(PortMapping(host, container, protocol or "tcp"))
    return mappings


def service_mounts(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume entry; source is a path or a named volume."""
    mounts = []
    for entry in spec.get("volumes") or []:
        if isinstance(entry, dict):
            mounts.append((str(entry.get("source", "")), str(entry["target"])))
        else:
            source, _, rest = str(entry).partition(":")
            mounts.append((source, rest.split(":")[0]) if rest else ("", source))
    return mounts


def _is_path(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def _argv(value: Any) -> list[str] | None:
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else [str(item) for item in value]


def dockerfile_defaults(dockerfile: Path) -> tuple[list[str], list[str]]:
    """The image's ENTRYPOINT and CMD (exec form); the last of each wins, as in Docker."""
    found: dict[str, list[str]] = {"ENTRYPOINT": [], "CMD": []}
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction.upper() in found:
            rest = rest.strip()
            found[instruction.upper()] = (
                json.loads(rest) if rest.startswith("[") else ["/bin/sh", "-c", rest]
            )
    return found["ENTRYPOINT"], found["CMD"]


def effective_argv(spec: Mapping[str, Any], deploy_dir: Path) -> list[str] | None:
    """What the container runs: entrypoint + command, with the image's defaults where the
    compose file gives none (an entrypoint override also drops the image's CMD, as in Docker).
    None when the image is not built from a Dockerfile here (its defaults are unknown)."""
    build = spec.get("build")
    if build is None:
        return None
    context = build if isinstance(build, str) else build.get("context", ".")
    name = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    dockerfile = (deploy_dir / context / name).resolve()
    if not dockerfile.is_file():
        return None
    image_entrypoint, image_cmd = dockerfile_defaults(dockerfile)
    entrypoint = _argv(spec.get("entrypoint"))
    command = _argv(spec.get("command"))
    if entrypoint is not None:
        return entrypoint + (command or [])
    return image_entrypoint + (command if command is not None else image_cmd)


def option(argv: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``argv``."""
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


# --- the checks ---------------------------------------------------------------------------------


def _check_endpoint(url: str, owner: str, what: str, port: int, problems: list[str]) -> None:
    parsed = urlparse(url)
    try:
        url_port = parsed.port
    except ValueError:
        url_port = None
    if (
        parsed.scheme not in ("ws", "wss", "http", "https")
        or parsed.hostname != LIVEKIT_SERVICE
        or url_port != port
    ):
        problems.append(
            f"{owner}: {what} '{url}' is not the {LIVEKIT_SERVICE} service at "
            f"{LIVEKIT_SERVICE}:{port}"
        )


def _check_service_url(
    url: str,
    owner: str,
    what: str,
    services: Mapping[str, Any],
    deploy_dir: Path,
    problems: list[str],
) -> None:
    """``url`` names a compose service, on the port that service's --port option gives."""
    parsed = urlparse(url)
    target = services.get(parsed.hostname or "")
    if target is None:
        problems.append(f"{owner}: {what} '{url}' names no service in {COMPOSE}")
        return
    listening = option(effective_argv(target, deploy_dir) or [], "--port")
    if listening is not None and parsed.port != int(listening):
        problems.append(
            f"{owner}: {what} '{url}' uses port {parsed.port}, but {parsed.hostname} "
            f"listens on {listening}"
        )


def _check_database(
    owner: str, url: str | None, services: Mapping[str, Any], problems: list[str]
) -> None:
    """Every node and worker must share one PostgreSQL (queues and offers are claimed there):
    the URL names the postgres service, on its port, with the user, password and database
    that service is created with."""
    if not url:
        problems.append(
            f"{owner}: VOICEBOT_DATABASE_URL is not set (each node would use its own SQLite)"
        )
        return
    parsed = urlparse(url)
    if not parsed.scheme.startswith("postgresql"):
        problems.append(f"{owner}: VOICEBOT_DATABASE_URL '{url}' is not PostgreSQL")
        return
    target = services.get(parsed.hostname or "")
    if target is None:
        problems.append(f"{owner}: VOICEBOT_DATABASE_URL names no service '{parsed.hostname}'")
        return
    env = service_env(target)
    expected = {
        "user": env.get("POSTGRES_USER", "postgres"),
        "password": env.get("POSTGRES_PASSWORD"),
        "database": env.get("POSTGRES_DB") or env.get("POSTGRES_USER", "postgres"),
        "port": 5432,
    }
    actual = {
        "user": parsed.username,
        "password": parsed.password,
        "database": parsed.path.lstrip("/"),
        "port": parsed.port or 5432,
    }
    for key, value in expected.items():
        if actual[key] != value:
            problems.append(
                f"{owner}: VOICEBOT_DATABASE_URL's {key} is not the {parsed.hostname} service's"
            )


def _check_redis(config: Mapping[str, Any], file: str, problems: list[str]) -> None:
    address = str((config.get("redis") or {}).get("address", ""))
    host, _, port = address.rpartition(":")
    if host != REDIS_SERVICE or port != str(REDIS_PORT):
        problems.append(
            f"{file}: redis address '{address}' is not the {REDIS_SERVICE} service at "
            f"{REDIS_SERVICE}:{REDIS_PORT}"
        )


def _check_credentials(
    owner: str,
    names: tuple[str, str],
    key: str | None,
    secret: str | None,
    keys: Mapping[str, str],
    problems: list[str],
) -> None:
    key_name, secret_name = names
    if not key:
        problems.append(f"{owner}: {key_name} is not set")
    elif key not in keys:
        problems.append(f"{owner}: {key_name} '{key}' is not among livekit.yaml's keys")
    elif secret != keys[key]:
        problems.append(f"{owner}: {secret_name} is not livekit.yaml's secret for '{key}'")


def _check_published_range(
    service: str,
    spec: Mapping[str, Any],
    wanted: tuple[int, int],
    protocol: str,
    source: str,
    problems: list[str],
) -> None:
    mappings = [m for m in service_ports(spec) if m.protocol == protocol]
    if not any(m.host == wanted and m.container == wanted for m in mappings):
        published = ", ".join(str(m) for m in mappings) or "nothing"
        problems.append(
            f"{service}: {source} {_span(wanted)}/{protocol} is not published 1:1 "
            f"(published: {published})"
        )


def _config_file(
    service: str, spec: Mapping[str, Any], target: str, deploy_dir: Path, problems: list[str]
) -> Path | None:
    """The file in deploy/ that ``service`` mounts at ``target``."""
    for source, mount_target in service_mounts(spec):
        if mount_target == target and _is_path(source):
            return (deploy_dir / source).resolve()
    problems.append(f"{service}: nothing is mounted at {target}, where its config is read")
    return None


def _check_dev_markers(deploy_dir: Path, dev_secrets: set[str], problems: list[str]) -> None:
    """Every line holding a development secret has a DEVELOPMENT ONLY comment on it or just
    above it, so nobody mistakes it for a real credential."""
    for path in sorted(deploy_dir.iterdir()):
        if not path.is_file() or path.suffix == ".md":
            continue
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines):
            if not any(secret in line for secret in dev_secrets if secret):
                continue
            nearby = lines[max(0, number - MARKER_REACH) : number + 1]
            if not any("#" in text and DEV_MARKER in text.split("#", 1)[1] for text in nearby):
                problems.append(
                    f"{path.name}:{number + 1}: development secret without a '{DEV_MARKER}' comment"
                )


def _check_egress(
    services: Mapping[str, Any],
    deploy_dir: Path,
    keys: Mapping[str, str],
    livekit_port: int,
    problems: list[str],
) -> None:
    """The egress service reaches the same LiveKit and Redis with a pair of its keys, and the
    workers' recording path lies in a volume the egress container writes to."""
    egress = services["egress"]
    egress_env = service_env(egress)
    target = egress_env.get("EGRESS_CONFIG_FILE")
    if not target:
        problems.append("egress: EGRESS_CONFIG_FILE is not set (its config is read from there)")
        return
    config_file = _config_file("egress", egress, target, deploy_dir, problems)
    config = _load_yaml(config_file, problems) if config_file else None
    if not isinstance(config, dict):
        return
    _check_credentials(
        "egress.yaml",
        ("api_key", "api_secret"),
        config.get("api_key"),
        config.get("api_secret"),
        keys,
        problems,
    )
    _check_endpoint(str(config.get("ws_url", "")), "egress.yaml", "ws_url", livekit_port, problems)
    _check_redis(config, "egress.yaml", problems)
    recording = service_env(services["worker"]).get("VOICEBOT_RECORDING_FILEPATH", "")
    mounts = [mount for source, mount in service_mounts(egress) if not _is_path(source)]
    if not any(recording.startswith(mount.rstrip("/") + "/") for mount in mounts):
        problems.append(
            f"worker: VOICEBOT_RECORDING_FILEPATH '{recording}' is not in a volume the egress "
            f"service writes to ({', '.join(mounts) or 'none'})"
        )


def check_stack(deploy_dir: Path) -> list[str]:
    """Every inconsistency between the files in ``deploy_dir``; empty when they agree."""
    problems: list[str] = []

    example_path = deploy_dir / ENV_EXAMPLE
    if not example_path.is_file():
        problems.append(f"{ENV_EXAMPLE} is missing")
    example = parse_env_file(example_path) if example_path.is_file() else {}
    local_env = deploy_dir / ENV_FILE
    env = parse_env_file(local_env) if local_env.is_file() else dict(example)

    raw = _load_yaml(deploy_dir / COMPOSE, problems)
    if not isinstance(raw, dict) or not isinstance(raw.get("services"), dict):
        if raw is not None:
            problems.append(f"{COMPOSE}: no services")
        return problems

    # .env.example must describe the defaults, or the stack changes when it is copied to .env
    defaults = compose_defaults(raw)
    for name, values in sorted(defaults.items()):
        if len(values) > 1:
            problems.append(f"{COMPOSE}: ${{{name}}} has different defaults: {sorted(values)}")
        elif name in example and example[name] not in values:
            problems.append(
                f"{ENV_EXAMPLE}: {name}={example[name]}, but {COMPOSE} defaults it to "
                f"{next(iter(values))}"
            )

    compose = _interpolate_tree(raw, env, problems, COMPOSE)
    services: dict[str, dict[str, Any]] = compose["services"]
    declared_volumes = set((compose.get("volumes") or {}).keys())

    for name in REQUIRED_SERVICES:
        if name not in services:
            problems.append(f"{COMPOSE}: service '{name}' is missing")

    for name, spec in services.items():
        depends = spec.get("depends_on") or []
        for dependency in depends if isinstance(depends, list) else depends.keys():
            if dependency not in services:
                problems.append(f"{name}: depends_on '{dependency}', which is not a service")
        for source, _target in service_mounts(spec):
            if _is_path(source):
                if not (deploy_dir / source).exists():
                    problems.append(f"{name}: mounts {source}, which does not exist in deploy/")
            elif source and source not in declared_volumes:
                problems.append(f"{name}: volume '{source}' is not declared under volumes:")

    if any(name not in services for name in REQUIRED_SERVICES):
        return problems
    livekit, sip = services["livekit"], services["sip"]

    # --- livekit.yaml, found through the livekit service's --config and its mounts
    livekit_argv = _argv(livekit.get("command")) or []
    livekit_target = option(livekit_argv, "--config")
    livekit_file = (
        _config_file("livekit", livekit, livekit_target, deploy_dir, problems)
        if livekit_target
        else None
    )
    if livekit_target is None:
        problems.append("livekit: its command passes no --config")
    livekit_cfg = _load_yaml(livekit_file, problems) if livekit_file else None
    if not isinstance(livekit_cfg, dict):
        return problems
    keys = {str(k): str(v) for k, v in (livekit_cfg.get("keys") or {}).items()}
    if not keys:
        problems.append("livekit.yaml: no keys")
    for key, secret in keys.items():
        if len(secret) < MIN_SECRET_LENGTH:
            problems.append(
                f"livekit.yaml: the secret for '{key}' has {len(secret)} characters; "
                f"livekit-server wants at least {MIN_SECRET_LENGTH}"
            )
    _check_redis(livekit_cfg, "livekit.yaml", problems)
    livekit_port = int(livekit_cfg.get("port", 7880))
    rtc = livekit_cfg.get("rtc") or {}
    _check_published_range(
        "livekit", livekit, (livekit_port, livekit_port), "tcp", "port", problems
    )
    if "tcp_port" in rtc:
        tcp = int(rtc["tcp_port"])
        _check_published_range("livekit", livekit, (tcp, tcp), "tcp", "rtc.tcp_port", problems)
    if "port_range_start" in rtc and "port_range_end" in rtc:
        udp = (int(rtc["port_range_start"]), int(rtc["port_range_end"]))
        _check_published_range("livekit", livekit, udp, "udp", "rtc.port_range", problems)
    else:
        problems.append("livekit.yaml: rtc.port_range_start/port_range_end are not set")

    # --- sip.yaml, found through SIP_CONFIG_FILE (or the image's default) and the mounts
    sip_env = service_env(sip)
    sip_target = sip_env.get("SIP_CONFIG_FILE", SIP_DEFAULT_CONFIG)
    sip_file = _config_file("sip", sip, sip_target, deploy_dir, problems)
    sip_cfg = _load_yaml(sip_file, problems) if sip_file else None
    if isinstance(sip_cfg, dict):
        # livekit/sip falls back to these variables for keys its config file leaves out
        _check_credentials(
            "sip.yaml",
            ("api_key", "api_secret"),
            sip_cfg.get("api_key") or sip_env.get("LIVEKIT_API_KEY"),
            sip_cfg.get("api_secret") or sip_env.get("LIVEKIT_API_SECRET"),
            keys,
            problems,
        )
        ws_url = str(sip_cfg.get("ws_url") or sip_env.get("LIVEKIT_WS_URL", ""))
        _check_endpoint(ws_url, "sip.yaml", "ws_url", livekit_port, problems)
        _check_redis(sip_cfg, "sip.yaml", problems)
        sip_port = int(sip_cfg.get("sip_port", 5060))
        for protocol in ("udp", "tcp"):
            _check_published_range("sip", sip, (sip_port, sip_port), protocol, "sip_port", problems)
        try:
            rtp = parse_range(sip_cfg.get("rtp_port", ""))
        except ValueError:
            problems.append(f"sip.yaml: rtp_port '{sip_cfg.get('rtp_port')}' is not a range")
        else:
            _check_published_range("sip", sip, rtp, "udp", "rtp_port", problems)

    # --- egress.yaml (optional: call recording), found through EGRESS_CONFIG_FILE
    if "egress" in services:
        _check_egress(services, deploy_dir, keys, livekit_port, problems)

    # --- the voicebot services
    for name in ("worker", "api"):
        spec = services[name]
        variables = service_env(spec)
        _check_credentials(
            name,
            ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"),
            variables.get("LIVEKIT_API_KEY"),
            variables.get("LIVEKIT_API_SECRET"),
            keys,
            problems,
        )
        _check_endpoint(
            variables.get("LIVEKIT_URL", ""), name, "LIVEKIT_URL", livekit_port, problems
        )
        _check_database(name, variables.get("VOICEBOT_DATABASE_URL"), services, problems)
        if chroma_url := variables.get("VOICEBOT_CHROMA_URL"):
            _check_service_url(
                chroma_url, name, "VOICEBOT_CHROMA_URL", services, deploy_dir, problems
            )

    worker_argv = effective_argv(services["worker"], deploy_dir)
    if worker_argv is None:
        problems.append("worker: not built from the repository's Dockerfile")
    elif worker_argv != ["voicebot", "worker", "start"]:
        problems.append(f"worker: runs {shlex.join(worker_argv)!r}, not 'voicebot worker start'")

    api = services["api"]
    api_argv = effective_argv(api, deploy_dir)
    if api_argv is None:
        problems.append("api: not built from the repository's Dockerfile")
    elif api_argv[:2] != ["voicebot", "serve"]:
        problems.append(f"api: runs {shlex.join(api_argv)!r}, not 'voicebot serve'")
    else:
        if option(api_argv, "--host") != "0.0.0.0":
            problems.append(
                "api: 'voicebot serve' does not bind 0.0.0.0 (it listens on 127.0.0.1 by "
                "default, unreachable through the published port)"
            )
        serve_port = int(option(api_argv, "--port") or API_PORT)
        if not any(
            m.container == (serve_port, serve_port) and m.host == (API_PORT, API_PORT)
            for m in service_ports(api)
            if m.protocol == "tcp"
        ):
            problems.append(
                f"api: port {API_PORT} is not published to the port voicebot serve "
                f"listens on ({serve_port})"
            )

    dev_secrets = (
        {example.get("LIVEKIT_API_SECRET", ""), example.get("POSTGRES_PASSWORD", "")}
        | defaults.get("LIVEKIT_API_SECRET", set())
        | defaults.get("POSTGRES_PASSWORD", set())
    )
    _check_dev_markers(deploy_dir, dev_secrets, problems)
    return problems
