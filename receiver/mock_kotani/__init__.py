"""A Kotani imitation (``kotani-receiver mock-kotani``): Kotani's side of the refund exchange.

``app`` serves the parts of Kotani's v3 API this service uses, ``store`` keeps its state in
SQLite, ``rules`` holds what Kotani refuses and why, ``webhooks`` sends signed deliveries with
redelivery and chaos, ``cli`` runs it on loopback.
"""
