"""The batch engine: Faust consumer with a batch path, batch agent, state overlay, outputs, codec."""
