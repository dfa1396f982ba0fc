"""Built-in connectors (plugins like any other)."""
