"""The exception queue finance works from: business exceptions in the ledger database, routed and aged."""
