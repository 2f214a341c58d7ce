"""Admin of likeness assets (registered by importing the modules): groups and files, withdrawals,
the reference ledger."""

from assets.admin import files, ledger, withdrawals

__all__ = ["files", "ledger", "withdrawals"]
