"""``/users/``: registration, login, tokens and the caller's profile."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Status

from marketlink.accounts import services
from marketlink.accounts.auth import AuthedRequest, authenticated
from marketlink.accounts.schemas import (
    AuthOut,
    LoginIn,
    LogoutIn,
    ProfilePatch,
    RefreshIn,
    RegisterIn,
    TokensOut,
    UserOut,
)
from marketlink.accounts.selectors import account_of
from marketlink.envelope import Envelope, created, ok, responses
from marketlink.throttles import SettingThrottle

router = Router(tags=["users"])


@router.post(
    "/register/",
    response=responses(201, Envelope[AuthOut], 429, body=True),
    throttle=[SettingThrottle("REGISTER_THROTTLE")],
)
def register(request: HttpRequest, payload: RegisterIn) -> Status[dict[str, Any]]:
    account = services.user_register(
        email=payload.email,
        password=payload.password,
        role=payload.role,
        first_name=payload.first_name,
        last_name=payload.last_name,
    )
    tokens = services.tokens_issue(user=account.user)
    return created({"user": account, "tokens": tokens}, "Account created.")


@router.post(
    "/login/",
    response=responses(200, Envelope[AuthOut], 401, 403, 429, body=True),
    throttle=[SettingThrottle("LOGIN_THROTTLE")],
)
def login(request: HttpRequest, payload: LoginIn) -> dict[str, Any]:
    account = services.user_login(email=payload.email, password=payload.password)
    tokens = services.tokens_issue(user=account.user)
    return ok({"user": account, "tokens": tokens}, "Logged in.")


@router.post(
    "/logout/", response=responses(200, Envelope[None], 401, body=True), auth=authenticated
)
def logout(request: AuthedRequest, payload: LogoutIn) -> dict[str, Any]:
    services.user_logout(user=request.auth, refresh_token=payload.refresh_token)
    return ok(None, "Logged out.")


@router.post("/token/refresh/", response=responses(200, Envelope[TokensOut], 401, body=True))
def token_refresh(request: HttpRequest, payload: RefreshIn) -> dict[str, Any]:
    return ok(services.tokens_refresh(refresh=payload.refresh), "Token refreshed.")


@router.get("/profile/", response=responses(200, Envelope[UserOut], 401), auth=authenticated)
def profile(request: AuthedRequest) -> dict[str, Any]:
    return ok(account_of(request.auth))


@router.patch(
    "/profile/", response=responses(200, Envelope[UserOut], 401, body=True), auth=authenticated
)
def profile_update(request: AuthedRequest, payload: ProfilePatch) -> dict[str, Any]:
    account = services.profile_update(account=account_of(request.auth), **payload.changes())
    return ok(account, "Profile updated.")
