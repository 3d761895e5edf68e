"""One module per group of commands; each has ``register(subparsers)`` and sets ``run`` on its parsers."""
