"""The built-in commands as a plugin: map, validate, schema, plugins, demo, doctor, and
the HL7 v2 layer's convert, listen and hl7.

Registered by name (:mod:`mafhir.cli.lazy`): their modules load when one of them runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..hookspecs import hookimpl
from .lazy import add_lazy_command

if TYPE_CHECKING:
    import click

__all__ = ["COMMANDS", "register_commands"]

#: name → (module:attribute, the short help shown by ``mafhir --help``)
COMMANDS = {
    "map": ("mafhir.cli.commands:map_command",
            "Map tasks (JSON object, JSON list or NDJSON) to a FHIR transaction Bundle."),
    "validate": ("mafhir.cli.commands:validate_command", "Validate FHIR JSON (a resource, a "
                 "Bundle, or NDJSON) against R4, the profiles it claims (US Core 6.1.0/7.0.0 "
                 "ship with mafhir; `mafhir ig add` adds others) and mafhir's own rules."),
    "schema": ("mafhir.cli.commands:schema_command",
               "Print the JSON Schema of task inputs (all kinds, or one TASK)."),
    "plugins": ("mafhir.cli.commands:plugins_command", "List loaded plugins, their versions, "
                "what each adds (task kinds, profiles, connectors, converters, handlers, "
                "commands) and the ones that failed, with why."),
    "demo": ("mafhir.cli.commands:demo_command",
             "Run a realistic MA day from the built-in synthetic clinic; no server needed."),
    "doctor": ("mafhir.cli.doctor:doctor_command", "What this installation will do: clinic, "
               "settings, outbox, destinations (and whether they answer), plugins and what "
               "each adds."),
    # the HL7 v2 layer's commands (its package is not loaded until one of them runs)
    "convert": ("mafhir.hl7v2.cli:convert_command", "Convert HL7 v2 messages to FHIR "
                "(--from hl7v2) or FHIR to HL7 v2 (--to hl7v2)."),
    "listen": ("mafhir.hl7v2.cli:listen_command", "Receive HL7 v2 over MLLP: store, convert "
               "or hand to a plugin, acknowledge (Ctrl-C stops)."),
    "hl7": ("mafhir.hl7v2.send_cli:hl7_group",
            "Raw HL7 v2 over MLLP: send files of messages, listen for them."),
    "ig": ("mafhir.profiles.cli:ig_group",
           "FHIR packages (implementation guides) for `mafhir validate`."),
    "messages": ("mafhir.hl7v2.messages_cli:messages_group",
                 "The listener's inbound store: list, show and reprocess received messages."),
    # issue 18 part B (w10): the MA's worklist
    "worklist": ("mafhir.worklist.cli:worklist_group", "The MA's open items, most urgent "
                 "first: follow-ups, result calls, refill requests, recalls, no-shows to call "
                 "and cancelled slots to refill."),
}


@hookimpl
def register_commands(cli: click.Group) -> None:
    for name, (target, short_help) in COMMANDS.items():
        add_lazy_command(cli, name, target, short_help)
