"""What operators read and replay: the dead-letter queues (`dead_letters`: depth, peek,
redrive) and the numbers of GET /stats (`stats`).

The top of `core`: may import every other package of it.
"""
