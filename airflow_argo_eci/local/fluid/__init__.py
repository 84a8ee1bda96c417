"""The local cluster's Fluid controller: Datasets over the local OSS store, runtimes, DataLoads."""
