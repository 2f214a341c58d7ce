"""The verification workflow's services: ``invitations`` (made, emailed, opened, ended) and
``sessions`` (the upstream sessions started from an invitation, confirmed by the upstream only).
"""
