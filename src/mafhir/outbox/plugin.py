"""The outbox's built-in plugin: the local destination and the sync commands (to come)."""
