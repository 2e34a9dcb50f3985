"""The refund domain: one record per Kotani reference, its state and a step-by-step history.

``receiver.refunds.store``: ``record`` (the change a handler commits with its event) and
``RefundStore`` (reads, and the one standalone write: the retry budget).
"""
