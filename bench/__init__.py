"""Load generators and benchmarks for streamhive (and, later, side by side with peer servers)."""
