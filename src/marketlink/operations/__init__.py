"""The operator commands behind the ``marketlink`` console script, one module per command group.

Every command keeps one contract (docs/operations.md), so an operator at 3 a.m. and a script read
the same answer:

- Django is found through ``--settings`` or ``DJANGO_SETTINGS_MODULE``;
- it says what it will do before doing it, and ``--dry-run`` runs the real code in a transaction
  that is rolled back, so it reports exactly what a real run would change;
- long work shows a progress bar when stderr is a terminal;
- it ends with a summary (and the items behind it): a table on stdout, or, with ``--json``,
  exactly one JSON document ``{"summary": {...}, "items": [...]}`` on stdout and nothing else
  (what the command prints meanwhile, an email of the console mail backend say, goes to stderr);
- the exit code is 0 when all is well, 1 when something needs a person (a ``--limit`` reached
  included; a doctor warning alone does not), 2 on usage or configuration errors, 3 when a
  dependency (database, Redis, the payment provider) is unreachable; when several apply the
  highest wins.

``cli.py`` assembles the commands; this package holds their code and the contract's plumbing
(``report``, ``since``, ``runner``).
"""
