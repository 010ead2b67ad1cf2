from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from marketlink.accounts.models import Account, Role
from marketlink.testing.factories import DEFAULT_PASSWORD, AccountFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "Sturdy-passw0rd!"


def register(api, **fields):
    body = {"email": "new@example.com", "password": PASSWORD, "role": "CUSTOMER", **fields}
    return api.post("/users/register/", body)


def test_register_returns_user_and_working_tokens(api):
    response = register(api, email="Ann@Example.com", first_name="Ann", role="VENDOR")

    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    user = body["data"]["user"]
    assert user["email"] == "ann@example.com"
    assert user["role"] == "VENDOR"
    assert user["first_name"] == "Ann"
    assert set(user) == {"id", "email", "first_name", "last_name", "role", "date_joined"}
    profile = api.get("/users/profile/", token=body["data"]["tokens"]["access"])
    assert profile.status_code == 200
    assert profile.json()["data"]["id"] == user["id"]


def test_register_does_not_create_a_vendor_profile(api):
    register(api, role="VENDOR")
    user = get_user_model().objects.get()
    assert not hasattr(user, "marketlink_vendor") or user.marketlink_vendor is None


def test_admin_cannot_self_register(api):
    response = register(api, role="ADMIN")
    assert response.status_code == 400
    assert "ADMIN" in response.json()["message"]
    assert not Account.objects.exists()


def test_email_is_unique_case_insensitively(api):
    assert register(api, email="dup@example.com").status_code == 201
    response = register(api, email="DUP@example.COM")
    assert response.status_code == 400
    assert response.json()["message"] == "a user with this email already exists"
    assert response.json()["errors"][0]["loc"] == ["body", "email"]


def test_password_validators_apply(api):
    response = register(api, password="123")
    assert response.status_code == 400
    assert response.json()["errors"][0]["loc"] == ["body", "password"]
    assert "too short" in response.json()["message"]


def test_password2_must_match(api):
    response = register(api, password2="something-else-entirely")
    assert response.status_code == 400
    assert "password2 does not match" in response.json()["message"]
    assert register(api, password2=PASSWORD).status_code == 201


def test_invalid_email_is_a_400(api):
    response = register(api, email="not-an-email")
    assert response.status_code == 400
    assert "email" in response.json()["message"]


def test_login_is_case_insensitive_and_checks_password(api):
    account = AccountFactory(user__email="Bob@Example.com")
    ok = api.post("/users/login/", {"email": "BOB@example.com", "password": DEFAULT_PASSWORD})
    assert ok.status_code == 200
    assert ok.json()["data"]["user"]["id"] == str(account.id)
    wrong = api.post("/users/login/", {"email": "bob@example.com", "password": "nope"})
    assert wrong.status_code == 401
    unknown = api.post("/users/login/", {"email": "ghost@example.com", "password": "nope"})
    assert unknown.status_code == 401
    assert wrong.json()["message"] == unknown.json()["message"]


def test_inactive_user_login_is_403(api):
    account = AccountFactory()
    account.user.is_active = False
    account.user.save()
    response = api.post("/users/login/", {"email": account.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 403


def test_host_made_superuser_can_log_in_as_admin(api):
    user_model = get_user_model()
    user = user_model(is_staff=True, is_superuser=True)
    setattr(user, user_model.get_email_field_name(), "root@example.com")
    setattr(user, user_model.USERNAME_FIELD, "root@example.com")
    user.set_password(PASSWORD)
    user.save()
    response = api.post("/users/login/", {"email": "root@example.com", "password": PASSWORD})
    assert response.status_code == 200
    assert response.json()["data"]["user"]["role"] == "ADMIN"


def test_staff_count_as_admin(api, staff_user):
    assert api.get("/users/profile/", user=staff_user).json()["data"]["role"] == Role.ADMIN


def test_refresh_rotates_and_old_token_is_spent(api):
    tokens = register(api).json()["data"]["tokens"]
    first = api.post("/users/token/refresh/", {"refresh": tokens["refresh"]})
    assert first.status_code == 200
    new = first.json()["data"]
    assert set(new) == {"access", "refresh"}
    assert api.get("/users/profile/", token=new["access"]).status_code == 200
    again = api.post("/users/token/refresh/", {"refresh": tokens["refresh"]})
    assert again.status_code == 401


def test_refresh_refuses_access_tokens_and_garbage(api):
    tokens = register(api).json()["data"]["tokens"]
    assert api.post("/users/token/refresh/", {"refresh": tokens["access"]}).status_code == 401
    assert api.post("/users/token/refresh/", {"refresh": "garbage"}).status_code == 401


def test_logout_blacklists_the_refresh_token(api):
    tokens = register(api).json()["data"]["tokens"]
    out = api.post("/users/logout/", {"refresh_token": tokens["refresh"]}, token=tokens["access"])
    assert out.status_code == 200
    assert api.post("/users/token/refresh/", {"refresh": tokens["refresh"]}).status_code == 401


def test_logout_refuses_someone_elses_refresh_token(api):
    mine = register(api, email="me@example.com").json()["data"]["tokens"]
    theirs = register(api, email="them@example.com").json()["data"]["tokens"]
    response = api.post(
        "/users/logout/", {"refresh_token": theirs["refresh"]}, token=mine["access"]
    )
    assert response.status_code == 400
    assert api.post("/users/token/refresh/", {"refresh": theirs["refresh"]}).status_code == 200


def test_profile_patch_changes_names_not_role_or_email(api):
    account = AccountFactory()
    response = api.patch(
        "/users/profile/",
        {"first_name": "Zed", "role": "ADMIN", "email": "x@example.com"},
        user=account.user,
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["first_name"] == "Zed"
    assert data["role"] == "CUSTOMER"
    assert data["email"] == account.email


def test_profile_patch_refuses_null(api):
    account = AccountFactory()
    response = api.patch("/users/profile/", {"first_name": None}, user=account.user)
    assert response.status_code == 400
    assert "first_name may not be null" in response.json()["message"]


def test_access_token_lifetime_comes_from_settings(api, settings):
    import jwt

    settings.MARKETLINK = {"ACCESS_TOKEN_LIFETIME": 120, "REFRESH_TOKEN_LIFETIME": 600}
    tokens = register(api).json()["data"]["tokens"]
    access = jwt.decode(tokens["access"], options={"verify_signature": False})
    refresh = jwt.decode(tokens["refresh"], options={"verify_signature": False})
    assert access["exp"] - access["iat"] == 120
    assert refresh["exp"] - refresh["iat"] == 600


def test_login_is_throttled_with_429_in_the_envelope(api, settings):
    settings.MARKETLINK = {"LOGIN_THROTTLE": "3/min"}
    body = {"email": "x@example.com", "password": "nope"}
    statuses = [api.post("/users/login/", body).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    throttled = api.post("/users/login/", body)
    assert throttled.json()["success"] is False
    assert "Retry-After" in throttled.headers


def test_register_is_throttled(api, settings):
    settings.MARKETLINK = {"REGISTER_THROTTLE": "2/hour"}
    assert register(api, email="a@example.com").status_code == 201
    assert register(api, email="b@example.com").status_code == 201
    assert register(api, email="c@example.com").status_code == 429


def test_login_throttle_is_not_fooled_by_x_forwarded_for(api, settings):
    # Without NINJA_NUM_PROXIES the header is the client's own say-so: a brute-forcer would send
    # a new address with every attempt.
    settings.MARKETLINK = {"LOGIN_THROTTLE": "3/min"}
    body = {"email": "x@example.com", "password": "nope"}
    statuses = [
        api.post("/users/login/", body, headers={"X-Forwarded-For": f"10.0.0.{n}"}).status_code
        for n in range(4)
    ]
    assert statuses == [401, 401, 401, 429]


def test_login_throttle_uses_the_proxy_address_when_configured(api, settings):
    settings.MARKETLINK = {"LOGIN_THROTTLE": "1/min"}
    settings.NINJA_NUM_PROXIES = 1
    body = {"email": "x@example.com", "password": "nope"}
    first = api.post("/users/login/", body, headers={"X-Forwarded-For": "203.0.113.1"})
    other_client = api.post("/users/login/", body, headers={"X-Forwarded-For": "203.0.113.2"})
    same_client = api.post("/users/login/", body, headers={"X-Forwarded-For": "203.0.113.1"})
    assert [first.status_code, other_client.status_code, same_client.status_code] == [401, 401, 429]


@pytest.mark.parametrize("user_id", ["abc", {"id": 1}, [1]])
def test_signed_token_with_a_malformed_user_id_is_401(api, settings, user_id):
    # A token this site's key signed but for another user model or service (the same key, a
    # different id type) is not ours: 401, not a 500.
    import jwt

    tokens = register(api).json()["data"]["tokens"]
    for kind, token in tokens.items():
        claims = jwt.decode(token, options={"verify_signature": False})
        forged = jwt.encode({**claims, "user_id": user_id}, settings.SECRET_KEY, algorithm="HS256")
        if kind == "access":
            response = api.get("/users/profile/", token=forged)
        else:
            response = api.post("/users/token/refresh/", {"refresh": forged})
        assert response.status_code == 401, (kind, response.content)
        assert response.json()["success"] is False


def test_host_users_sharing_an_address_each_get_an_account(api):
    # Hosts' own users need not have unique addresses (auth.User does not enforce it; a custom
    # user's unique email is case-sensitive): a second one must not be a 500 when it first
    # meets marketlink.
    first = UserFactory(email="Shared@Example.com")
    second = UserFactory(email="shared@example.com")
    assert api.get("/users/profile/", user=first).json()["data"]["email"] == "shared@example.com"
    response = api.get("/users/profile/", user=second)
    assert response.status_code == 200, response.content
    assert response.json()["data"]["role"] == "CUSTOMER"
    # Logging in by the address still reaches the user who has it as a marketlink account.
    login = api.post("/users/login/", {"email": "shared@example.com", "password": DEFAULT_PASSWORD})
    assert login.json()["data"]["user"]["id"] == str(first.marketlink_account.id)


def test_a_reused_token_sees_profile_changes_at_once(api):
    tokens = register(api).json()["data"]["tokens"]
    assert api.get("/users/profile/", token=tokens["access"]).status_code == 200
    api.patch("/users/profile/", {"first_name": "Renamed"}, token=tokens["access"])
    profile = api.get("/users/profile/", token=tokens["access"]).json()["data"]
    assert profile["first_name"] == "Renamed"


# Long enough that the two requests before the wait fall inside it on a loaded CI machine.
USER_CACHE = 2.0


def test_a_deactivated_user_loses_access_within_the_user_cache_time(api, settings):
    import time

    settings.MARKETLINK = {"AUTH_USER_CACHE": USER_CACHE}
    tokens = register(api).json()["data"]["tokens"]
    assert api.get("/users/profile/", token=tokens["access"]).status_code == 200
    get_user_model().objects.update(is_active=False)
    assert api.get("/users/profile/", token=tokens["access"]).status_code == 200  # cached
    time.sleep(USER_CACHE + 0.1)
    assert api.get("/users/profile/", token=tokens["access"]).status_code == 401


def test_without_the_user_cache_deactivation_is_immediate(api, settings):
    settings.MARKETLINK = {"AUTH_USER_CACHE": 0}
    tokens = register(api).json()["data"]["tokens"]
    assert api.get("/users/profile/", token=tokens["access"]).status_code == 200
    get_user_model().objects.update(is_active=False)
    assert api.get("/users/profile/", token=tokens["access"]).status_code == 401


# "İ" (U+0130) lower-cases to two characters: an address that fits the column as sent would not
# fit it as stored.
DOUBLING_EMAIL = "İ" * 236 + "@example.com"


def test_an_email_too_long_once_lowercased_is_a_400_naming_email(api):
    assert len(DOUBLING_EMAIL) <= 254 < len(DOUBLING_EMAIL.lower())
    response = register(api, email=DOUBLING_EMAIL)
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["loc"] == ["body", "email"]
    # 254 is ours; the stock User keeps the address as its username too, at most 150 there.
    assert re.fullmatch(r"email must be at most (254|150) characters", response.json()["message"])
    assert not Account.objects.exists()


@pytest.mark.postgres
def test_an_email_too_long_once_lowercased_is_a_400_on_postgresql(api):
    test_an_email_too_long_once_lowercased_is_a_400_naming_email(api)


@pytest.mark.postgres
def test_login_with_an_email_too_long_once_lowercased_is_refused_not_a_500(api):
    response = api.post("/users/login/", {"email": DOUBLING_EMAIL, "password": PASSWORD})
    assert response.status_code in {400, 401}, response.content
    assert response.json()["success"] is False


@pytest.mark.postgres
def test_a_host_user_whose_email_is_too_long_once_lowercased_still_gets_an_account(api):
    user = UserFactory(email=DOUBLING_EMAIL.replace("@", "")[:230] + "@example.com")
    response = api.get("/users/profile/", user=user)
    assert response.status_code == 200, response.content


def test_the_user_cache_gives_each_request_its_own_user_and_account(settings):
    """Two requests with one token get equal users, never the same objects: what one request
    changes on its user (or its account) is not seen by the next."""
    from marketlink.accounts.auth import recent_users
    from marketlink.testing.factories import AccountFactory

    settings.MARKETLINK = {"AUTH_USER_CACHE": 60}
    account = AccountFactory()
    first = recent_users.get("jti-own-objects", account.user.pk)
    first.first_name = "changed by the first request"
    first.marketlink_account.role = "VENDOR"
    second = recent_users.get("jti-own-objects", account.user.pk)

    assert second is not first
    assert second.pk == account.user.pk
    assert second.first_name == account.user.first_name
    assert second.marketlink_account.role == account.role
    assert second.marketlink_account.user is second
