"""The operators' web dashboard: a separate program that reads and acts on coordinators through the
Admin and Crawls APIs, with the user's own token (docs/dashboard.md)."""
