"""A brand-new ``startproject`` site with only the README's setup lines serves the API.

The package is installed from this checkout into a fresh virtualenv (no system site-packages, so
nothing from the development environment leaks in); a new site gets exactly the lines of the
README's "Add marketlink to an existing Django site" section, read from the README itself; then
``migrate``, ``check`` and a real ``runserver`` that a vendor and a customer use over HTTP, up to
a booking.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SECTION = "## Add marketlink to an existing Django site"
PASSWORD = "Sturdy-passw0rd!"
IN_CI = os.environ.get("CI", "").lower() == "true"
# What the development environment sets and a fresh site must not inherit.
LEAKY_ENV = {"DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV", "DATABASE_URL", "REDIS_URL"}


def documented_setup() -> tuple[str, str]:
    """The README's Python setup block, split into its settings.py and urls.py parts."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert SECTION in readme, f"the README has no {SECTION!r} section"
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert block, "the README's setup section has no python block"
    settings_part, marker, urls_part = block.group(1).partition("# urls.py")
    assert marker, "the README's setup block has no '# urls.py' part"
    return settings_part, marker + urls_part


def run(args: list[Any], *, cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result.stdout + result.stderr


def uv() -> str | None:
    found = shutil.which("uv") or Path(sys.executable).with_name("uv")
    return str(found) if found and Path(found).exists() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client:
    """JSON over real HTTP; answers ``(status, parsed body)`` for errors too."""

    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body: Any = None, token: str = "") -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            self.base + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def expect(answer: tuple[int, Any], status: int) -> Any:
    """The ``data`` of an answer that must have ``status`` and be in the envelope."""
    code, body = answer
    assert code == status, f"expected {status}, got {code}: {body}"
    assert isinstance(body, dict), body
    assert body["success"] is (status < 400), body
    assert isinstance(body["message"], str), body
    return body["data"]


@pytest.fixture(scope="module")
def fresh_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in LEAKY_ENV}


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory, fresh_env: dict[str, str]) -> Path:
    """A new virtualenv of the running Python with marketlink installed from this checkout."""
    root = tmp_path_factory.mktemp("fresh")
    venv = root / "venv"
    made = subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, check=False
    )
    if made.returncode != 0:
        reason = f"cannot create a virtualenv with {sys.executable}: {made.stderr.strip()}"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    # Build from a copy: an in-tree build would leave build/ and egg-info in the checkout.
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    installer = uv()
    if installer:
        command = [installer, "pip", "install", "--python", python, source]
    else:
        command = [python, "-m", "pip", "install", "--quiet", source]
    run(command, cwd=root, env=fresh_env, timeout=900)
    return python


@pytest.fixture(scope="module")
def site(venv_python: Path, fresh_env: dict[str, str]) -> Path:
    """``startproject mysite`` plus the README's lines, migrated and checked."""
    root = venv_python.parents[2]
    run([venv_python, "-m", "django", "startproject", "mysite"], cwd=root, env=fresh_env)
    project = root / "mysite"
    settings_part, urls_part = documented_setup()
    with (project / "mysite" / "settings.py").open("a", encoding="utf-8") as settings:
        settings.write("\n" + settings_part)
    with (project / "mysite" / "urls.py").open("a", encoding="utf-8") as urls:
        urls.write("\n" + urls_part)
    run([venv_python, "manage.py", "migrate", "--no-input"], cwd=project, env=fresh_env)
    output = run([venv_python, "manage.py", "check"], cwd=project, env=fresh_env)
    assert "no issues" in output, output
    return project


@pytest.fixture(scope="module")
def server(site: Path, venv_python: Path, fresh_env: dict[str, str]) -> Iterator[Client]:
    port = free_port()
    log = (site / "runserver.log").open("w+", encoding="utf-8")
    process = subprocess.Popen(
        [venv_python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=site,
        env={**fresh_env, "PYTHONUNBUFFERED": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = Client(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"runserver exited with {process.returncode}:\n{log.read()[-4000:]}")
            try:
                if client.call("GET", "/api/openapi.json")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "runserver did not answer within 60 s"
            time.sleep(0.2)
        yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.seek(0)
        print(log.read()[-4000:])  # shown by pytest when a test failed
        log.close()


def test_vendor_and_customer_use_a_fresh_site(server: Client) -> None:
    vendor = expect(
        server.call(
            "POST",
            "/api/users/register/",
            {"email": "Vendor@Example.com", "password": PASSWORD, "role": "VENDOR"},
        ),
        201,
    )
    assert vendor["user"]["role"] == "VENDOR"
    assert vendor["user"]["email"] == "vendor@example.com"

    login = expect(
        server.call(
            "POST", "/api/users/login/", {"email": "vendor@example.com", "password": PASSWORD}
        ),
        200,
    )
    token = login["tokens"]["access"]
    assert login["user"]["id"] == vendor["user"]["id"]

    profile = expect(
        server.call(
            "POST",
            "/api/vendors/profile/",
            {"business_name": "Fresh Garage", "address": "1 New Street"},
            token,
        ),
        201,
    )
    assert profile["is_active"] is True

    expect(server.call("POST", "/api/services/", {"name": "Oil change"}), 401)
    service = expect(
        server.call("POST", "/api/services/", {"name": "Oil change"}, token),
        201,
    )
    assert service["vendor"]["id"] == profile["id"]
    variant = expect(
        server.call(
            "POST",
            f"/api/services/{service['id']}/variants/",
            {"name": "Synthetic", "price": "49.90", "estimated_minutes": 45, "stock": 3},
            token,
        ),
        201,
    )
    assert variant["price"] == "49.90"

    status, listing = server.call("GET", "/api/services/")
    assert status == 200, listing
    assert listing["success"] is True
    assert listing["pagination"]["count"] == 1
    [listed] = listing["data"]
    assert listed["id"] == service["id"]
    assert [v["id"] for v in listed["variants"]] == [variant["id"]]

    customer = expect(
        server.call(
            "POST",
            "/api/users/register/",
            {"email": "customer@example.com", "password": PASSWORD, "role": "CUSTOMER"},
        ),
        201,
    )
    availability = expect(
        server.call(
            "GET",
            f"/api/services/variants/{variant['id']}/availability/",
            token=customer["tokens"]["access"],
        ),
        200,
    )
    assert availability["is_available"] is True
    assert availability["available_stock"] == 3

    order = expect(
        server.call(
            "POST", "/api/orders/", {"variant_id": variant["id"]}, customer["tokens"]["access"]
        ),
        201,
    )
    assert order["variant"]["id"] == variant["id"]
    assert order["payment_url"]
    availability = expect(
        server.call(
            "GET",
            f"/api/services/variants/{variant['id']}/availability/",
            token=customer["tokens"]["access"],
        ),
        200,
    )
    assert availability["available_stock"] == 2


def test_fresh_site_serves_the_docs(server: Client) -> None:
    request = urllib.request.Request(server.base + "/api/docs")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert "text/html" in response.headers["Content-Type"]
