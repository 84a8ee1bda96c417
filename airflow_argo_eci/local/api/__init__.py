"""Kubernetes API surface of the local cluster: store, selectors, routes, Status errors."""
