"""Tools around the engine, kept out of the request path: the demo and the local Redis Cluster."""
