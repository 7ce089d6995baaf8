"""Configuration classes; environment variables are read by `from_environment()` at factory time."""

import ipaddress
import os
from datetime import timedelta

PRACTICE_PROFILE = {
    "name": "coeo",
    "street": "555 2nd Ave, Suite C 650",
    "city": "Collegeville",
    "state": "PA",
    "postal_code": "19426",
    "phone": "(215) 360-3308",
    "phone_href": "+12153603308",
    "email": "team@coeocommunity.com",
    "website": "https://coeocommunity.com",
}


class Config:
    """Defaults shared by every environment."""

    ENV_NAME = "base"
    DEBUG = False
    TESTING = False
    SECRET_KEY: str | None = None
    SQLALCHEMY_DATABASE_URI: str | None = None
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    MAX_CONTENT_LENGTH = 60 * 1024 * 1024  # five 10 MB attachments plus the form
    MAX_FORM_MEMORY_SIZE = 500 * 1024

    # Keys: see portal/crypto. Never derived from SECRET_KEY.
    PORTAL_MASTER_KEYS: str | None = None
    PORTAL_MASTER_KEY_FILE: str | None = None
    PORTAL_INDEX_KEY: str | None = None
    PORTAL_DEV_KEYS = False  # create instance/ key files when no key is configured

    # Sessions
    SESSION_IDLE_MINUTES = 15
    SESSION_ABSOLUTE_HOURS = 12
    SESSION_COOKIE_NAME = "coeo_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    PERMANENT_SESSION_LIFETIME = timedelta(hours=12)
    WTF_CSRF_TIME_LIMIT = 12 * 3600
    # Flask-WTF's HTTPS mode also demands a same-site Referer, which browsers never send under
    # our Referrer-Policy: no-referrer: every form would fail in production. The token (bound
    # to the session) and SameSite=Lax cookies are the protection.
    WTF_CSRF_SSL_STRICT = False

    # Passwords (Argon2id); tests use cheaper parameters
    ARGON2_TIME_COST = 3
    ARGON2_MEMORY_COST = 64 * 1024
    ARGON2_PARALLELISM = 1

    # Sign-in throttling
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_ENABLED = True
    SIGNIN_RATE_PER_IP = "30 per 5 minutes"
    SIGNIN_RATE_PER_ACCOUNT = "10 per 5 minutes"
    LOCKOUT_THRESHOLD = 10
    LOCKOUT_MINUTES = 15
    DISABLE_THRESHOLD = 100

    # Sessions and sign-in attempts (with their sealed IP addresses and user agents) whose
    # last activity is older than this are purged by the deliver-mail loop.
    METADATA_RETENTION_DAYS = 90

    # Tokens
    INVITATION_HOURS = 72
    RESET_MINUTES = 30

    # Mail
    MAIL_SERVER: str | None = None
    MAIL_PORT = 25
    MAIL_USERNAME: str | None = None
    MAIL_PASSWORD: str | None = None
    MAIL_USE_TLS = False  # STARTTLS on a plain connection (usually port 587)
    MAIL_USE_SSL = False  # implicit TLS from the first byte (usually port 465)
    # Production refuses mail without TLS unless this names, in one line, why plain text to a
    # relay on this machine (127.0.0.1, ::1, localhost) is safe; see mail_transport_problems.
    MAIL_ALLOW_PLAINTEXT_LOOPBACK: str | None = None
    MAIL_FROM = "coeo portal <no-reply@coeocommunity.com>"
    MAIL_TIMEOUT = 10
    # Delivered mail is deleted this long after it went (the deliver-mail loop, each round):
    # a waiting email says whom it is for, so none is kept once it is sent.
    MAIL_KEEP_SENT_MINUTES = 0
    MAIL_SEND_AFTER_COMMIT = True
    PORTAL_BASE_URL = "http://127.0.0.1:5000"

    # The practice
    PRACTICE = PRACTICE_PROFILE
    PRACTICE_TIMEZONE = "America/New_York"
    REPLY_TIME_TEXT = "within 2 business days"
    QUICK_EXIT_URL = "https://www.weather.gov/"

    # Messaging and attachments
    MESSAGE_MAX_CHARS = 5000
    ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024
    ATTACHMENT_MAX_COUNT = 5
    NOTIFY_THROTTLE_MINUTES = 15
    # Drafts (words saved as they are typed, sealed) not touched for this long are purged
    # by the deliver-mail loop.
    DRAFT_DAYS = 30
    # A crisis-flagged message nobody has marked "seen and acted on" is escalated to the
    # covering clinicians after CRISIS_ESCALATE_MINUTES, then again every CRISIS_REPEAT_MINUTES
    # (the practice's escalation interval), by the deliver-mail loop.
    CRISIS_ESCALATE_MINUTES = 30
    CRISIS_REPEAT_MINUTES = 60

    # Estimates
    GFE_DISPUTE_THRESHOLD_CENTS = 40000
    GFE_WARNING_THRESHOLD_CENTS = 30000

    # Deployment
    PROXY_FIX_HOPS = 0
    HSTS = False
    LOG_JSON = False


class DevelopmentConfig(Config):
    """`make run`: SQLite under instance/, console mail, key files created on first start."""

    ENV_NAME = "development"
    DEBUG = False
    SECRET_KEY = None  # generated into instance/ by the factory when missing
    PORTAL_DEV_KEYS = True


class TestingConfig(Config):
    """The test suite: cheap hashes, no rate limits unless a test asks, in-memory keys."""

    ENV_NAME = "testing"
    TESTING = True
    SECRET_KEY = "test-secret-key-not-for-production-use-0123456789"  # noqa: S105
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 8
    RATELIMIT_ENABLED = False
    MAIL_SEND_AFTER_COMMIT = False
    PORTAL_MASTER_KEYS = "test1:" + "A" * 43
    PORTAL_INDEX_KEY = "B" * 43


class ProductionConfig(Config):
    """Production: every secret from the environment, secure cookies, HSTS."""

    ENV_NAME = "production"
    SESSION_COOKIE_NAME = "__Host-coeo_session"
    SESSION_COOKIE_SECURE = True
    HSTS = True
    LOG_JSON = True


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}

_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False,
         "no": False, "off": False, "": False}

# Settings an operator may give as environment variables, and how to parse them.
ENV_SETTINGS: dict[str, type] = {
    "SECRET_KEY": str,
    "PORTAL_MASTER_KEYS": str,
    "PORTAL_MASTER_KEY_FILE": str,
    "PORTAL_INDEX_KEY": str,
    "RATELIMIT_STORAGE_URI": str,
    "MAIL_SERVER": str,
    "MAIL_PORT": int,
    "MAIL_USERNAME": str,
    "MAIL_PASSWORD": str,
    "MAIL_USE_TLS": bool,
    "MAIL_USE_SSL": bool,
    "MAIL_ALLOW_PLAINTEXT_LOOPBACK": str,
    "MAIL_FROM": str,
    "PORTAL_BASE_URL": str,
    "SESSION_IDLE_MINUTES": int,
    "CRISIS_ESCALATE_MINUTES": int,
    "CRISIS_REPEAT_MINUTES": int,
    "SESSION_ABSOLUTE_HOURS": int,
    "METADATA_RETENTION_DAYS": int,
    "REPLY_TIME_TEXT": str,
    "PRACTICE_TIMEZONE": str,
    "ATTACHMENT_MAX_BYTES": int,
    "PROXY_FIX_HOPS": int,
    "DEBUG": bool,
    "RATELIMIT_ENABLED": bool,
}


def config_class(name: str | None = None) -> type[Config]:
    """Pick the config class named by PORTAL_ENV (development by default)."""
    name = name or os.environ.get("PORTAL_ENV", "development")
    try:
        return CONFIGS[name]
    except KeyError:
        raise SystemExit(f"PORTAL_ENV: unknown environment {name!r} "
                         f"(use one of {', '.join(CONFIGS)})") from None


def from_environment() -> dict:
    """Read the operator's settings from the environment (called by the factory)."""
    values: dict = {}
    for key, kind in ENV_SETTINGS.items():
        raw = os.environ.get(key)
        if raw is None:
            continue
        if kind is bool:
            if raw.strip().lower() not in _BOOL:
                raise SystemExit(f"{key}: expected true or false, got {raw!r}")
            values[key] = _BOOL[raw.strip().lower()]
        elif kind is int:
            try:
                values[key] = int(raw)
            except ValueError:
                raise SystemExit(f"{key}: expected a whole number, got {raw!r}") from None
        else:
            values[key] = raw
    if os.environ.get("DATABASE_URL"):
        values["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(os.environ["DATABASE_URL"])
    return values


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
_MIN_REASON = 10  # a reason, not "1" or "yes"


def is_loopback(host: str | None) -> bool:
    """True for a mail server on this machine: 127.0.0.0/8, ::1 or localhost."""
    name = (host or "").strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def plaintext_mail_reason(settings) -> str | None:
    """The operator's reason for plain-text mail to a loopback relay, when that applies."""
    if settings.get("MAIL_USE_TLS") or settings.get("MAIL_USE_SSL"):
        return None
    reason = " ".join((settings.get("MAIL_ALLOW_PLAINTEXT_LOOPBACK") or "").split())
    return reason or None


def mail_transport_problems(settings) -> list[str]:
    """Why production must not start with these mail settings (one short clause each).

    Mail leaves over TLS (MAIL_USE_TLS: STARTTLS, or MAIL_USE_SSL: implicit TLS), unless
    MAIL_ALLOW_PLAINTEXT_LOOPBACK gives a one-line reason and MAIL_SERVER is this machine.
    """
    server = settings.get("MAIL_SERVER")
    if not server:
        return []  # reported as missing on its own
    if settings.get("MAIL_USE_TLS") and settings.get("MAIL_USE_SSL"):
        return ["MAIL_USE_TLS (STARTTLS) and MAIL_USE_SSL (implicit TLS) are both on: "
                "choose one"]
    if settings.get("MAIL_USE_TLS") or settings.get("MAIL_USE_SSL"):
        return []
    raw = settings.get("MAIL_ALLOW_PLAINTEXT_LOOPBACK") or ""
    if not raw.strip():
        return [f"mail to {server} would travel without TLS: set MAIL_USE_TLS=true "
                "(STARTTLS, port 587) or MAIL_USE_SSL=true (implicit TLS, port 465), or for "
                "a relay on this machine MAIL_ALLOW_PLAINTEXT_LOOPBACK to a one-line reason"]
    if "\n" in raw.strip() or "\r" in raw or len(raw.strip()) < _MIN_REASON \
            or raw.strip().lower() in _BOOL:
        return ["MAIL_ALLOW_PLAINTEXT_LOOPBACK must be a one-line reason why plain text to "
                "this relay is safe (e.g. \"Postfix on this host relays over TLS\"), not a "
                "flag"]
    if not is_loopback(server):
        return [f"MAIL_ALLOW_PLAINTEXT_LOOPBACK allows plain text only to a relay on this "
                f"machine (127.0.0.1, ::1 or localhost), not {server}: set MAIL_USE_TLS=true "
                "or MAIL_USE_SSL=true"]
    return []


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given in the common short forms."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
