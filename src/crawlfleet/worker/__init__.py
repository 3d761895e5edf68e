"""The crawlfleet worker: leases jobs from a coordinator over gRPC, runs them and reports back."""
