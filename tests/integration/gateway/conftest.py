"""A real gateway: the FastAPI app served by uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn

from connectors.gateway import create_app
from streams.settings import GatewaySettings, Settings
from streams.stack import free_port
from streams.topics import TopicCatalog
from tests.conftest import wait_for
from tests.integration.producers.helpers import usage

BILLING_TOKEN = "billing-token-0123456789"
METER_TOKEN = "meter-token-0123456789ab"
TOKENS = {
    BILLING_TOKEN: {"source": "billing", "event_types": ["invoice_posted", "payment_received"]},
    METER_TOKEN: {"source": "meter", "event_types": ["usage_recorded"]},
}


def gateway_settings(settings: Settings, **limits: Any) -> Settings:
    options = {"max_request_bytes": 4096, "max_batch_items": 5, "delivery_timeout_ms": 3000, **limits}
    return settings.model_copy(update={"gateway": GatewaySettings(tokens=TOKENS, **options)})  # type: ignore[arg-type]


@contextmanager
def serving(settings: Settings, catalog: TopicCatalog | None) -> Iterator[str]:
    """Serve a gateway for ``settings``; yield its base URL; stop it on exit."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, catalog=catalog), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="gateway", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 30, "the gateway to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def gateway_url(stack_settings: Settings, catalog: TopicCatalog) -> Iterator[str]:
    with serving(gateway_settings(stack_settings), catalog) as url:
        yield url


@pytest.fixture
def auth() -> Callable[[str], dict[str, str]]:
    return lambda token: {"Authorization": f"Bearer {token}"}


def usage_body(event_id: str, customer_id: str = "CUST-GW", **changes: Any) -> dict[str, Any]:
    body = json.loads(usage(event_id, customer_id=customer_id).model_dump_json())
    del body["source"]  # the token decides it
    return {**body, **changes}
