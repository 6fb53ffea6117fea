"""Thin command layer: parses arguments, calls the packages, prints. No logic lives here."""
