"""Behind a proxy (a Space) every client has the proxy's address: the rate limit counts per X-Forwarded-For
client only when ``api.trust_proxy_headers`` is on, never by default (a client could send any address)."""
import httpx
import pytest
from starlette.requests import Request

from tempo.engine.runner import Tempo
from tempo.models.loading import load_model
from tempo.serve.rest import ApiConfig, Server, client_address, create_app
from tempo.settings.loader import load_settings

pytestmark = pytest.mark.usefixtures("clean_tempo_env")


def request_from(peer: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 5000)})


def test_client_address_reads_x_forwarded_for_only_when_trusted():
    spoofed = request_from("10.0.0.1", "203.0.113.7, 10.0.0.1")
    assert client_address(spoofed) == "10.0.0.1"  # the default: the connection's peer
    assert client_address(spoofed, trust_proxy_headers=True) == "203.0.113.7"  # the first address
    assert client_address(request_from("10.0.0.1", " "), trust_proxy_headers=True) == "10.0.0.1"
    assert client_address(request_from("10.0.0.1", None), trust_proxy_headers=True) == "10.0.0.1"


def test_the_setting_is_off_by_default_and_on_in_the_space_profile(monkeypatch):
    assert load_settings().api.trust_proxy_headers is False
    monkeypatch.setenv("TEMPO_PROFILE", "space")
    assert load_settings().api.trust_proxy_headers is True


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    settings = load_settings()
    return Tempo(load_model(str(tiny_model_dir["llama"])), settings)


def statuses(url: str, clients: list[str]) -> list[int]:
    """GET /health once per entry of ``clients``, each sent as that X-Forwarded-For."""
    return [httpx.get(url + "health", headers={"X-Forwarded-For": f"{c}, 10.0.0.1"}).status_code for c in clients]


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("trust", [False, True])
def test_x_forwarded_for_buckets_only_when_trusted(engine, trust):
    config = ApiConfig(rate_limit=2, trust_proxy_headers=trust)
    server = Server(create_app(engine, engine.settings, config=config), host="127.0.0.1").start()
    try:
        codes = statuses(server.url, ["198.51.100.1", "198.51.100.2", "198.51.100.1", "198.51.100.2"])
        if trust:  # two clients, two buckets of 2
            assert codes == [200, 200, 200, 200]
            assert statuses(server.url, ["198.51.100.1", "198.51.100.2", "198.51.100.3"]) == [429, 429, 200]
        else:  # one peer (loopback), one bucket: the header is ignored
            assert codes == [200, 200, 429, 429]
    finally:
        server.close()
