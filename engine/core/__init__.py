"""The kernel every context may use: errors, field checks, settings, identities, logs, process
metrics. No Redis, no I/O."""
