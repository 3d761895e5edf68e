"""The crawlfleet coordinator: owns the PostgreSQL job queue and serves it over gRPC."""
