"""Stage adapters: each stage of the pipeline over the worker's state and outputs."""
