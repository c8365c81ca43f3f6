"""Digests: events of one type for one recipient (and one key value) within a window,
gathered into one notification. The digest items (`items`: keys, the bounded state a
digest keeps, the event a closed digest sends) and their conditional writes (`store`:
absorbing an event together with its move to DIGESTED, opening a window, closing it).

May import every package of `core` up to `ledger`; scheduling a close and sending the
digest's event are the listeners' (`listeners/digesting.py`, `listeners/digest_closing.py`).
"""
