"""``mafhir serve``: the clinic's interfaces in a browser, behind a login.

An optional part (``pip install 'mafhir[web]'``): nothing else in mafhir imports it, and
the CLI imports it only when ``serve`` runs. :mod:`.app` builds the Starlette application
over the stores the CLI uses (the outbox, the v2 message store, plugin panels such as the
pharmacy worklist); :mod:`.webstore` keeps users, API tokens and the audit trail in the
outbox's database.
"""

from __future__ import annotations

__all__: list[str] = []
