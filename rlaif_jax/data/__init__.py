"""Tokenisation, chat templates, batching and dataset loaders."""
