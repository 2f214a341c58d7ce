"""The asset workflows' services, one module per workflow: ``gate`` (who may upload),
``pipeline`` (upload to Active), ``withdrawals`` (deleted upstream with proof), ``retention``,
``references`` (the copy ledger) and ``notices`` (producers told); ``common`` is what they share.
"""
