"""what kops keeps on this machine: cluster ids, ports, secrets, host keys, the migration record."""
