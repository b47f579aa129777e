"""Per-session state storage: the `SessionStore` interface (`protocol`), its record (`record`), the
in-process store (`memory`), the Redis store (`redis_store`, its hash layout in `redis_codec`) and the
errors every store raises (`errors`). `siamstream_services.wiring.open_session_store` opens the store that
the settings name.

The package itself imports nothing: importing one of its modules does not load the others (the Redis
client among them), and no module of it waits on this package's own initialisation.
"""
