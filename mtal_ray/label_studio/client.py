"""A small Label Studio REST client (``urllib`` + ``json``; no SDK dependency).

The token is a legacy API token (``Authorization: Token …``) or a personal access token
(a JWT refresh token, exchanged at ``/api/token/refresh`` for short-lived access tokens).
It is held in memory only: never written, never part of a message or ``repr``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from mtal_ray.errors import MtalError

__all__ = ["LabelStudioClient", "LabelStudioError", "client_from_config"]

_PAGE = 100


class LabelStudioError(MtalError):
    """The Label Studio server cannot be reached or refused a request."""


class LabelStudioClient:
    """The few endpoints a campaign needs: projects, task import, tasks with annotations."""

    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._access: str | None = None
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"LabelStudioClient({self.url!r})"

    # ------------------------------------------------------------ transport
    def _is_jwt(self) -> bool:
        return self._token.count(".") == 2

    def _auth(self) -> str:
        if not self._is_jwt():
            return f"Token {self._token}"
        if self._access is None:
            reply = self._send("POST", "/api/token/refresh", {"refresh": self._token}, auth=None)
            self._access = str(reply["access"])
        return f"Bearer {self._access}"

    def request(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        """``method path?query`` with a JSON body; the decoded JSON reply."""
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        try:
            return self._send(method, path, body, auth=self._auth())
        except LabelStudioError as err:
            if self._is_jwt() and getattr(err, "status", None) == 401:  # access token expired
                self._access = None
                return self._send(method, path, body, auth=self._auth())
            raise

    def _send(self, method: str, path: str, body: Any, *, auth: str | None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if auth is not None:
            headers["Authorization"] = auth
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as reply:
                raw = reply.read()
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")[:300].replace("\n", " ")
            if err.code in (401, 403):
                detail = "the API token was refused (check the token's environment variable)"
            error = LabelStudioError(
                f"Label Studio {self.url}: {method} {path}: {err.code} {detail}"
            )
            error.status = err.code  # type: ignore[attr-defined]
            raise error from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise LabelStudioError(f"Label Studio {self.url} is not reachable ({reason})") from None
        return json.loads(raw) if raw else None

    # ------------------------------------------------------------ endpoints
    def whoami(self) -> dict[str, Any]:
        """The token's user (also: the server answers and accepts the token)."""
        return self.request("GET", "/api/current-user/whoami")

    def projects(self) -> list[dict[str, Any]]:
        """Every project the user sees (``id``, ``title``, ``label_config``…)."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            reply = self.request("GET", "/api/projects", page=page, page_size=_PAGE)
            items = reply["results"] if isinstance(reply, dict) else reply
            out += items
            if not isinstance(reply, dict) or not reply.get("next") or not items:
                return out
            page += 1

    def project(self, project_id: int) -> dict[str, Any]:
        return self.request("GET", f"/api/projects/{project_id}")

    def create_project(self, title: str, label_config: str, description: str = "") -> dict:
        return self.request(
            "POST",
            "/api/projects",
            {"title": title, "label_config": label_config, "description": description},
        )

    def update_project(self, project_id: int, **fields: Any) -> dict[str, Any]:
        return self.request("PATCH", f"/api/projects/{project_id}", fields)

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        """Add ``tasks`` (``data`` + ``predictions``) to the project."""
        return self.request("POST", f"/api/projects/{project_id}/import", tasks)

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project with its annotations (``fields=all``)."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            try:
                reply = self.request(
                    "GET",
                    "/api/tasks",
                    project=project_id,
                    page=page,
                    page_size=_PAGE,
                    fields="all",
                )
            except LabelStudioError as err:  # past the last page
                if getattr(err, "status", None) == 404 and page > 1:
                    return out
                raise
            items = reply.get("tasks", []) if isinstance(reply, dict) else reply
            out += items
            total = reply.get("total", len(out)) if isinstance(reply, dict) else len(out)
            if not items or len(out) >= total:
                return out
            page += 1

    def annotations(self, task_id: int) -> list[dict[str, Any]]:
        return self.request("GET", f"/api/tasks/{task_id}/annotations")

    def annotate(self, task_id: int, result: list[dict[str, Any]], **fields: Any) -> dict:
        """Submit an annotation of a task (what an annotator's *Submit* does)."""
        return self.request(
            "POST", f"/api/tasks/{task_id}/annotations", {"result": result, **fields}
        )


def client_from_config(settings: Any) -> LabelStudioClient:
    """A client for ``annotation.label_studio`` (token from its ``token_env``)."""
    token = os.environ.get(settings.token_env, "").strip()
    if not token:
        raise MtalError(
            f"annotation.mode=label-studio: the environment variable {settings.token_env} "
            f"(annotation.label_studio.token_env) holds no API token for {settings.url}; "
            "set it to your Label Studio access token (Account & Settings)"
        )
    return LabelStudioClient(settings.url, token)
