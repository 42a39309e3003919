"""The batch engine: Faust consumer with a batch path, event agent, pipeline, state overlay, outputs."""
