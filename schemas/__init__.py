"""The wire contract: message models and the broker topology, shared by producers and worker."""
