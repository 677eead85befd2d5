"""Deployment: SavedModel export for TF Serving, offline scoring, and serving clients."""
