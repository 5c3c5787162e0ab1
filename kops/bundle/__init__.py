"""the bundle: every node's files, command line, unit or container."""
