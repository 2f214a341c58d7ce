"""Date and time formats of the portal's pages (``FORMAT_MODULE_PATH``)."""
