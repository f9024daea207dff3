"""Reading the PREFECT_* environment."""

import pytest

from orchestration_client._settings import Settings, load_settings


def test_defaults_match_prefect() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.request_timeout == 60.0
    assert settings.max_retries == 5 and settings.retry_jitter_factor == 0.2
    assert settings.retry_extra_codes == frozenset()
    assert settings.csrf_support_enabled is True
    assert settings.cloud_api_url == "https://api.prefect.cloud/api"
    assert settings.api_url is None and settings.ephemeral_enabled is None


def test_every_variable_is_read() -> None:
    settings = load_settings({
        "PREFECT_API_URL": " http://h:1/api ",
        "PREFECT_API_KEY": "key",
        "PREFECT_API_AUTH_STRING": "u:p",
        "PREFECT_API_REQUEST_TIMEOUT": "7.5",
        "PREFECT_API_TLS_INSECURE_SKIP_VERIFY": "yes",
        "PREFECT_API_SSL_CERT_FILE": "/ca.pem",
        "PREFECT_CLIENT_MAX_RETRIES": "2",
        "PREFECT_CLIENT_RETRY_JITTER_FACTOR": "0",
        "PREFECT_CLIENT_RETRY_EXTRA_CODES": "404, 500",
        "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "off",
        "PREFECT_CLIENT_CUSTOM_HEADERS": '{"X-Team": "data"}',
        "PREFECT_CLOUD_API_URL": "https://cloud.example/api",
        "PREFECT_TESTING_UNIT_TEST_MODE": "1",
        "PREFECT_SERVER_EPHEMERAL_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "45",
        "PREFECT__FLOW_NAME": " etl ",
        "PREFECT__WORKER_ID": "",
    })  # fmt: skip
    assert settings.api_url == "http://h:1/api"
    assert (settings.api_key, settings.auth_string) == ("key", "u:p")
    assert settings.request_timeout == 7.5 and settings.tls_insecure_skip_verify is True
    assert settings.ssl_cert_file == "/ca.pem"
    assert settings.max_retries == 2 and settings.retry_jitter_factor == 0.0
    assert settings.retry_extra_codes == {404, 500}
    assert settings.csrf_support_enabled is False
    assert settings.custom_headers == {"X-Team": "data"}
    assert settings.cloud_api_url == "https://cloud.example/api"
    assert settings.unit_test_mode is True and settings.ephemeral_enabled is False
    assert settings.ephemeral_startup_timeout == 45.0
    assert settings.attribution_headers == {"X-Prefect-Flow-Name": "etl"}


def test_ssl_cert_file_falls_back_to_ssl_cert_file() -> None:
    assert load_settings({"SSL_CERT_FILE": "/etc/ca.pem"}).ssl_cert_file == "/etc/ca.pem"


def test_json_list_form_of_extra_codes() -> None:
    assert load_settings({"PREFECT_CLIENT_RETRY_EXTRA_CODES": "[500]"}).retry_extra_codes == {500}


@pytest.mark.parametrize("name, raw, message", [
    ("PREFECT_API_REQUEST_TIMEOUT", "soon", "must be a number"),
    ("PREFECT_API_REQUEST_TIMEOUT", "-1", "finite number >= 0"),
    ("PREFECT_API_REQUEST_TIMEOUT", "inf", "finite number >= 0"),
    ("PREFECT_CLIENT_MAX_RETRIES", "2.5", "whole number"),
    ("PREFECT_CLIENT_MAX_RETRIES", "-1", ">= 0"),
    ("PREFECT_CLIENT_RETRY_EXTRA_CODES", "404,abc", "HTTP status codes"),
    ("PREFECT_CLIENT_RETRY_EXTRA_CODES", "99", "HTTP status codes"),
    ("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "maybe", "true or false"),
    ("PREFECT_CLIENT_CUSTOM_HEADERS", "{not json", "JSON object"),
    ("PREFECT_CLIENT_CUSTOM_HEADERS", '{"a": 1}', "string values"),
])  # fmt: skip
def test_malformed_values_name_the_variable(name: str, raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        load_settings({name: raw})
    assert name in str(caught.value)


def test_secrets_are_not_in_repr() -> None:
    settings = load_settings(
        {"PREFECT_API_KEY": "pnu_secret", "PREFECT_API_AUTH_STRING": "u:hunter2"}
    )
    assert "pnu_secret" not in repr(settings) and "hunter2" not in repr(settings)
    assert "api_key='********'" in repr(settings)
