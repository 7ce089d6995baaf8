"""Production settings: STARTTLS with certificate checks, then AUTH, against a real server."""

import datetime as dt
import ipaddress
import ssl

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portal.mail import deliver_pending, enqueue
from tests.support.people import make_user, unique_email
from tests.support.smtp import SMTPServer

LINK = "https://portal.example.org/reset/tls-token"


def _self_signed(tmp_path):
    """Write a certificate for 127.0.0.1 and its key; return (cert path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "smtp-cert.pem", tmp_path / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _Accounts:
    """An aiosmtpd authenticator that accepts one login and remembers who tried."""

    def __init__(self, login: str, password: str) -> None:
        self.login, self.password, self.tries = login, password, []

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        self.tries.append(auth_data.login.decode())
        ok = (auth_data.login.decode(), auth_data.password.decode()) == (self.login,
                                                                          self.password)
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def tls_server(app, tmp_path, monkeypatch):
    """Run an SMTP server that requires STARTTLS and AUTH, trusted through SSL_CERT_FILE."""
    cert_path, key_path = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))  # what the client will trust
    accounts = _Accounts("portal", "s3cret-password")
    server = SMTPServer(controller_kwargs={"tls_context": context, "require_starttls": True,
                                          "authenticator": accounts, "auth_require_tls": True})
    server.start()
    app.config.update(MAIL_SERVER=server.host, MAIL_PORT=server.port, MAIL_USE_TLS=True,
                      MAIL_USERNAME="portal", MAIL_PASSWORD="s3cret-password", MAIL_TIMEOUT=5)
    try:
        yield server, accounts
    finally:
        server.stop()


@pytest.fixture
def user(db):
    """Return a saved account."""
    return make_user("client", "Pat Example", email=unique_email("p"), password=None)


def test_starttls_and_login_when_configured(app, db, tls_server, user):
    server, accounts = tls_server
    enqueue(user, "password_reset", to_address="pat@example.org", link=LINK, minutes_valid=30)
    db.session.commit()
    report = deliver_pending()
    assert (report.sent, report.failed) == (1, 0)
    assert accounts.tries == ["portal"]
    (received,) = server.envelopes
    assert LINK in received.text


def test_a_wrong_password_leaves_the_mail_pending(app, db, tls_server, user):
    server, _ = tls_server
    app.config["MAIL_PASSWORD"] = "wrong"
    enqueue(user, "password_reset", to_address="pat@example.org", link=LINK, minutes_valid=30)
    db.session.commit()
    report = deliver_pending()
    assert (report.sent, report.failed, report.pending) == (0, 1, 1)
    assert server.envelopes == []


def test_without_tls_the_server_refuses_and_nothing_leaks(app, db, tls_server, user):
    server, _ = tls_server
    app.config["MAIL_USE_TLS"] = False  # login over plain text is refused by the server
    enqueue(user, "password_reset", to_address="pat@example.org", link=LINK, minutes_valid=30)
    db.session.commit()
    assert deliver_pending().failed == 1
    assert server.envelopes == []
