"""Logs never carry full emails, bearer tokens or signatures; settings keep secrets secret."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from app.config import Settings
from app.logging_setup import configure_logging, mask_email, redact

SIGNATURE = "v0=" + "0123456789abcdef" * 4  # 64 hex digits, the shape of x-zm-signature
LOGGER = "zoom_hubspot.test_logging"


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    """configure_logging changes the root logger; put it back so other tests are unaffected."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def _emit(capsys: pytest.CaptureFixture[str], fmt: str, msg: str, *args: Any, **extra: Any) -> str:
    capsys.readouterr()  # drop anything logged before
    configure_logging("INFO", fmt)  # the handler binds sys.stderr now, i.e. capsys's stream
    logging.getLogger(LOGGER).info(msg, *args, extra=extra)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if LOGGER in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.usefixtures("restore_root_logging")
class TestJsonFormat:
    def test_line_is_json_with_the_basics(self, capsys: pytest.CaptureFixture[str]) -> None:
        line = _emit(capsys, "json", "webinar %s synced", "89412345678", webinar_id="89412345678", count=3)
        entry = json.loads(line)
        assert entry["level"] == "info"
        assert entry["logger"] == LOGGER
        assert entry["msg"] == "webinar 89412345678 synced"
        assert entry["webinar_id"] == "89412345678"
        assert entry["count"] == 3
        assert entry["ts"]

    def test_email_in_message_is_masked(self, capsys: pytest.CaptureFixture[str]) -> None:
        line = _emit(capsys, "json", "registered ada.lovelace@example.com for %s", "89412345678")
        entry = json.loads(line)
        assert entry["msg"] == "registered a***@example.com for 89412345678"
        assert "ada.lovelace@example.com" not in line

    def test_email_in_format_args_is_masked(self, capsys: pytest.CaptureFixture[str]) -> None:
        line = _emit(capsys, "json", "contact %s upserted", "Grace.Hopper@Navy.example.org")
        assert json.loads(line)["msg"] == "contact G***@Navy.example.org upserted"
        assert "Grace.Hopper@" not in line

    def test_email_in_extra_is_masked(self, capsys: pytest.CaptureFixture[str]) -> None:
        line = _emit(capsys, "json", "contact upserted", email="ada@example.com", note="from bob@example.com")
        entry = json.loads(line)
        assert entry["email"] == "a***@example.com"
        assert entry["note"] == "from b***@example.com"
        assert "ada@example.com" not in line and "bob@example.com" not in line

    def test_email_inside_structured_extra_is_masked(self, capsys: pytest.CaptureFixture[str]) -> None:
        # Logs must never carry full emails, whatever the shape of the extra value.
        line = _emit(
            capsys,
            "json",
            "batch upserted",
            emails=["ada@example.com", "bob@example.com"],
            contact={"email": "carol@example.com"},
        )
        for email in ("ada@example.com", "bob@example.com", "carol@example.com"):
            assert email not in line
        entry = json.loads(line)
        assert entry["emails"] == ["a***@example.com", "b***@example.com"]
        assert entry["contact"] == {"email": "c***@example.com"}

    def test_bearer_token_is_redacted(self, capsys: pytest.CaptureFixture[str]) -> None:
        line = _emit(
            capsys, "json", "calling HubSpot with Authorization: Bearer abc.def", header="Bearer abc.def"
        )
        entry = json.loads(line)
        assert "abc.def" not in line
        assert entry["msg"] == "calling HubSpot with Authorization: Bearer [redacted]"
        assert entry["header"] == "Bearer [redacted]"

    def test_signature_is_redacted(self, capsys: pytest.CaptureFixture[str]) -> None:
        line = _emit(capsys, "json", "bad signature %s", SIGNATURE, signature=SIGNATURE)
        entry = json.loads(line)
        assert SIGNATURE[3:] not in line
        assert entry["msg"] == "bad signature v0=[redacted]"
        assert entry["signature"] == "v0=[redacted]"

    def test_exception_text_is_redacted(self, capsys: pytest.CaptureFixture[str]) -> None:
        capsys.readouterr()
        configure_logging("INFO", "json")
        try:
            raise RuntimeError("HubSpot refused ada@example.com with Bearer abc.def")
        except RuntimeError:
            logging.getLogger(LOGGER).exception("upsert failed")
        line = next(x for x in capsys.readouterr().err.splitlines() if LOGGER in x)
        entry = json.loads(line)
        assert "RuntimeError" in entry["exc"]
        assert "ada@example.com" not in line and "abc.def" not in line
        assert "a***@example.com" in entry["exc"]

    def test_reconfiguring_does_not_duplicate_lines(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging("INFO", "json")
        line = _emit(capsys, "json", "once")
        assert json.loads(line)["msg"] == "once"


@pytest.mark.usefixtures("restore_root_logging")
class TestConsoleFormat:
    def test_readable_not_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        line = _emit(capsys, "console", "webinar %s synced", "89412345678", webinar_id="89412345678")
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
        assert "INFO" in line
        assert LOGGER in line
        assert "webinar 89412345678 synced" in line
        assert "webinar_id=89412345678" in line

    def test_masks_too(self, capsys: pytest.CaptureFixture[str]) -> None:
        line = _emit(
            capsys,
            "console",
            "registered ada@example.com using Bearer abc.def, signature %s",
            SIGNATURE,
            email="bob@example.com",
        )
        assert "a***@example.com" in line and "ada@example.com" not in line
        assert "email=b***@example.com" in line and "bob@example.com" not in line
        assert "Bearer [redacted]" in line and "abc.def" not in line
        assert "v0=[redacted]" in line and SIGNATURE not in line

    def test_masks_structured_extra(self, capsys: pytest.CaptureFixture[str]) -> None:
        line = _emit(capsys, "console", "batch upserted", emails=["ada@example.com"])
        assert "ada@example.com" not in line


class TestMasking:
    @pytest.mark.parametrize(
        ("email", "masked"),
        [
            ("ada@example.com", "a***@example.com"),
            ("a@example.com", "a***@example.com"),
            ("Ada.Lovelace+zoom@Sub.Example.co.uk", "A***@Sub.Example.co.uk"),
            ("first_last-99@mail.example.org", "f***@mail.example.org"),
        ],
    )
    def test_mask_email(self, email: str, masked: str) -> None:
        assert mask_email(email) == masked

    def test_mask_email_leaves_non_emails(self) -> None:
        assert mask_email("not an email") == "not an email"
        assert mask_email("") == ""

    def test_redact_everything_in_one_string(self) -> None:
        text = f"to ada@example.com and bob@example.com, bearer abc.def, sig {SIGNATURE}"
        assert (
            redact(text) == "to a***@example.com and b***@example.com, bearer [redacted], sig v0=[redacted]"
        )


class TestSettingsSecrets:
    # Field name -> value, passed to Settings as keyword arguments (each field has its own type).
    SECRETS: ClassVar[dict[str, Any]] = {
        "admin_api_token": "adm-7f3c-secret",
        "zoom_webhook_secret_token": "zoom-9a1b-secret",
        "zoom_client_secret": "zcs-44d0-secret",
        "hubspot_access_token": "pat-na1-5e6f-secret",
        "hubspot_client_secret": "hcs-1122-secret",
    }

    def test_secrets_are_secretstr_and_never_printed(self) -> None:
        settings = Settings(_env_file=None, **self.SECRETS)
        assert settings.zoom_webhook_secrets == ("zoom-9a1b-secret",)
        for name, value in self.SECRETS.items():
            field = getattr(settings, name)
            assert isinstance(field, SecretStr), name
            assert field.get_secret_value() == value
        shown = repr(settings) + str(settings) + json.dumps(settings.model_dump(mode="json"))
        for value in self.SECRETS.values():
            assert value not in shown

    def test_secrets_from_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in self.SECRETS.items():
            monkeypatch.setenv(name.upper(), value)
        settings = Settings(_env_file=None)
        assert settings.admin_api_token is not None
        assert settings.admin_api_token.get_secret_value() == "adm-7f3c-secret"
        for value in self.SECRETS.values():
            assert value not in repr(settings)

    def test_webhook_secret_list_from_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ZOOM_WEBHOOK_SECRET_TOKEN", "a, b ,,")
        settings = Settings(_env_file=None)
        assert settings.zoom_webhook_secrets == ("a", "b")
        assert "a, b" not in repr(settings)

    @pytest.mark.parametrize(("raw", "expected"), [(None, ()), ("", ()), (" , ", ()), ("one", ("one",))])
    def test_webhook_secret_list_edges(self, raw: str | None, expected: tuple[str, ...]) -> None:
        settings = Settings(_env_file=None, zoom_webhook_secret_token=raw)
        assert settings.zoom_webhook_secrets == expected
