"""Who may use the UI and what they may do: credentials, roles, and a login rate limit.

Credentials come from `RAG_UI__AUTH` / `RAG_UI__AUTH_FILE`, one `user:password`
or `user:password:role` per line. A role is `editor` (ask, upload, delete,
create collections; the default, as before roles existed) or `reader` (ask
only). A password may itself contain `:`; only a last `:reader` / `:editor` is
read as the role.

Example::

    users = parse_users(["alice:s3cret", "bob:pw:reader"])
    users["bob"].role          # 'reader'
    guard = LoginGuard(users, max_failures=5, lockout_s=300)
    guard("bob", "wrong")      # False; after 5 failures even the right password is refused for 5 minutes
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from rag.core.config import UISettings
from rag.core.errors import ConfigError

ROLES = ("editor", "reader")
DEFAULT_ROLE = "editor"


@dataclass(frozen=True)
class User:
    name: str
    password: str
    role: str = DEFAULT_ROLE


def parse_users(lines: Iterable[tuple[str, str] | str]) -> dict[str, User]:
    """`user:password[:role]` lines (or (where, line) pairs, for error messages) -> users by name."""
    users: dict[str, User] = {}
    for item in lines:
        where, line = item if isinstance(item, tuple) else ("RAG_UI__AUTH", item)
        user, sep, rest = line.partition(":")
        role = DEFAULT_ROLE
        head, colon, last = rest.rpartition(":")
        if colon and last.strip().lower() in ROLES:
            rest, role = head, last.strip().lower()
        if not sep or not user.strip() or not rest:
            raise ConfigError(f"bad UI credentials in {where}: expected `user:password` or `user:password:reader`")
        users[user.strip()] = User(user.strip(), rest, role)
    return users


def load_users(ui: UISettings) -> dict[str, User]:
    """The users of `ui.auth` and of the lines of `ui.auth_file` (`#` comments and blank lines skipped)."""
    lines: list[tuple[str, str]] = []
    if ui.auth:
        lines.append(("RAG_UI__AUTH", ui.auth))
    if ui.auth_file:
        path = Path(ui.auth_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the UI auth file {path} ({exc.strerror or exc}): "
                              "fix RAG_UI__AUTH_FILE or create the file with `user:password` lines") from exc
        lines += [(f"{path}", ln.strip()) for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return parse_users(lines)


def load_auth(ui: UISettings) -> list[tuple[str, str]]:
    """The `user:password` pairs from `ui.auth` and `ui.auth_file` (empty when neither is set)."""
    return [(u.name, u.password) for u in load_users(ui).values()]


def load_guard(ui: UISettings) -> LoginGuard | None:
    """The login check with roles and a failure limit, or None when no credentials are configured."""
    users = load_users(ui)
    if not users:
        return None
    return LoginGuard(users, max_failures=ui.login_max_failures, lockout_s=ui.login_lockout_s)


class FailureWindow:
    """Failure times per key (a user name, a client address) within the last `lockout_s` seconds."""

    def __init__(self, lockout_s: float, clock: Callable[[], float]):
        self.lockout_s = lockout_s
        self.clock = clock
        self._times: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def count(self, key: str, now: float | None = None) -> int:
        """Recent failures of `key` (older ones are forgotten)."""
        now = self.clock() if now is None else now
        with self._lock:
            recent = [t for t in self._times.get(key, []) if now - t < self.lockout_s]
            self._times[key] = recent
            return len(recent)

    def add(self, key: str, now: float | None = None) -> None:
        with self._lock:
            self._times.setdefault(key, []).append(self.clock() if now is None else now)

    def clear(self, key: str) -> None:
        with self._lock:
            self._times.pop(key, None)


class LoginGuard:
    """Gradio's `auth` callable: checks passwords, and refuses a user for `lockout_s` after `max_failures`.

    Failures are counted per user name (Gradio hands the callable no client
    address), and also in total, so guessing across many names is slowed too:
    after `max_failures * 10` failures from anyone within `lockout_s`, every
    login waits out the lockout.
    """

    def __init__(self, users: dict[str, User], *, max_failures: int = 5, lockout_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic):
        self.users = users
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.clock = clock
        self._failures = FailureWindow(lockout_s, clock)
        self._lock = threading.Lock()  # the check, the comparison and the count happen as one step

    def __call__(self, username: str, password: str) -> bool:
        now = self.clock()
        with self._lock:
            if self.locked(username, now):
                return False
            user = self.users.get(username)
            # compare against something even for unknown users, so timing does not reveal names
            expected = user.password if user else "\0" * max(1, len(password or ""))
            ok = hmac.compare_digest(str(password or "").encode(), expected.encode()) and user is not None
            if ok:
                self._failures.clear(username)
            else:
                self._failures.add(username, now)
                self._failures.add("", now)  # all names together
            return ok

    def locked(self, username: str, now: float | None = None) -> bool:
        """Whether `username` (or everyone, after a spray of failures) is refused right now."""
        now = self.clock() if now is None else now
        return any(self._failures.count(key, now) >= limit
                   for key, limit in ((username, self.max_failures), ("", self.max_failures * 10)))

    def role(self, username: str | None) -> str:
        user = self.users.get(username or "")
        return user.role if user else "reader"


class LoginRateLimit:
    """ASGI middleware: refuses `POST /login` from a client address with too many recent failures.

    Gradio's `auth` callable never sees the client's address, so the per-address
    count is kept here, from the status of each login response (400: wrong
    credentials, 200: signed in, which clears the address's count). A refused
    attempt gets HTTP 429 and never reaches the password check. Behind a
    reverse proxy every client has the proxy's address: the limit then applies
    to all of them together.
    """

    def __init__(self, app, *, max_failures: int = 10, lockout_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic):
        self.app = app
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self._failures = FailureWindow(lockout_s, clock)

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http" or scope.get("method") != "POST" \
                or scope.get("path", "").rstrip("/").rsplit("/", 1)[-1] != "login":
            return await self.app(scope, receive, send)
        address = (scope.get("client") or ("?", 0))[0]
        if self._failures.count(address) >= self.max_failures:
            body = b'{"detail":"Too many failed logins from this address: try again later."}'
            await send({"type": "http.response.start", "status": 429,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"retry-after", str(int(self.lockout_s)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return

        async def watch(message):
            if message["type"] == "http.response.start":
                if message["status"] == 400:
                    self._failures.add(address)
                elif message["status"] < 300:
                    self._failures.clear(address)
            await send(message)

        return await self.app(scope, receive, watch)
