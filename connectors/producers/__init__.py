"""Producers: the Python SDK publisher, validation shared by every entry point, the file publisher."""

from connectors.producers.publisher import Delivery, DeliveryCallback, Publisher

__all__ = ["Delivery", "DeliveryCallback", "Publisher"]
