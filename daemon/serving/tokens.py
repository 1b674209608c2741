"""The service's bearer tokens: read from a setting or a file, compared in constant time; never logged."""

from __future__ import annotations

import hmac
from pathlib import Path

from pydantic import SecretStr

from daemon.errors import DaemonError
from registry.settings import MIN_TOKEN_CHARS, RegistrySettings


def feedback_token(settings: RegistrySettings) -> str | None:
    """The token POST /feedback requires, None when it is open; a token file is read now."""
    return _token(settings.feedback_token, settings.feedback_token_file, "registry.feedback_token_file")


def predict_token(settings: RegistrySettings) -> str | None:
    """The token POST /predict requires, None when it is open; a token file is read now."""
    return _token(settings.predict_token, settings.predict_token_file, "registry.predict_token_file")


def _token(value: SecretStr | None, file: Path | None, setting: str) -> str | None:
    if file is None:
        return value.get_secret_value() if value is not None else None
    try:
        token = file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise DaemonError(f"{setting}={file} does not exist; write the token into it, or unset the setting") from None
    except OSError as exc:
        raise DaemonError(f"{setting}={file} cannot be read ({exc.strerror}); let the service's user read it") from None
    except UnicodeDecodeError:
        raise DaemonError(f"{setting}={file} is not UTF-8 text; write the token into it as one line") from None
    if not token:
        raise DaemonError(f"{setting}={file} is empty; write the token into it, or unset the setting")
    if len(token) < MIN_TOKEN_CHARS:
        raise DaemonError(f"{setting}={file} holds fewer than {MIN_TOKEN_CHARS} characters; write a longer token")
    return token


def bearer_matches(header: bytes | None, token: str) -> bool:
    """True when an `Authorization` header value is `Bearer <token>` (the scheme in any case)."""
    if header is None:
        return False
    scheme, _, credentials = header.strip().partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), token.encode())


def authorization(token: str | None) -> dict[str, str]:
    """The header a client sends with a request to a route that needs `token` (none when it is open)."""
    return {} if token is None else {"Authorization": f"Bearer {token}"}
