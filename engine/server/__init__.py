"""The process: the app and its HTTP API, the node that wires the services, the listener and
admission, workers and the sweeper."""
