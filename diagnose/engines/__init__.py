"""One module per engine: each turns a resolved configuration into a Layout."""
