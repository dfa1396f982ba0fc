"""The HL7 v2 layer's built-in plugin: the convert and listen commands (to come)."""
