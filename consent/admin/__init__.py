"""Admin of people and their consent records (registered by importing the modules)."""

from consent.admin import people, records, texts

__all__ = ["people", "records", "texts"]
