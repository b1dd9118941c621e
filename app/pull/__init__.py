"""Pulling a webinar's data from Zoom's REST API: Sync now, reconciliation and backfill."""
