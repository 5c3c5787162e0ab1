"""errors, paths, the Docker engine client, the one poll loop and the gates' table."""
