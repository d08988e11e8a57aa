"""Peer servers the serving benchmark runs beside ours, each in its own environment."""
