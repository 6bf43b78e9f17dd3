"""A desk user over plain HTTP (aiohttp with a cookie jar): log in, read pages, post forms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import aiohttp

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class DeskClient:
    base: str
    http: aiohttp.ClientSession

    @classmethod
    def open(cls, base: str) -> DeskClient:
        jar = aiohttp.CookieJar(unsafe=True)  # the nodes listen on 127.0.0.1
        return cls(base, aiohttp.ClientSession(cookie_jar=jar))

    async def close(self) -> None:
        await self.http.close()

    async def login(self, token: str, **headers: str) -> aiohttp.ClientResponse:
        async with self.http.post(
            self.base + "/desk/login",
            data={"token": token},
            headers=headers,
            allow_redirects=False,
        ) as response:
            await response.read()
            return response

    async def page(self, path: str, **headers: str) -> tuple[int, str, Any]:
        async with self.http.get(self.base + path, headers=headers, allow_redirects=False) as r:
            return r.status, await r.text(), r.headers

    async def csrf(self, path: str = "/desk/alerts") -> str:
        status, text, _ = await self.page(path)
        assert status == 200, (status, text[:500])
        match = CSRF.search(text)
        assert match, "no CSRF token on the page"
        return match.group(1)

    async def post(self, path: str, form: dict[str, str], **headers: str) -> tuple[int, str, Any]:
        async with self.http.post(
            self.base + path, data=form, headers=headers, allow_redirects=False
        ) as r:
            return r.status, await r.text(), r.headers
