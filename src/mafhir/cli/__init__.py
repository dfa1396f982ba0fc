"""The ``mafhir`` command line; its commands come from plugins (the built-in ones too)."""
