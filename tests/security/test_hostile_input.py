"""Hostile input to every form and every id-taking route, as every role (issue 7, "Bad input").

Forms are found the way a person finds them: by rendering every page as every role and reading
the forms on it. Each form then gets script, SQL, NUL, control-character, path-traversal,
huge-number and malformed-date payloads (in every field at once, rotated so that each field
meets each payload, and one field at a time for the payloads that might be stored), invalid
UTF-8, repeated fields, missing and wrong CSRF tokens, oversized and malformed bodies and, for
file inputs, hostile file names and contents. Every route with an id gets random, nil,
malformed, very long and injected ids. Every GET page gets hostile query strings.

After every request: no server error, every HTML response shows payloads escaped (no tag,
attribute, handler or script URL made from them, no template expression evaluated), redirects
stay on this site, no header was injected, and a refused request (4xx, a form shown again, a
redirect to an error message or to sign-in) changed nothing in any table: every INSERT, UPDATE
and DELETE the database commits during the request is logged, and the row counts of every
table are compared before and after. The only trace a refusal may leave is in the security
log (a failure in the audit trail, a read of the record it shows again; for password checks,
the failed attempt, the failure counters and the lockout email).

The whole module shares one database (see support.py) and takes a few minutes: marked slow.
"""

import functools
import re
import uuid
from io import BytesIO
from pathlib import Path
from urllib.parse import quote_plus, urlsplit

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.routing import Rule

from portal import create_app
from portal.pages import PUBLIC, endpoints_marked
from tests.security.support import (
    JS_URL,
    PDF,
    ROLES,
    SSTI,
    XSS_ATTR,
    XSS_TAGS,
    Actor,
    Change,
    Field,
    Form,
    World,
    actor_for,
    another_sessions_csrf,
    benign_value,
    build_url,
    count_rows,
    escaping_problems,
    forms_in,
    is_local,
    real_value,
    routes,
    unexplained,
)

pytestmark = pytest.mark.slow

# The route map, read when the tests are collected: a new route gets these tests by itself.
_APP = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": "sqlite://"})
RULES = {f"{r.endpoint} {r.rule}": r for r in routes(_APP)}
PUBLIC_ENDPOINTS = endpoints_marked(_APP, PUBLIC)
POST_RULES = [key for key, r in RULES.items() if "POST" in r.methods]
ID_RULES = [key for key, r in RULES.items() if r.arguments]
GET_RULES = [key for key, r in RULES.items() if "GET" in r.methods and r.endpoint != "static"]

URLENCODED = "application/x-www-form-urlencoded"
REDIRECTS = (301, 302, 303, 307, 308)
# Views that answer a successful POST with a page rather than a redirect.
SUCCESS_PAGES = frozenset({"accounts.mfa_setup", "accounts.recovery_codes", "policies.accept"})

VALUES: dict[str, str] = {
    "xss_tags": XSS_TAGS,
    "xss_attr": XSS_ATTR,
    "js_url": JS_URL,
    "ssti": SSTI,
    "sql_quote": "' OR '1'='1' -- ",
    "sql_union": "0 UNION SELECT password_hash, email_sealed FROM users--",
    "sql_stacked": "1; DROP TABLE users; --",
    "sql_comment": "admin'/*",
    "nul": "before\x00after",
    "controls": "\x1b[31m\x07\x08\x7f\u202e\ufeff\r\n\t",
    "crlf": "x\r\nSet-Cookie: coeo_injected=1\r\nLocation: https://evil.example/",
    "traversal": "../../../../etc/passwd",
    "traversal_win": "..\\..\\..\\windows\\win.ini",
    "huge": "9" * 40,
    "negative": "-1",
    "negative_huge": "-" + "9" * 40,
    "zero": "0",
    "float_edge": "1e308",
    "nan": "NaN",
    "infinity": "-Infinity",
    "money": "$-1,000,000,000,000.999",
    "date_invalid": "2026-02-30",
    "date_far": "99999-12-31",
    "uuid_random": str(uuid.uuid4()),
    "uuid_nil": str(uuid.UUID(int=0)),
    "long": "x" * 20_000,
    "empty": "",
    "blank": "   \t  ",
    "unicode": "Zoë Nguyễn 👩🏽‍⚕️ \uff1cscript\uff1e e\u0301\u200b",
    "format": "%s%n%x{0}{__class__.__mro__}",
}
# The payloads most likely to be accepted and stored, so sent one field at a time.
STORED = ("xss_tags", "xss_attr", "sql_quote", "nul")
FILE_NAMES = [XSS_TAGS + ".pdf", "../../../../etc/passwd", "..\\..\\boot.ini", "a\x00b.pdf",
              "name\r\nX-Injected: 1.pdf", "x" * 5000 + ".pdf", ".pdf", "\u202egpj.exe.pdf"]

BOGUS_UUIDS = [str(uuid.uuid4()), str(uuid.UUID(int=0)), "not-a-uuid", "a" * 4096,
               "1' OR '1'='1", "../../etc/passwd", "%00", XSS_TAGS, "-1", "9" * 40,
               str(uuid.uuid4()) + "x", "{" + str(uuid.uuid4()) + "}"]
BOGUS_NUMBERS = ["0", "-1", "1000001", "9" * 40, "1e3", "0x10", "NaN", XSS_TAGS, "1 OR 1=1"]
BOGUS_STRINGS = [XSS_TAGS, "../../../etc/passwd", "..%2F..%2Fconfig.py", "a" * 4096,
                 "' OR '1'='1", "%00", "%FF%FE", "terms%00", "TERMS", str(uuid.uuid4()), SSTI,
                 "\uff34\uff25\uff32\uff2d\uff33"]  # full-width TERMS
BOGUS_PATHS = ["../config.py", "../../config.py", "..%2f..%2fconfig.py",
               "%2e%2e/%2e%2e/config.py", "/etc/passwd", "css/../../config.py",
               "....//....//config.py", "css/%00.css", "a" * 4096, XSS_TAGS]


def _query_args() -> list[str]:
    """Every query argument a view reads, found in the code (plus the common ones)."""
    found = {"page", "q", "next"}
    pattern = re.compile(r"(?:args\.get|_uuid_arg|_rows)\(\s*['\"](\w+)['\"]")
    for source in (Path(__file__).resolve().parents[2] / "portal").rglob("*.py"):
        found.update(pattern.findall(source.read_text()))
    return sorted(found)


QUERY_ARGS = _query_args()


# --- sending and checking ------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _enc(value: str | bytes) -> str:
    return quote_plus(value)  # remembered: the same payloads (600 KB of padding) recur


def urlencoded(pairs: list[tuple[str | bytes, str | bytes]]) -> bytes:
    """Encode form pairs by hand, so invalid UTF-8 and repeated names go out as given."""
    return "&".join(f"{_enc(k)}={_enc(v)}" for k, v in pairs).encode("ascii")


def multipart(pairs: list[tuple[str | bytes, object]]) -> tuple[bytes, str]:
    """Encode a multipart body by hand: names, values and file names go out byte for byte."""
    boundary = "coeo" + uuid.uuid4().hex
    chunks = []
    for name, value in pairs:
        raw_name = name if isinstance(name, bytes) else name.encode()
        head = b'Content-Disposition: form-data; name="' + raw_name + b'"'
        if isinstance(value, FileStorage):
            filename = (value.filename or "").encode("utf-8", "surrogateescape")
            head += b'; filename="' + filename + b'"\r\nContent-Type: ' + \
                (value.content_type or "application/octet-stream").encode()
            data = value.stream.read()
        else:
            data = value if isinstance(value, bytes) else str(value).encode()
        chunks.append(b"--" + boundary.encode() + b"\r\n" + head + b"\r\n\r\n" + data + b"\r\n")
    body = b"".join(chunks) + b"--" + boundary.encode() + b"--\r\n"
    return body, f"multipart/form-data; boundary={boundary}"


def response_problems(response) -> list[str]:
    """What is wrong with any response, whatever was sent."""
    problems = []
    body = response.get_data(as_text=True) if response.mimetype in (
        "text/html", "text/plain", "application/json", "application/xml") else ""
    if response.mimetype == "text/html":
        problems += escaping_problems(body)
    if "Traceback (most recent call last)" in body:
        problems.append("a traceback reached the page")
    location = response.headers.get("Location")
    if location and not is_local(location):
        problems.append(f"redirects off the site: {location[:100]}")
    for name, value in response.headers.items():
        if "coeo_injected" in name.lower() or "coeo_injected" in value or \
                name.lower() == "x-injected":
            problems.append(f"header injected: {name}: {value[:80]}")
    return problems


class Run:
    """Send requests as one actor and collect every problem (the test reports them all)."""

    def __init__(self, actor: Actor, endpoint: str) -> None:
        self.actor, self.endpoint = actor, endpoint
        self.problems: list[str] = []
        self.verdicts: dict[str, str] = {}
        self.last_status = 0
        self.last_response = None

    def send(self, method: str, url: str, label: str, *, body: bytes = b"",
             content_type: str = URLENCODED, headers: dict | None = None,
             environ: dict | None = None, expect: set[int] | None = None,
             change_nothing: bool = False) -> str:
        """Send one request, check it, and return its verdict: rejected, accepted or unknown.

        `change_nothing`: whatever the answer, nothing may change (a request about nothing).
        """
        actor = self.actor
        counts = actor.world.writes.counts()
        kwargs = {"headers": headers or {}, "environ_overrides": environ or {}}
        with actor.world.writes as written:
            if method == "POST":
                response = actor.client.post(url, data=body, content_type=content_type,
                                             **kwargs)
            else:
                response = actor.client.get(url, **kwargs)
        grown = {t for t, n in actor.world.writes.counts().items() if n != counts[t]}
        status = self.last_status = response.status_code
        where = f"{actor.role} {method} {url[:120]} [{label}]"
        self.problems += [f"{where}: {p}" for p in response_problems(response)]
        if expect is not None and status not in expect:
            self.problems.append(f"{where}: answered {status}, expected {sorted(expect)}")
        verdict = self._verdict(method, response, where)
        self.verdicts[label] = verdict
        self.last_response = response
        if verdict == "rejected" or change_nothing:
            bad = unexplained(list(written), self.endpoint)
            # The row counts are checked too, in case a write escaped the log.
            explained = {c.table for c in written if c not in bad}
            bad_counts = sorted(grown - explained)
            if bad or bad_counts:
                self.problems.append(
                    f"{where}: refused ({status}) but changed "
                    + ", ".join([str(c) for c in bad[:6]] + [f"rows of {t}" for t in bad_counts]))
        lost = "Clear-Site-Data" in response.headers or not actor.still_signed_in()
        if lost or (actor.role == "anonymous" and method == "POST" and verdict == "accepted"):
            actor.renew()
        return verdict

    def _verdict(self, method: str, response, where: str) -> str:
        status = response.status_code
        if status >= 400:
            return "rejected"
        if status in REDIRECTS:
            path = urlsplit(response.location).path
            if path.startswith("/sign-in") and self.endpoint not in PUBLIC_ENDPOINTS:
                return "rejected" if self.actor.role == "anonymous" else "unknown"
            if method != "POST" or not is_local(response.location):
                return "accepted"
            page = self.actor.client.get(response.location)
            self.problems += [f"{where} -> {response.location[:80]}: {p}"
                              for p in response_problems(page)]
            if page.status_code >= 500:
                self.problems.append(f"{where}: the page it led to answered {page.status_code}")
            shown = page.get_data(as_text=True)
            return "rejected" if "flash--error" in shown else "accepted"
        if method == "POST" and status == 200:
            return "unknown" if self.endpoint in SUCCESS_PAGES else "rejected"
        return "accepted"

    def report(self) -> None:
        assert not self.problems, f"{len(self.problems)} problems:\n" + "\n".join(
            self.problems[:40])


# --- forms, as people find them ------------------------------------------------------------------

def _crawl_urls(world: World) -> list[str]:
    """Every GET page with real ids, plus pages whose forms depend on the record shown."""
    urls = []
    for rule in (RULES[key] for key in GET_RULES):
        if rule.endpoint in ("estimates.download", "messaging.attachment", "policies.sitemap",
                             "policies.robots", "ops.healthz", "ops.readyz"):
            continue
        urls.append(build_url(rule, {a: real_value(world, rule, a) for a in rule.arguments}))
    ids = world.ids
    urls += [f"/admin/users/{person.id}" for person in world.users.values()]
    urls += [f"/admin/users/{ids['invited_id']}", f"/messages/{ids['closed_thread_id']}",
             f"/estimates/{ids['draft_id']}/review", f"/estimates/{ids['draft_id']}/edit"]
    return urls


def discovered_forms(world: World) -> dict[str, dict[str, Form]]:
    """Return the POST forms each role (and a few other people) sees, by endpoint."""
    cache = world.__dict__.setdefault("_forms", {})
    if cache:
        return cache
    extra = {"pending_client": "client", "client_with_mfa": "client"}
    for who in (*ROLES, *extra):
        actor = Actor(world, extra.get(who, who))
        if who in extra:
            actor.user = world.users[who]
            actor.renew()
        found: dict[str, Form] = {}
        for url in _crawl_urls(world):
            for endpoint in ("accounts.accept_invitation", "accounts.reset_password",
                             "accounts.confirm_email_change", "accounts.mfa_challenge"):
                if actor.endpoint_of(url, "GET") == endpoint:
                    actor.prepare(endpoint)
            response = actor.client.get(url)
            if not actor.still_signed_in():  # an invitation or reset link signs one out
                actor.renew()
            if response.status_code != 200 or response.mimetype != "text/html":
                continue
            for form in forms_in(response.get_data(as_text=True), url):
                endpoint = actor.endpoint_of(form.action)
                if endpoint and endpoint not in found:
                    found[endpoint] = form
        cache[who] = found
    return cache


def form_for(world: World, role: str, rule: Rule) -> tuple[Form, bool]:
    """Return the form to attack as this role (its own, another's, or just the token), and
    whether the role itself was shown it."""
    forms = discovered_forms(world)
    if rule.endpoint in forms[role]:
        return forms[role][rule.endpoint], True
    for found in forms.values():
        if rule.endpoint in found:
            return found[rule.endpoint], False
    url = build_url(rule, {a: real_value(world, rule, a) for a in rule.arguments})
    return Form(url, "post", URLENCODED,
                [Field("csrf_token", "hidden")]), False


def _benign_pairs(form: Form, csrf: str, *, skip: str | None = None) -> list[tuple[str, str]]:
    pairs = [("csrf_token", csrf)]
    for f in form.inputs():
        if f.name == skip or f.kind == "file":
            continue
        value = benign_value(f)
        if value is not None:
            pairs.append((f.name, value))
    if form.buttons():
        first = form.buttons()[0]
        pairs.append((first.name, first.value))
    return pairs


def _group(name: str) -> str:
    """Rows of a repeated group (providers-0-name, providers-1-name) count as one field."""
    return re.sub(r"-\d+-", "-N-", name)


def _targets(form: Form) -> list[Field]:
    """The fields to attack one at a time: each distinct field, the buttons' names too."""
    seen, targets = set(), []
    for f in form.inputs() + form.buttons():
        if f.kind == "file" or _group(f.name) in seen:
            continue
        seen.add(_group(f.name))
        targets.append(f)
    return targets


def _post(run: Run, form: Form, label: str, pairs, *, files=(), **kwargs) -> str:
    """POST pairs (and files) the way the form would send them."""
    if form.multipart:
        file_fields = [f.name for f in form.inputs() if f.kind == "file"]
        parts = list(pairs)
        for name in file_fields:
            chosen = [item for item in files if item[0] == name] or \
                [(name, FileStorage(BytesIO(b""), filename="",
                                    content_type="application/octet-stream"))]
            parts += chosen
        body, content_type = multipart(parts)
        return run.send("POST", form.action, label, body=body, content_type=content_type,
                        **kwargs)
    return run.send("POST", form.action, label, body=urlencoded(list(pairs)), **kwargs)


def _must_reject(run: Run, form: Form, other_csrf: str) -> None:
    """Requests no form may accept, whoever sends them: bad tokens and oversized bodies."""
    csrf = run.actor.csrf
    fields = [p for p in _benign_pairs(form, csrf) if p[0] != "csrf_token"]
    bad_token = {400}
    _post(run, form, "no csrf token", fields, expect=bad_token)
    _post(run, form, "empty csrf token", [("csrf_token", ""), *fields], expect=bad_token)
    _post(run, form, "forged csrf token", [("csrf_token", "IjEyMyI.forged.token"), *fields],
          expect=bad_token)
    _post(run, form, "another session's token", [("csrf_token", other_csrf), *fields],
          expect=bad_token)
    _post(run, form, "bad token first", [("csrf_token", "forged"), ("csrf_token", csrf),
                                         *fields], expect=bad_token)
    _post(run, form, "token only in a wrong header", fields,
          headers={"X-CSRFToken": "forged"}, expect=bad_token)
    joiner = "&" if "?" in form.action else "?"
    run.send("POST", f"{form.action}{joiner}csrf_token={quote_plus(csrf)}",
             "token in the query string", body=urlencoded(fields), expect=bad_token)
    run.send("POST", form.action, "many url-encoded fields",
             body=urlencoded([("csrf_token", "forged")] + [(f"f{i}", "1") for i in range(5000)]),
             expect=bad_token)
    too_large = {413}
    run.send("POST", form.action, "oversized form body",
             body=urlencoded([("csrf_token", csrf), *fields, ("padding", "x" * 600_000)]),
             expect=too_large)
    many, content_type = multipart([("csrf_token", csrf)] + [(f"f{i}", "1") for i in range(1200)])
    run.send("POST", form.action, "too many multipart fields", body=many,
             content_type=content_type, expect=too_large)
    run.send("POST", form.action, "content length beyond the limit",
             body=urlencoded([("csrf_token", csrf), *fields]),
             environ={"CONTENT_LENGTH": str(10**12)}, expect=too_large)
    big, content_type = multipart([("csrf_token", csrf), *fields,
                                   ("file", FileStorage(BytesIO(b"0" * (3 * 1024 * 1024)),
                                                        filename="big.pdf"))])
    run.send("POST", form.action, "oversized multipart body", body=big,
             content_type=content_type, expect=too_large)


def _attack_fields(run: Run, form: Form, *, shown: bool) -> None:
    """Hostile values in the fields, with a valid token.

    The whole corpus goes to the forms a role is shown; a form from another role's page gets
    a sample (the role is turned away before any field is read, which the sample proves).
    """
    csrf = run.actor.csrf
    inputs = form.inputs() + form.buttons()
    names = list(VALUES) if shown else ["xss_tags", "sql_quote", "nul", "huge"]
    # Every field at once, rotated so that each field meets every payload.
    for k, label in enumerate(names):
        pairs = [("csrf_token", csrf)]
        pairs += [(f.name, VALUES[names[(i + k) % len(names)]]) for i, f in enumerate(inputs)
                  if f.kind != "file"]
        _post(run, form, f"all fields, round {label}", pairs)
    # One field at a time, the rest as a person would fill them.
    for target in _targets(form) if shown else []:
        for label in STORED:
            pairs = _benign_pairs(form, run.actor.csrf, skip=target.name)
            pairs = [p for p in pairs if p[0] != target.name] + [(target.name, VALUES[label])]
            _post(run, form, f"{target.name}={label}", pairs)
    csrf = run.actor.csrf
    benign = _benign_pairs(form, csrf)
    fields = [p for p in benign if p[0] != "csrf_token"]
    _post(run, form, "invalid utf-8 values",
          [("csrf_token", csrf)] + [(k, b"\xff\xfe\xc3\x28" + b"\xed\xa0\x80") for k, _ in fields])
    _post(run, form, "invalid utf-8 names", [("csrf_token", csrf), (b"\xff\xfe", b"\xc3\x28"),
                                             *fields])
    raw = urlencoded([("csrf_token", csrf)]) + b"&" + b"&".join(
        k.encode() + b"=\xff\xfe\x00\xc3(" for k, _ in fields)
    run.send("POST", form.action, "raw bytes in the body", body=raw,
             content_type=URLENCODED if not form.multipart else "multipart/form-data")
    _post(run, form, "repeated fields, hostile first",
          [("csrf_token", csrf)] + [p for k, v in fields
                                    for p in ((k, XSS_TAGS), (k, v))])
    _post(run, form, "repeated fields, hostile last",
          [("csrf_token", csrf)] + [p for k, v in fields
                                    for p in ((k, v), (k, VALUES["sql_quote"]))])
    _post(run, form, "only the token", [("csrf_token", csrf)])
    run.send("POST", form.action, "a JSON body", body=b'{"subject": "x", "body": "y"}',
             content_type="application/json", headers={"X-CSRFToken": csrf})
    run.send("POST", form.action, "a malformed multipart body",
             body=b"--x\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n"
                  + csrf.encode() + b"\r\n--x\r\nContent-Disp", content_type=
             "multipart/form-data; boundary=x")
    for f in (f for f in form.inputs() if f.kind == "file" and shown):
        for name in FILE_NAMES:
            _post(run, form, f"file named {name[:30]!r}", benign,
                  files=[(f.name, FileStorage(BytesIO(PDF), filename=name,
                                              content_type="application/pdf"))])
        for label, data in (("a program named .pdf", b"MZ\x90\x00" + b"\x00" * 200),
                            ("html named .pdf", b"<html><script>coeo_xss(9)</script>"),
                            ("one byte over the limit", b"%PDF-1.4\n" + b"0" * (256 * 1024))):
            _post(run, form, label, benign,
                  files=[(f.name, FileStorage(BytesIO(data), filename="report.pdf",
                                              content_type="application/pdf"))])


POST_CASES = [pytest.param(role, key, id=f"{role}-{RULES[key].endpoint}")
              for key in POST_RULES for role in ROLES]


@pytest.mark.parametrize(("role", "rule_key"), POST_CASES)
def test_hostile_form_input_is_refused_or_stored_safely(world, role, rule_key):
    rule = RULES[rule_key]
    form, shown = form_for(world, role, rule)
    other_csrf = another_sessions_csrf(world)
    actor = actor_for(world, role)
    actor.prepare(rule.endpoint)
    run = Run(actor, rule.endpoint)
    _must_reject(run, form, other_csrf)
    if form.inputs() or form.buttons():
        # A form with something to fill in gets the whole corpus. A button-only form (sign
        # out, issue, deactivate...) has nothing else to attack: its token is checked above.
        actor.prepare(rule.endpoint)
        _attack_fields(run, form, shown=shown)
    run.report()


# --- ids -----------------------------------------------------------------------------------------

def _bogus(rule: Rule, arg: str) -> list[str]:
    kind = type(rule._converters[arg]).__name__
    return {"UUIDConverter": BOGUS_UUIDS, "IntegerConverter": BOGUS_NUMBERS,
            "PathConverter": BOGUS_PATHS}.get(kind, BOGUS_STRINGS)


ID_CASES = [pytest.param(role, key, id=f"{role}-{RULES[key].endpoint}")
            for key in ID_RULES for role in ROLES]


@pytest.mark.parametrize(("role", "rule_key"), ID_CASES)
def test_bogus_ids_are_not_found(world, role, rule_key):
    rule = RULES[rule_key]
    actor = actor_for(world, role)
    run = Run(actor, rule.endpoint)
    method = "GET" if "GET" in rule.methods else "POST"
    real = {a: real_value(world, rule, a) for a in rule.arguments}
    public = rule.endpoint in PUBLIC_ENDPOINTS
    for arg in rule.arguments:
        for bogus in _bogus(rule, arg):
            url = build_url(rule, {**real, arg: bogus})
            label = f"{arg}={bogus[:24]!r}"
            run.send(method, url, label, body=urlencoded([("csrf_token", actor.csrf)]),
                     change_nothing=True)
            status, response = run.last_status, run.last_response
            if status == 308 and method == "GET":
                # The router merges repeated slashes first: the page it names must not exist.
                run.send("GET", response.location, f"{label}, redirected",
                         change_nothing=True)
                status = run.last_status
            if role == "anonymous" and not public:
                ok = status == 404 or (status == 302 and
                                       urlsplit(response.location).path == "/sign-in")
            else:
                # A POST about nothing may also report back with a redirect (and change
                # nothing, which `change_nothing` checks).
                ok = status == 404 or (method == "POST" and status in REDIRECTS)
            if not ok:
                run.problems.append(f"{role} {method} {url[:100]}: answered {status}")
            if rule.endpoint == "static" and status == 200:
                run.problems.append(f"static file served for {bogus!r}")
    run.report()


# --- query strings -------------------------------------------------------------------------------

def _queries() -> list[tuple[str, str]]:
    found = []
    for label, value in VALUES.items():
        if label == "long":
            continue
        found.append((label, "&".join(f"{a}={quote_plus(value)}" for a in QUERY_ARGS)))
    found += [
        ("invalid utf-8", "&".join(f"{a}=%FF%FE%C3%28" for a in QUERY_ARGS)),
        ("repeated", "&".join(f"{a}=1&{a}={quote_plus(XSS_TAGS)}" for a in QUERY_ARGS)),
        ("long", f"q={'x' * 8000}&page={'9' * 4000}"),
        ("hostile names", f"{quote_plus(XSS_TAGS)}=1&%00=2&%FF=3"),
        ("next off-site", "next=%2F%2Fevil.example&next=https://evil.example"),
    ]
    return found


GET_CASES = [pytest.param(role, key, id=f"{role}-{RULES[key].endpoint}")
             for key in GET_RULES for role in ROLES]


@pytest.mark.parametrize(("role", "rule_key"), GET_CASES)
def test_hostile_query_strings_are_harmless(world, role, rule_key):
    rule = RULES[rule_key]
    actor = actor_for(world, role)
    run = Run(actor, rule.endpoint)
    url = build_url(rule, {a: real_value(world, rule, a) for a in rule.arguments})
    run.send("GET", url, "plain")
    reachable = run.last_status == 200
    queries = _queries() if reachable else _queries()[:2]
    for label, query in queries:
        run.send("GET", f"{url}?{query}", label)
    run.report()


# --- stored payloads, then every page ------------------------------------------------------------

ESCAPED = ("&lt;script&gt;coeo_xss", "&#34;&gt;&lt;script&gt;", "&lt;img src=x onerror")


@pytest.mark.parametrize("role", ROLES)
def test_every_page_shows_stored_payloads_escaped(world, role):
    actor = actor_for(world, role)
    run = Run(actor, "walk")
    shown = 0
    for url in _crawl_urls(world):
        run.send("GET", url, "walk")
        if run.last_response.mimetype != "text/html":  # a download (a PDF, a ZIP)
            continue
        if any(marker in run.last_response.get_data(as_text=True) for marker in ESCAPED):
            shown += 1
    run.report()
    # The payloads are in names, subjects, bodies, addresses and policy summaries: a page that
    # shows them must show them as text. Each role sees some (anonymous: the policy pages).
    assert shown >= (1 if role == "anonymous" else 3), f"payloads shown on {shown} pages"


# --- the checks themselves can fail --------------------------------------------------------------

def test_the_escaping_check_finds_payloads_that_became_markup():
    assert escaping_problems("<p>&lt;script&gt;coeo_xss(1)&lt;/script&gt;</p>") == []
    assert escaping_problems('<input value="&#34; onfocus=&#34;coeo_xss(5)">') == []
    assert escaping_problems("<p><script>coeo_xss(1)</script></p>")
    assert escaping_problems('<input value="" onfocus="coeo_xss(5)">')
    assert escaping_problems('<a href="javascript:coeo_xss(6)">x</a>')
    assert escaping_problems("<textarea></textarea><img src=x onerror=coeo_xss(2)>")
    assert escaping_problems("<p>coeo_ssticoeo_ssti</p>")


def test_a_valid_form_is_accepted_so_refusals_mean_something(world):
    actor = actor_for(world, "client")
    form, own = form_for(world, "client", RULES[next(k for k in POST_RULES
                                                     if k.startswith("messaging.compose "))])
    assert own, "the client was not shown the compose form"
    counts = count_rows()
    run = Run(actor, "messaging.compose")
    pairs = _benign_pairs(form, actor.csrf)
    pairs = [p for p in pairs if p[0] not in ("subject", "body")] + [
        ("subject", f"Hello {XSS_TAGS}"), ("body", "A message that should arrive.")]
    assert _post(run, form, "benign", pairs) == "accepted"
    run.report()
    after = count_rows()
    assert after["message_threads"] == counts["message_threads"] + 1
    assert after["messages"] == counts["messages"] + 1


def test_a_change_made_by_a_refused_request_would_be_caught(world):
    from portal.messaging import sending

    client = world.users["client"]
    with world.writes as written:
        sending.reply(client, world.ids["thread_id"], body="Written outside a request",
                      notify=False)
    tables = {(c.kind, c.table) for c in written}
    assert {("added", "messages"), ("changed", "message_threads"),
            ("added", "audit_events")} <= tables
    assert {c.table for c in unexplained(list(written), "messaging.reply")} >= {
        "messages", "message_threads"}
    assert unexplained([Change("audit_events", "added", {"outcome": "failure"}),
                        Change("user_sessions", "changed", {}, frozenset({"last_seen_at"}))],
                       "messaging.close") == []
    with world.writes as written:
        from portal.extensions import db
        from portal.messaging.models import Thread
        db.session.get(Thread, world.ids["thread_id"]).client_unread = 99
        db.session.rollback()  # never happened
    assert written == []


def test_the_walks_cover_every_feature():
    """The cases come from the route map: a blueprint that vanished would take its cases with
    it, and every test above would still pass."""
    features = {"accounts", "admin", "estimates", "messaging", "policies"}
    for name, keys in (("POST", POST_RULES), ("id", ID_RULES), ("GET", GET_RULES)):
        covered = {RULES[key].endpoint.split(".")[0] for key in keys}
        assert features <= covered, f"{name} routes of {sorted(features - covered)} missing"
    assert len(POST_RULES) >= 40 and len(GET_RULES) >= 40, (len(POST_RULES), len(GET_RULES))


def test_every_form_was_found_on_some_page(world):
    forms = discovered_forms(world)
    found = {endpoint for by_endpoint in forms.values() for endpoint in by_endpoint}
    wanted = {RULES[key].endpoint for key in POST_RULES}
    # Scripts post to keepalive (the idle timeout) and quick_exit (a beacon as Quick exit
    # leaves); no page has a form for either. The button that publishes the standard policy
    # texts shows only while one is missing (none is, here). drafts.js saves drafts as they
    # are typed; "Discard draft" shows only above a form restored from a draft (none, here).
    # The account page's Deactivate is a link to a confirmation page (a client's reason, a
    # therapist's handovers); the old one-click POST is kept, with no form of its own.
    # A deadline correction's form shows only for a draft with a recorded deadline date, and
    # the next-session form only for a correction with no session booked; the world's draft
    # has neither (so it can still be deleted): tests/estimates/test_deadline_corrections.py
    # posts bad input to both (422 inline, 404, 400). "Share with <guardian>" and "Stop
    # sharing" show only on the estimate of a minor who consented to their own care (the
    # world's minor's parent consented): tests/guardians/test_family.py posts to both as every
    # kind of person (404) and without a token (400).
    assert wanted - found == {"accounts.keepalive", "accounts.quick_exit", "policies.admin_init",
                              "messaging.save_draft", "messaging.discard_draft",
                              "admin.deactivate", "estimates.correct_date",
                              "estimates.next_service", "guardians.share_estimate",
                              "guardians.stop_sharing_estimate"}
