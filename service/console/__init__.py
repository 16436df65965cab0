"""The analyst console: sign-in, Score, Review queue, Reconciliation, Model, Monitoring (``docs/console.md``).

A Starlette app (:func:`service.console.app.create_app`) rendered on the server from Jinja2
templates, every asset local. It reaches the scoring service over HTTP, reads the prediction log,
the label store, the model card and the monitoring reports, writes analysts' labels to the label
store, and keeps its own state (users, sessions, claims, audit log) in ``state/console/``.

Run it alone with ``python -m service.console serve``; the gateway on :3000 mounts it at ``/``.
"""
