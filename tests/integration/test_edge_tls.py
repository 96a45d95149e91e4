"""Bound beyond 127.0.0.1 the edge serves HTTPS (browsers give the microphone only to secure
pages), with a self-signed certificate made once when none is given."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509

from tests.support.processes import ServiceProcess, start_service


@pytest.fixture
def edge_on_another_address(tmp_path: Path) -> Iterator[ServiceProcess]:
    # 127.0.0.2 is still this host (no traffic leaves it) but not the loopback default.
    service = start_service(
        "services.edge", "--host=127.0.0.2", f"--tls-self-signed-dir={tmp_path / 'tls'}", "--vad-address=127.0.0.1:1"
    )
    yield service
    assert service.stop() == 0


async def test_https_with_a_self_signed_certificate(edge_on_another_address: ServiceProcess, tmp_path: Path) -> None:
    url = edge_on_another_address.url
    assert url.startswith("https://127.0.0.2:"), url
    certificate = tmp_path / "tls" / "edge-cert.pem"
    assert certificate.exists() and (tmp_path / "tls" / "edge-key.pem").stat().st_mode & 0o077 == 0
    names = x509.load_pem_x509_certificate(certificate.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert ipaddress.ip_address("127.0.0.2") in names.value.get_values_for_type(x509.IPAddress)
    trusted = ssl.create_default_context(cafile=str(certificate))  # checks the address against the certificate
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "healthz", ssl=trusted) as response:
            assert response.status == 200
        with pytest.raises(aiohttp.ClientError):
            async with http.get(url.replace("https://", "http://") + "healthz") as response:
                await response.read()
