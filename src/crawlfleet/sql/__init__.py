"""The schema and the queries, as package data: ``migrations/NNNN_name.sql`` and ``queries/<table>.sql``.

Read through ``importlib.resources`` (see ``crawlfleet.coordinator.storage.sql``), so they are found the
same way in a checkout, an editable install and a wheel.
"""
