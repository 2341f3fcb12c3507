"""The control plane: one ASGI app served on the unix socket and on [control].http."""
