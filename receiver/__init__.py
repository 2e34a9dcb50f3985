"""kotani-receiver: the integrator's side of Kotani Pay's Lightning refunds."""

__version__ = "0.1.0"
