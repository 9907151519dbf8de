"""tidepool agent: a Telegraf-compatible collector (Telegraf TOML in, Kafka input, line protocol over HTTP out).

It never imports the broker or the database: like Telegraf, it meets them only on the wire.
"""
