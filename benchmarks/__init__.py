"""Benchmarks of explorium-events against the obvious alternatives and the rate limit.

Plain scripts, one table each; ``python -m benchmarks`` runs them all. Results and the
machine they ran on are in benchmarks/README.md.
"""
