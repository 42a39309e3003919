"""The private Faust, aiokafka and mode names the worker relies on still exist as it uses them.

A failure here names the internal and what the worker does with it: after an upgrade, read
``processors/engine/faust_internals.py`` and adapt it before changing the pins.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import aiokafka
import faust
import pytest
from faust.transport.consumer import Fetcher
from faust.transport.drivers import aiokafka as faust_aiokafka

from processors.engine import faust_internals
from processors.engine.faust_internals import DRAIN_LOOP_SHA256, DRAIN_LOOP_USES, INTERNALS, Internal

ROOT = Path(__file__).resolve().parents[4]
PACKAGES = ("processors", "streams", "connectors", "revstream")
UNREACHABLE = "kafka://127.0.0.1:9"  # nothing connects: the app and its consumer are only constructed


def resolve(dotted: str) -> Any:
    """Import ``package.module.Class`` whatever the split between module and attribute."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise ModuleNotFoundError(dotted)


def instances_of(owner: str) -> list[Any]:
    """Objects whose constructor sets the instance attributes of ``owner``, built without a broker."""
    app = faust.App("faust-internals-check", broker=UNREACHABLE)
    if owner == "faust.transport.consumer.Consumer":
        return [app.consumer]
    if owner == "mode.Service":
        # Both services whose stop event the drain loop watches.
        return [app.consumer, Fetcher(app)]
    if owner == "aiokafka.AIOKafkaConsumer":

        async def build() -> Any:
            consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=UNREACHABLE.removeprefix("kafka://"))
            await consumer.stop()  # never started: this only releases its client
            return consumer

        return [asyncio.run(build())]
    raise AssertionError(f"no instance builder for {owner}: add one to this test")


def where(internal: Internal) -> str:
    return (
        f"{internal.owner}.{internal.name} (faust-streaming {faust.__version__}, aiokafka "
        f"{aiokafka.__version__}); see processors/engine/faust_internals.py for what the worker uses it for"
    )


@pytest.mark.parametrize("internal", INTERNALS, ids=lambda i: f"{i.owner.rsplit('.', 1)[-1]}.{i.name}")
def test_each_internal_exists_with_the_signature_the_worker_uses(internal: Internal) -> None:
    try:
        owner = resolve(internal.owner)
    except (ModuleNotFoundError, AttributeError) as exc:
        raise AssertionError(
            f"{internal.owner} no longer exists ({exc}): needed for {where(internal)}"
        ) from exc
    if internal.on_instance:
        for instance in instances_of(internal.owner):
            assert hasattr(instance, internal.name), (
                f"{type(instance).__name__} instances no longer have {internal.name}: {where(internal)}"
            )
        return
    member = inspect.getattr_static(owner, internal.name, None)
    assert member is not None, f"{internal.name} is missing: {where(internal)}"
    if internal.parameters is not None:
        parameters = tuple(inspect.signature(member).parameters)[1:]  # after self
        assert parameters == internal.parameters, (
            f"{internal.name} now takes {parameters}, the worker calls or overrides it with "
            f"{internal.parameters}: {where(internal)}"
        )


def test_every_internal_is_named_in_the_modules_docstring() -> None:
    doc = faust_internals.__doc__ or ""
    for internal in INTERNALS:
        assert f"{internal.name}" in doc, f"{internal.name} is used but not documented in faust_internals.py"


def test_the_drain_loop_copy_was_taken_from_the_installed_faust() -> None:
    from faust.transport.consumer import Consumer

    digest = hashlib.sha256(inspect.getsource(Consumer._drain_messages).encode()).hexdigest()
    assert digest == DRAIN_LOOP_SHA256, (
        f"Faust's Consumer._drain_messages changed in faust-streaming {faust.__version__}: compare it with "
        "the copy in processors/engine/faust_internals.py (DrainLoopConsumer._drain_messages), port the "
        "changes, then update DRAIN_LOOP_SHA256"
    )


def test_the_public_members_the_copied_drain_loop_uses_exist() -> None:
    consumer: Any = faust.App("faust-internals-check", broker=UNREACHABLE).consumer
    missing = [name for name in DRAIN_LOOP_USES if not hasattr(consumer, name)]
    assert not missing, f"Faust's consumer no longer has {missing}, used by the copied drain loop"
    assert callable(getattr(consumer.app.topics, "acks_enabled_for", None)), (
        "Faust's conductor no longer has acks_enabled_for(topic), used by the copied drain loop"
    )


@pytest.mark.parametrize(
    ("method", "call"),
    [
        # The overrides build these the way Faust's own versions do; a change there must be repeated.
        (
            faust_aiokafka.Consumer._new_consumer_thread,
            "AIOKafkaConsumerThread(self, loop=self.loop, beacon=self.beacon)",
        ),
        (faust.App._new_transport, "(self.conf.broker_consumer, self)"),
        (faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer, "fetch_max_wait_ms="),
        (aiokafka.AIOKafkaConsumer.start, "fetch_max_wait_ms=self._fetch_max_wait_ms"),
    ],
    ids=["_new_consumer_thread", "_new_transport", "_create_worker_consumer", "AIOKafkaConsumer.start"],
)
def test_the_overridden_methods_still_build_what_the_overrides_build(method: Any, call: str) -> None:
    # Compared without whitespace: a call wrapped over lines is the same call.
    source = re.sub(r"\s+", "", inspect.getsource(method))
    assert re.sub(r"\s+", "", call) in source, (
        f"{method.__qualname__} no longer contains {call!r}: the worker's override in "
        "processors/engine/faust_internals.py repeats (or relies on) it; adapt the override"
    )


def test_no_other_module_touches_these_internals() -> None:
    # Only the private names: the public ones (a callback, a signal) are everybody's. mode's
    # ``_stopped`` is too common a name to search for; the other private names are distinctive.
    names = [
        internal.name
        for internal in INTERNALS
        if internal.name.startswith("_") and internal.name != "_stopped"
    ]
    pattern = re.compile(r"(\.|def )(" + "|".join(map(re.escape, names)) + r")\b")
    own = Path(faust_internals.__file__).resolve()
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.resolve() != own
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, "Faust internals used outside processors/engine/faust_internals.py:\n" + "\n".join(
        found
    )
