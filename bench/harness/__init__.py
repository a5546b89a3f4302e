"""The benchmark harness behind bench.py: scenarios, servers, runs, reports."""
