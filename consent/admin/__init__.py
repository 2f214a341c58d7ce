"""Admin of people and their consent records (registered by importing the modules)."""

from consent.admin import links, people, records, texts

__all__ = ["links", "people", "records", "texts"]
