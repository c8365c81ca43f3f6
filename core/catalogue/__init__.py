"""What Herald knows about events before any is sent: the event types with their category,
priority and channels (`event_types`), the shapes of an event and a notification and their
statuses (`models`), and the templates each channel renders (`templates`).

Imports nothing else of `core`: every other package speaks this vocabulary.
"""
