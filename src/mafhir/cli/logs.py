"""Logging for the command line: asked for by environment, and never a carrier of secrets or PHI.

``MAFHIR_LOG_LEVEL`` (DEBUG, INFO, WARNING, ERROR) turns on logging to stderr. Libraries
log more than mafhir wants kept: at DEBUG urllib3 writes every request line, a ``pull``'s
query with the patient's MRN in it. So their loggers stay at WARNING unless
``MAFHIR_LOG_LIBRARIES=1`` asks for them, and every record, whoever made it, is redacted
as it is made (credentials by :mod:`mafhir.redact`, URL query values blanked), so no
handler, formatter or test capture ever sees the raw text.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

from ..errors import InputError, Problem

__all__ = ["ENV_LEVEL", "ENV_LIBRARIES", "LIBRARIES", "configure_logging", "install_redaction",
           "redact_record_text"]

ENV_LEVEL = "MAFHIR_LOG_LEVEL"
ENV_LIBRARIES = "MAFHIR_LOG_LIBRARIES"
#: Third-party loggers held at WARNING unless asked for.
LIBRARIES = ("urllib3", "requests", "sqlalchemy", "psycopg", "charset_normalizer", "asyncio",
             "httpx", "httpcore", "filelock", "jwt")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_QUERY_VALUE = re.compile(r"([?&][^=&\s\"'?#]+=)[^&\s\"'#]+")

_installed = False


def redact_record_text(text: str) -> str:
    """A log line without credentials and without the values of URL queries (PHI)."""
    from ..redact import redact_text  # loaded by the first record, not by every start

    return _QUERY_VALUE.sub(r"\1…", redact_text(text))


def install_redaction() -> None:
    """Redact every log record as it is created (once per process)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            record.msg = redact_record_text(record.getMessage())
            record.args = None
        except Exception:  # a record that cannot format keeps its own failure path
            return record
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_record_text(
                logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def configure_logging(environ: Mapping[str, str] | None = None) -> None:
    """Logging as the environment asks (see the module docstring)."""
    env = os.environ if environ is None else environ
    install_redaction()
    if env.get(ENV_LIBRARIES, "").strip().lower() not in ("1", "true", "yes"):
        for name in LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)
    wanted = env.get(ENV_LEVEL, "").strip().upper()
    if not wanted:
        return
    if wanted not in _LEVELS:
        raise InputError([Problem(ENV_LEVEL, f"must be one of {', '.join(_LEVELS)}",
                                  "code-invalid")])
    logging.basicConfig(level=getattr(logging, wanted),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
