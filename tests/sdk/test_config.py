"""The settings table: argument > environment > default, clear errors, documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenantscope.errors import ConfigError
from tenantscope.sdk._config import DEFAULT_ENDPOINT, SETTINGS, Config, load_config

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


def test_defaults() -> None:
    config = load_config({}, {})
    assert config == Config()
    assert config.endpoint == DEFAULT_ENDPOINT == "http://127.0.0.1:4318"
    assert config.traces_endpoint == "http://127.0.0.1:4318/v1/traces"
    assert config.export_headers() == {}
    assert not config.disabled and not config.capture_content and not config.inject_stream_usage


def test_argument_beats_environment_beats_default() -> None:
    env = {"TENANTSCOPE_ENDPOINT": "http://env:1", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:2"}
    assert load_config({}, env).endpoint == "http://env:1"
    assert load_config({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:2/"}).endpoint == (
        "http://otel:2"
    )
    assert load_config({"endpoint": "https://arg:3"}, env).endpoint == "https://arg:3"
    assert load_config({}, {"TENANTSCOPE_MAX_QUEUE_SIZE": "10"}).max_queue_size == 10
    assert (
        load_config({"max_queue_size": 20}, {"TENANTSCOPE_MAX_QUEUE_SIZE": "10"}).max_queue_size
        == 20
    )
    assert load_config({}, {"OTEL_SERVICE_NAME": "svc"}).service_name == "svc"
    assert (
        load_config({}, {"OTEL_SERVICE_NAME": "a", "TENANTSCOPE_SERVICE_NAME": "b"}).service_name
        == "b"
    )


def test_traces_endpoint_precedence() -> None:
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/custom/traces"}
    # a full traces URL from the environment is used as is
    assert load_config({}, env).traces_endpoint == "http://collector:4318/custom/traces"
    # an endpoint given in code wins over the environment's traces URL
    assert load_config({"endpoint": "http://mine:9"}, env).traces_endpoint == (
        "http://mine:9/v1/traces"
    )
    given = {"endpoint": "http://mine:9", "traces_endpoint": "http://other:1/t"}
    assert load_config(given, env).traces_endpoint == "http://other:1/t"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("off", False)],
)
def test_bool_environment(raw: str, expected: bool) -> None:
    assert load_config({}, {"TENANTSCOPE_DISABLED": raw}).disabled is expected


def test_headers_and_api_key() -> None:
    env = {"OTEL_EXPORTER_OTLP_HEADERS": "x-team=a%20b, x-other=2"}
    config = load_config({"api_key": "k-123"}, env)
    assert config.headers == {"x-team": "a b", "x-other": "2"}
    assert config.export_headers() == {
        "x-team": "a b",
        "x-other": "2",
        "Authorization": "Bearer k-123",
    }
    assert load_config({}, {"TENANTSCOPE_API_KEY": "k-env"}).api_key == "k-env"


@pytest.mark.parametrize(
    ("given", "env", "fragment"),
    [
        ({"endpoint": "ftp://x"}, {}, "endpoint (argument): expected an http"),
        ({"endpoint": "localhost:4318"}, {}, "expected an http"),
        ({"endpoint": "http://"}, {}, "no host"),
        ({}, {"TENANTSCOPE_ENDPOINT": "grpc://x:4317"}, "$TENANTSCOPE_ENDPOINT"),
        ({"max_queue_size": -1}, {}, "max_queue_size (argument): must be at least 1"),
        ({"max_queue_size": 0}, {}, "at least 1"),
        ({"max_queue_size": "10"}, {}, "expected an integer"),
        ({}, {"TENANTSCOPE_MAX_QUEUE_SIZE": "ten"}, "max_queue_size: bad value 'ten'"),
        ({}, {"TENANTSCOPE_DISABLED": "maybe"}, "disabled: bad value"),
        ({"export_timeout": float("nan")}, {}, "finite"),
        ({"max_queue_size": 10, "max_export_batch_size": 11}, {}, "must not exceed"),
        ({"compression": "zstd"}, {}, "compression"),
        ({}, {"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "key=value"),
        ({"headers": {"a": 1}}, {}, "mapping of str to str"),
        ({"capture_content": "yes"}, {}, "True or False"),
        ({"nonsense": 1}, {}, "unknown setting"),
    ],
)
def test_bad_config_is_a_clear_error(
    given: dict[str, object], env: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(given, env)
    assert fragment in str(info.value)


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    for setting in SETTINGS:
        assert f"`{setting.name}`" in text, setting.name
        for var in setting.env:
            assert f"`{var}`" in text, var
