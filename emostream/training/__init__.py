"""Corpus building, trainers, export."""
