"""The dashboard's REST client of the API: JSON in, JSON out, and two errors a page can
show — :class:`ApiDownError` (no answer) and :class:`ApiError` (a problem+json answer)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from .config import UiSettings


class ApiDownError(Exception):
    """The API did not answer (refused, reset, timed out)."""


class ApiError(Exception):
    """The API answered with an error; ``detail`` is its problem+json ``detail``, and
    ``errors`` the per-field validation errors of a 422 (``[{field, in, message}]``)."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail, self.errors = status, detail, errors


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    errors = body.get("errors", []) if isinstance(body, dict) else []
    return ApiError(response.status_code, str(detail or response.reason_phrase), errors)


class ApiClient:
    """One pooled HTTP client per dashboard process, made in the running event loop."""

    def __init__(self, settings: UiSettings) -> None:
        self.settings = settings
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            key = self.settings.api_key
            headers = {} if key is None else {"Authorization": f"Bearer {key.get_secret_value()}"}
            self._client = httpx.AsyncClient(
                base_url=self.settings.api_url, headers=headers,
                timeout=self.settings.api_timeout_s,
            )  # fmt: skip
        return self._client

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON of a 2xx answer (``None`` for 204)."""
        try:
            response = await self._http().request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ApiDownError(f"the API at {self.settings.api_url} does not answer "
                          f"({type(error).__name__})") from None  # fmt: skip
        if response.status_code >= 400:
            raise _error(response)
        return None if response.status_code == 204 else response.json()

    @contextlib.asynccontextmanager
    async def stream(self, path: str, params: Mapping[str, str]) -> AsyncIterator[httpx.Response]:
        """A streamed GET (the body not read yet); an error answer raises like
        :meth:`request`."""
        try:
            async with self._http().stream("GET", path, params=params) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _error(response)
                yield response
        except httpx.TransportError as error:
            raise ApiDownError(f"the API at {self.settings.api_url} does not answer "
                               f"({type(error).__name__})") from None  # fmt: skip

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request(
            "GET", path, params={k: v for k, v in params.items() if v is not None}
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
