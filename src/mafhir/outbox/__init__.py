"""The durable outbox and the sync engine (work in progress)."""
