"""day-two operations: upgrades, the ZooKeeper-to-KRaft migration, a command on a node."""
