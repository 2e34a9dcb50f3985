"""``kotani-receiver simulate``: play Kotani against a running receiver with Kotani's bytes.

``target`` says where the receiver is and with which secrets, ``progress`` draws a stderr spinner,
``plays`` holds ``invoice``, ``webhook`` and ``replay``, ``refund`` the whole refund exchange
against the Kotani imitation (``receiver.mock_kotani``), ``cli`` the commands.
"""
