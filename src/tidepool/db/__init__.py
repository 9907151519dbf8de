"""tidepool.db: the CnosDB-compatible time-series database (engine, storage, SQL; the HTTP API lives in db.http)."""
