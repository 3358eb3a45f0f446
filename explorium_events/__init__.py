"""Fetch Explorium prospect events for any number of prospects, at the rate limit."""
