"""Benchmarks of time, memory and hypergradient agreement (see README.md); each module is a script too."""
