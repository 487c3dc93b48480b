"""HTTP Basic for the API (--api-auth) and the warning when an open API is exposed to the network."""

from __future__ import annotations

import secrets
import sys
from typing import Callable

from fastapi import Depends, HTTPException
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from sdui.settings import Settings

_basic = HTTPBasic(auto_error=False)


def make_owner_dependency(credentials: list[tuple[str, str]]) -> Callable[..., str]:
    """A FastAPI dependency: 401 unless the Basic credentials match; returns the job owner ("api[:user]")."""

    # async: FastAPI runs it on the event loop, so a full threadpool never delays the auth check.
    async def owner(given: HTTPBasicCredentials | None = Depends(_basic)) -> str:
        if not credentials:
            return "api"
        if given is not None:
            for user, password in credentials:
                # Compare every pair in full so timing does not tell which part was wrong.
                user_ok = secrets.compare_digest(given.username.encode(), user.encode())
                pass_ok = secrets.compare_digest(given.password.encode(), password.encode())
                if user_ok and pass_ok:
                    return f"api:{user}"
        raise HTTPException(status_code=401, detail="the API needs valid --api-auth credentials (HTTP Basic)",
                            headers={"WWW-Authenticate": "Basic"})

    return owner


def warn_if_exposed(settings: Settings) -> str | None:
    """Print (and return) a warning when --api is reachable from the network without --api-auth."""
    if not settings.api or settings.api_auth or not (settings.listen or settings.share):
        return None
    how = "--share" if settings.share else "--listen"
    message = (f"sdui: WARNING: the API is served with {how} but without --api-auth: anyone who can reach "
               "this server can generate images and change its options. Add --api-auth user:password.")
    print(message, file=sys.stderr)
    return message
