"""The jsmalloc benchmark runner (bench/run)."""
