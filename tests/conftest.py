"""Repository-level tests. ``host_app/`` is a host application's test project, run by
``test_host_app.py`` in its own pytest process, never collected here."""

collect_ignore = ["host_app"]
