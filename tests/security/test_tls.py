"""TLS and mutual TLS on both fronts, with a throw-away CA made in the test.

The clients verify the server by default: a client that does not trust the CA fails the
handshake; with a client CA configured, a client without a certificate is refused.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from lift.cli.main import app as cli
from lift.client import CriticClient, CriticError
from lift.clients.base import Credentials
from lift.runner import ServiceRunner, start_in_thread
from lift.services.critic.server import build_critic
from lift.services.critic.settings import CriticSettings

# -- a CA, a server certificate for 127.0.0.1/localhost, a client certificate ------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


class _CA:
    def __init__(self, cn: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, cn: str, server: bool) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(self.key, hashes.SHA256()), key


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, other = _CA("lift test CA"), _CA("someone else's CA")
    server, server_key = ca.issue("lift critic", server=True)
    client, client_key = ca.issue("lift trainer", server=False)
    stranger, stranger_key = other.issue("stranger", server=False)
    return Pki(
        ca=_write_cert(ca.cert, d / "ca.pem"),
        other_ca=_write_cert(other.cert, d / "other-ca.pem"),
        server_cert=_write_cert(server, d / "server.pem"),
        server_key=_write_key(server_key, d / "server.key"),
        client_cert=_write_cert(client, d / "client.pem"),
        client_key=_write_key(client_key, d / "client.key"),
        stranger_cert=_write_cert(stranger, d / "stranger.pem"),
        stranger_key=_write_key(stranger_key, d / "stranger.key"),
    )


def _start(**tls: Path) -> tuple[ServiceRunner, object]:
    settings = CriticSettings(grpc_port=0, http_port=0, log_level="WARNING", **tls)
    return start_in_thread(build_critic, settings)


@pytest.fixture(scope="module")
def tls_critic(pki: Pki) -> Iterator[ServiceRunner]:
    runner, stop = _start(tls_cert_file=pki.server_cert, tls_key_file=pki.server_key)
    yield runner
    stop()  # type: ignore[operator]


@pytest.fixture(scope="module")
def mtls_critic(pki: Pki) -> Iterator[ServiceRunner]:
    runner, stop = _start(
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        tls_client_ca_file=pki.ca,
    )
    yield runner
    stop()  # type: ignore[operator]


def _fronts(runner: ServiceRunner) -> list[str]:
    return [f"127.0.0.1:{runner.grpc_port}", f"https://127.0.0.1:{runner.http_port}"]


def test_tls_handshake_works_on_both_fronts_with_the_ca(
    pki: Pki, tls_critic: ServiceRunner
) -> None:
    for server in _fronts(tls_critic):
        with CriticClient(
            server, timeout_s=10, credentials=Credentials.create(ca_file=pki.ca)
        ) as c:
            assert c.info()["model"]["backend"] == "signal"


def test_a_client_that_does_not_trust_the_ca_fails_verification(
    pki: Pki, tls_critic: ServiceRunner
) -> None:
    for creds in [Credentials.create(tls=True), Credentials.create(ca_file=pki.other_ca)]:
        for server in _fronts(tls_critic):
            with (
                CriticClient(server, timeout_s=5, credentials=creds) as c,
                pytest.raises(CriticError) as err,
            ):
                c.info()
            assert err.value.code == "UNAVAILABLE", server
    # Plain HTTP to the TLS port gets nothing useful either.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{tls_critic.http_port}/healthz", timeout=5)


def test_mutual_tls_refuses_a_client_without_a_trusted_certificate(
    pki: Pki, mtls_critic: ServiceRunner
) -> None:
    good = Credentials.create(
        ca_file=pki.ca, client_cert=pki.client_cert, client_key=pki.client_key
    )
    for server in _fronts(mtls_critic):
        with CriticClient(server, timeout_s=10, credentials=good) as c:
            assert c.info()["model"]["backend"] == "signal"
    for creds in [
        Credentials.create(ca_file=pki.ca),  # no certificate
        Credentials.create(
            ca_file=pki.ca, client_cert=pki.stranger_cert, client_key=pki.stranger_key
        ),  # signed by another CA
    ]:
        for server in _fronts(mtls_critic):
            with (
                CriticClient(server, timeout_s=5, credentials=creds) as c,
                pytest.raises(CriticError) as err,
            ):
                c.info()
            assert err.value.code == "UNAVAILABLE", server


def test_the_cli_connects_with_tls_flags(
    pki: Pki, mtls_critic: ServiceRunner, mp4_path: Path
) -> None:
    args = ["critique", str(mp4_path), "--prompt", "a ball", "--json"]
    server = ["--server", f"127.0.0.1:{mtls_critic.grpc_port}"]
    tls = ["--ca-file", str(pki.ca), "--client-cert", str(pki.client_cert)]
    ok = CliRunner().invoke(cli, [*args, *server, *tls, "--client-key", str(pki.client_key)])
    assert ok.exit_code == 0, ok.output
    assert '"reward"' in ok.output
    refused = CliRunner().invoke(cli, [*args, *server, "--ca-file", str(pki.ca)])
    assert refused.exit_code == 1


def test_tls_settings_come_in_pairs() -> None:
    with pytest.raises(ValueError, match="tls_key_file"):
        CriticSettings(tls_cert_file=Path("a.pem"))
    with pytest.raises(ValueError, match="mutual TLS"):
        CriticSettings(tls_client_ca_file=Path("ca.pem"))
    with pytest.raises(ValueError, match="client_key"):
        Credentials.create(client_cert="c.pem")


@pytest.fixture(scope="module")
def mp4_path(mp4s: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clean.mp4"
    path.write_bytes(mp4s["clean"])
    return path
