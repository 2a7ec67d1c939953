"""deploy/ parses and its files agree with one another (nothing here runs Docker or LiveKit).

Each check is also run against a copy of deploy/ with one deliberate mistake, to show that the
check would catch it rather than pass on anything.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.deploy.stack_check import (
    COMPOSE,
    DEV_MARKER,
    ENV_EXAMPLE,
    check_stack,
    interpolate,
    parse_env_file,
    parse_range,
    service_ports,
)

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DEV_SECRET = "dev-only-secret-replace-with-livekit-generate-keys"


def copy_stack(tmp_path: Path) -> Path:
    """A copy of deploy/ with the Dockerfile beside it, where compose's build context expects it."""
    shutil.copy(REPO / "Dockerfile", tmp_path / "Dockerfile")
    return Path(shutil.copytree(DEPLOY, tmp_path / "deploy"))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} should occur once in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


# --- the real files --------------------------------------------------------------------------


@pytest.mark.parametrize("name", [COMPOSE, "livekit.yaml", "sip.yaml", "egress.yaml"])
def test_each_file_is_yaml_mapping(name):
    assert isinstance(yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8")), dict)


def test_deploy_directory_is_consistent():
    assert check_stack(DEPLOY) == []


def test_the_stack_has_the_expected_services():
    services = yaml.safe_load((DEPLOY / COMPOSE).read_text(encoding="utf-8"))["services"]
    assert {"redis", "postgres", "livekit", "sip", "worker", "api"} <= set(services)
    assert services["redis"]["image"].startswith("redis:7")
    assert services["livekit"]["image"].startswith("livekit/livekit-server")
    assert services["sip"]["image"].startswith("livekit/sip")
    for name in ("worker", "api"):
        assert services[name]["build"]["context"] == ".."


def test_env_example_holds_the_development_pair():
    env = parse_env_file(DEPLOY / ENV_EXAMPLE)
    assert env["LIVEKIT_API_KEY"] == "devkey"
    assert env["LIVEKIT_API_SECRET"] == DEV_SECRET
    assert DEV_MARKER in (DEPLOY / ENV_EXAMPLE).read_text(encoding="utf-8")


def test_readme_documents_what_was_not_run():
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert "## What has been run" in readme
    assert "--dry-run" in readme
    assert "--scale worker=" in readme


# --- the helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A-x}", {"A": ""}, ""),
        ("${A:-x}", {"A": "y"}, "y"),
        ("${A:+on}", {"A": "y"}, "on"),
        ("${A:+on}", {}, ""),
        ("$A/$$B", {"A": "a"}, "a/$B"),
        ("ws://${HOST:-livekit}:7880", {}, "ws://livekit:7880"),
    ],
)
def test_interpolate_follows_compose(text, env, expected):
    problems: list[str] = []
    assert interpolate(text, env, problems, "here") == expected
    assert problems == []


def test_interpolate_reports_unset_variables():
    problems: list[str] = []
    assert interpolate("${A} ${B:?needed}", {}, problems, "svc") == " "
    assert problems == [
        "svc: ${A} has no default and is not in .env.example",
        "svc: ${B} is required (needed) but not set",
    ]


def test_port_and_range_parsing():
    assert parse_range("10000-10100") == (10000, 10100)
    assert parse_range(5060) == (5060, 5060)
    ports = service_ports(
        {
            "ports": [
                "127.0.0.1:8080:8080",
                "50000-50100:50000-50100/udp",
                {"target": 7881, "published": "7881", "protocol": "tcp"},
                "9000",
            ]
        }
    )
    assert [str(p) for p in ports] == [
        "8080:8080/tcp",
        "50000-50100:50000-50100/udp",
        "7881:7881/tcp",
        "0:9000/tcp",
    ]


# --- each check catches its mistake ------------------------------------------------------------

# (file, text to replace, replacement, a problem check_stack must then report; <line> stands
# for the line of the edited file that holds the development secret)
BROKEN = {
    "livekit secret differs": (
        "livekit.yaml",
        f"devkey: {DEV_SECRET}",
        f"devkey: {DEV_SECRET}-rotated",
        "worker: LIVEKIT_API_SECRET is not livekit.yaml's secret for 'devkey'",
    ),
    "sip secret differs": (
        "sip.yaml",
        f"api_secret: {DEV_SECRET}",
        "api_secret: another-secret-that-is-long-enough-to-pass",
        "sip.yaml: api_secret is not livekit.yaml's secret for 'devkey'",
    ),
    "api key unknown to livekit": (
        COMPOSE,
        "LIVEKIT_API_KEY: ${LIVEKIT_API_KEY:-devkey}",
        "LIVEKIT_API_KEY: prodkey",
        "api: LIVEKIT_API_KEY 'prodkey' is not among livekit.yaml's keys",
    ),
    "secret too short": (
        "livekit.yaml",
        f"devkey: {DEV_SECRET}",
        "devkey: secret",
        "livekit.yaml: the secret for 'devkey' has 6 characters; livekit-server wants at least 32",
    ),
    "example disagrees with the compose default": (
        ENV_EXAMPLE,
        f"LIVEKIT_API_SECRET={DEV_SECRET}",
        f"LIVEKIT_API_SECRET={DEV_SECRET}-2",
        f".env.example: LIVEKIT_API_SECRET={DEV_SECRET}-2, but docker-compose.yml defaults it to "
        f"{DEV_SECRET}",
    ),
    "egress with another secret": (
        "egress.yaml",
        "api_secret: dev-only-secret-replace-with-livekit-generate-keys",
        "api_secret: dev-only-a-different-secret-for-the-egress-service",
        "egress.yaml: api_secret is not livekit.yaml's secret for 'devkey'",
    ),
    "egress on another redis": (
        "egress.yaml",
        "  address: redis:6379",
        "  address: cache:6379",
        "egress.yaml: redis address 'cache:6379' is not the redis service at redis:6379",
    ),
    "recordings outside the egress volume": (
        COMPOSE,
        "VOICEBOT_RECORDING_FILEPATH: /out/recordings",
        "VOICEBOT_RECORDING_FILEPATH: /data/recordings",
        "worker: VOICEBOT_RECORDING_FILEPATH '/data/recordings/{room}/{room}-{segment:02d}.ogg' "
        "is not in a volume the egress service writes to (/out)",
    ),
    "depends_on an unknown service": (
        COMPOSE,
        "      redis:\n        condition: service_healthy\n      livekit:\n"
        "        condition: service_started\n\n  # Call recording",
        "      redis:\n        condition: service_healthy\n      livekit-server:\n"
        "        condition: service_started\n\n  # Call recording",
        "sip: depends_on 'livekit-server', which is not a service",
    ),
    "mounted config file missing": (
        COMPOSE,
        "./sip.yaml:/sip/config.yaml:ro",
        "./sip-config.yaml:/sip/config.yaml:ro",
        "sip: mounts ./sip-config.yaml, which does not exist in deploy/",
    ),
    "livekit --config not mounted": (
        COMPOSE,
        'command: ["--config", "/etc/livekit.yaml"]',
        'command: ["--config", "/livekit.yaml"]',
        "livekit: nothing is mounted at /livekit.yaml, where its config is read",
    ),
    "livekit redis elsewhere": (
        "livekit.yaml",
        "address: redis:6379",
        "address: localhost:6379",
        "livekit.yaml: redis address 'localhost:6379' is not the redis service at redis:6379",
    ),
    "sip redis port wrong": (
        "sip.yaml",
        "address: redis:6379",
        "address: redis:6380",
        "sip.yaml: redis address 'redis:6380' is not the redis service at redis:6379",
    ),
    "sip ws_url wrong port": (
        "sip.yaml",
        "ws_url: ws://livekit:7880",
        "ws_url: ws://livekit:7881",
        "sip.yaml: ws_url 'ws://livekit:7881' is not the livekit service at livekit:7880",
    ),
    "worker LIVEKIT_URL on localhost": (
        COMPOSE,
        "LIVEKIT_URL: ws://livekit:7880",
        "LIVEKIT_URL: ws://localhost:7880",
        "worker: LIVEKIT_URL 'ws://localhost:7880' is not the livekit service at livekit:7880",
    ),
    "livekit UDP range published differs": (
        COMPOSE,
        '"50000-50100:50000-50100/udp"',
        '"50000-50200:50000-50200/udp"',
        "livekit: rtc.port_range 50000-50100/udp is not published 1:1 "
        "(published: 50000-50200:50000-50200/udp)",
    ),
    "livekit UDP range remapped": (
        COMPOSE,
        '"50000-50100:50000-50100/udp"',
        '"60000-60100:50000-50100/udp"',
        "livekit: rtc.port_range 50000-50100/udp is not published 1:1 "
        "(published: 60000-60100:50000-50100/udp)",
    ),
    "sip rtp range differs": (
        "sip.yaml",
        "rtp_port: 10000-10100",
        "rtp_port: 10000-20000",
        "sip: rtp_port 10000-20000/udp is not published 1:1 "
        "(published: 5060:5060/udp, 10000-10100:10000-10100/udp)",
    ),
    "sip tcp signalling not published": (
        COMPOSE,
        '      - "5060:5060/tcp"\n',
        "",
        "sip: sip_port 5060/tcp is not published 1:1 (published: nothing)",
    ),
    "api listens on loopback": (
        COMPOSE,
        'command: ["serve", "--host", "0.0.0.0", "--port", "8080"]',
        'command: ["serve", "--port", "8080"]',
        "api: 'voicebot serve' does not bind 0.0.0.0",
    ),
    "api port not published": (
        COMPOSE,
        '      - "8080:8080"\n',
        "",
        "api: port 8080 is not published to the port voicebot serve listens on (8080)",
    ),
    "api listens on another port": (
        COMPOSE,
        '"--port", "8080"]',
        '"--port", "9000"]',
        "api: port 8080 is not published to the port voicebot serve listens on (9000)",
    ),
    "worker runs voicebot twice": (
        COMPOSE,
        'command: ["worker", "start"]',
        'command: ["voicebot", "worker", "start"]',
        "worker: runs 'voicebot voicebot worker start', not 'voicebot worker start'",
    ),
    "worker in dev mode": (
        COMPOSE,
        'command: ["worker", "start"]',
        'command: ["worker", "dev"]',
        "worker: runs 'voicebot worker dev', not 'voicebot worker start'",
    ),
    "database url names no service": (
        COMPOSE,
        "@postgres:5432/voicebot",
        "@db:5432/voicebot",
        "VOICEBOT_DATABASE_URL names no service 'db'",
    ),
    "database url on another database": (
        COMPOSE,
        "@postgres:5432/voicebot",
        "@postgres:5432/calls",
        "VOICEBOT_DATABASE_URL's database is not the postgres service's",
    ),
    "database password unmarked": (
        ENV_EXAMPLE,
        "# DEVELOPMENT ONLY: replace.\nPOSTGRES_PASSWORD",
        "POSTGRES_PASSWORD",
        f"{ENV_EXAMPLE}:<dbline>: development secret without a 'DEVELOPMENT ONLY' comment",
    ),
    "chroma url names no service": (
        COMPOSE,
        "VOICEBOT_CHROMA_URL: http://chroma:8000",
        "VOICEBOT_CHROMA_URL: http://chromadb:8000",
        "api: VOICEBOT_CHROMA_URL 'http://chromadb:8000' names no service in docker-compose.yml",
    ),
    "development secret unmarked": (
        "livekit.yaml",
        "  # DEVELOPMENT ONLY: replace with",
        "  # replace with",
        "livekit.yaml:<line>: development secret without a 'DEVELOPMENT ONLY' comment",
    ),
    "development secret unmarked in compose": (
        COMPOSE,
        "  # DEVELOPMENT ONLY: replace (in deploy/.env",
        "  # replace (in deploy/.env",
        f"{COMPOSE}:<line>: development secret without a 'DEVELOPMENT ONLY' comment",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_check_stack_reports_a_broken_copy(tmp_path, case):
    name, old, new, expected = BROKEN[case]
    deploy = copy_stack(tmp_path)
    assert check_stack(deploy) == [], "the unmodified copy must pass"
    edit(deploy / name, old, new)
    lines = (deploy / name).read_text(encoding="utf-8").splitlines()
    secret_line = next((i for i, line in enumerate(lines, 1) if DEV_SECRET in line), 0)
    db_line = next((i for i, line in enumerate(lines, 1) if "dev-only-db-password" in line), 0)
    expected = expected.replace("<line>", str(secret_line)).replace("<dbline>", str(db_line))
    problems = check_stack(deploy)
    assert any(expected in problem for problem in problems), problems


def test_loopback_publishing_behind_a_tls_proxy_passes(tmp_path):
    """deploy/README.md's production advice keeps the stack consistent."""
    deploy = copy_stack(tmp_path)
    edit(deploy / COMPOSE, '- "8080:8080"', '- "127.0.0.1:8080:8080"')
    edit(deploy / COMPOSE, '- "7880:7880"', '- "127.0.0.1:7880:7880"')
    edit(deploy / "sip.yaml", "use_external_ip: false", "use_external_ip: true")
    assert check_stack(deploy) == []


def test_local_env_file_overrides_the_example(tmp_path):
    """deploy/.env, as Compose reads it, must carry the pair livekit.yaml has."""
    deploy = copy_stack(tmp_path)
    (deploy / ".env").write_text("LIVEKIT_API_KEY=devkey\nLIVEKIT_API_SECRET=" + "x" * 40 + "\n")
    problems = check_stack(deploy)
    assert "worker: LIVEKIT_API_SECRET is not livekit.yaml's secret for 'devkey'" in problems
    assert "api: LIVEKIT_API_SECRET is not livekit.yaml's secret for 'devkey'" in problems


def test_missing_service_and_invalid_yaml_are_reported(tmp_path):
    deploy = copy_stack(tmp_path)
    (deploy / "sip.yaml").write_text("api_key: [unclosed\n")
    assert any(p.startswith("sip.yaml: not valid YAML") for p in check_stack(deploy))
    compose = yaml.safe_load((deploy / COMPOSE).read_text(encoding="utf-8"))
    del compose["services"]["redis"]
    (deploy / COMPOSE).write_text(yaml.safe_dump(compose))
    assert "docker-compose.yml: service 'redis' is missing" in check_stack(deploy)
