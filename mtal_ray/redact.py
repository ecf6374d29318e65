"""Credentials never leave the process: redact them from URIs before they are logged,
stored or printed.

``tracking.tracking_uri`` (and any other URI in a config) may carry a password
(``https://user:secret@mlflow.example.com``) or a token in its query
(``…?token=…``). The real URI is used to connect; everything that is written down — MLflow
params, ``config.json``, ``sweep.json``, ``trial.json``, console lines, error messages —
goes through :func:`redact_uri` / :func:`redact_secrets` first. Pure and cheap: strings
without credentials come back unchanged.

Pass secrets through the environment instead (MLflow reads ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD`` or ``MLFLOW_TRACKING_TOKEN``): then nothing needs redacting.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "is_redacted", "redact_secrets", "redact_uri", "restore_uri"]

#: What replaces a secret.
MASK = "***"

# scheme://user:password@  (the password may not hold '@', '/' or whitespace)
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]*):(?P<secret>[^\s/@]*)@")
# ?token=…, &password=… (query or fragment parameters that carry secrets)
_QUERY = re.compile(
    r"(?P<head>[?&;#](?:password|passwd|pwd|pass|token|access_token|auth_token|api_key|"
    r"apikey|secret|client_secret|sig|signature|x-amz-signature|x-amz-credential|"
    r"x-amz-security-token|sas)=)(?P<secret>[^&;#\s]*)",
    re.IGNORECASE,
)


def redact_uri(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` and every
    secret query parameter replaced by ``***``.

    Works on a bare URI and on any text that holds URIs (a log line, an error message).

    >>> redact_uri("https://alice:s3cret@mlflow.example.com:5000/")
    'https://alice:***@mlflow.example.com:5000/'
    >>> redact_uri("sqlite:///runs/mlruns.db")
    'sqlite:///runs/mlruns.db'
    """
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _QUERY.sub(lambda m: f"{m['head']}{MASK}" if m["secret"] else m[0], text)


def redact_secrets(value: Any) -> Any:
    """A copy of ``value`` (nested dicts, lists, tuples, strings) with every string passed
    through :func:`redact_uri`; other values unchanged."""
    if isinstance(value, str):
        return redact_uri(value)
    if isinstance(value, Mapping):
        return {k: redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_secrets(v) for v in value)
    return value


def is_redacted(uri: str | None) -> bool:
    """Whether ``uri`` lost a secret to :func:`redact_uri`."""
    return bool(uri) and redact_uri(uri) == uri and MASK in uri  # type: ignore[operator]


def restore_uri(uri: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """A URI to connect with in place of a redacted one read back from disk.

    ``MLFLOW_TRACKING_URI`` from the environment when set; otherwise ``uri`` without its
    credentials (MLflow then takes them from ``MLFLOW_TRACKING_USERNAME`` /
    ``MLFLOW_TRACKING_PASSWORD`` / ``MLFLOW_TRACKING_TOKEN``) and without the masked query
    parameters. A URI that was not redacted comes back unchanged.
    """
    if uri is None or not is_redacted(uri):
        return uri
    environ = os.environ if environ is None else environ
    if environ.get("MLFLOW_TRACKING_URI"):
        return environ["MLFLOW_TRACKING_URI"]
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(uri)
    netloc = parts.netloc.rpartition("@")[2]
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if v != MASK]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))
